/**
 * Whether this Deno process may create a Worker with
 * `deno: { permissions }`. Deno 2.9 gates that option behind the unstable
 * feature `worker-options` and, without it, exits the whole process
 * (status 70) at `new Worker`: nothing can catch it. The job sandbox needs
 * the option (a Worker without it inherits every permission of the host),
 * so {@link runJob} asks here first and refuses with a clear error instead.
 *
 * Deno shows no JavaScript API for the enabled features, so this reads the
 * configuration Deno used: the `deno.json` / `deno.jsonc` files from the
 * main module's directory upwards (a workspace member inherits its root's
 * `unstable`; the walk stops at a directory above the first config that the
 * process may not read). The answer is `missing` only when such a file was
 * read and none enables the feature; when no file is found or one cannot be read
 * (a permission set without read access to it, a compiled binary) it is
 * `unknown` and the job is tried (Deno enforces the rest; the flag
 * `--unstable-worker-options` on the command line is invisible here).
 *
 * Private to wasm/.
 *
 * @module
 */

/** Largest config file read, in bytes. */
const MAX_CONFIG_BYTES = 1024 * 1024;
/** Most directories walked upwards from the main module. */
const MAX_CONFIG_DEPTH = 64;
/** The feature in a config's `unstable` list. */
export const WORKER_OPTIONS_FEATURE = "worker-options";
const FEATURE_RE = /"unstable"\s*:\s*\[[^\]]*"worker-options"/;

/** What the configuration says about the feature. */
export type FeatureState = "enabled" | "missing" | "unknown";

let cached: { state: FeatureState; config: string | undefined } | undefined;

async function readConfig(path: string): Promise<string | undefined> {
  let f: Deno.FsFile;
  try {
    f = await Deno.open(path, { read: true });
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return undefined;
    throw err;
  }
  try {
    const buf = new Uint8Array(MAX_CONFIG_BYTES + 1);
    let n = 0;
    for (;;) {
      const r = await f.read(buf.subarray(n));
      if (r === null || r === 0) break;
      n += r;
      if (n > MAX_CONFIG_BYTES) throw new RangeError(`${path} is above ${MAX_CONFIG_BYTES} bytes`);
    }
    return new TextDecoder().decode(buf.subarray(0, n));
  } finally {
    f.close();
  }
}

/**
 * Looks up whether the `worker-options` feature is on (cached per process).
 * Returns the config file that decided, when one did.
 */
export async function workerOptionsState(): Promise<
  { state: FeatureState; config: string | undefined }
> {
  if (cached) return cached;
  let main: URL;
  try {
    main = new URL(Deno.mainModule);
  } catch {
    return cached = { state: "unknown", config: undefined };
  }
  if (main.protocol !== "file:") return cached = { state: "unknown", config: undefined };
  let dir = decodeURIComponent(main.pathname).replace(/\/[^/]*$/, "");
  let found: string | undefined;
  try {
    for (let depth = 0; depth < MAX_CONFIG_DEPTH; depth++) {
      for (const name of ["deno.json", "deno.jsonc"]) {
        const path = `${dir || ""}/${name}`;
        let text: string | undefined;
        try {
          text = await readConfig(path);
        } catch (err) {
          // Above the project's own config, an unreadable directory ends the
          // walk (a script granted only its project cannot see its parents).
          if (found && err instanceof Deno.errors.NotCapable) {
            return cached = { state: "missing", config: found };
          }
          throw err;
        }
        if (text === undefined) continue;
        if (FEATURE_RE.test(text)) return cached = { state: "enabled", config: path };
        found ??= path;
      }
      if (dir === "") break;
      dir = dir.replace(/\/[^/]*$/, "");
    }
  } catch {
    // Unreadable (NotCapable, too large, not a file): say nothing for sure.
    return cached = { state: "unknown", config: found };
  }
  return cached = { state: found ? "missing" : "unknown", config: found };
}
