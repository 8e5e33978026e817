/**
 * Deno's compile caches for the seed, prepared at image build time (issue
 * 17): every seed step is its own `deno run` of a bundle (TM-12: one
 * permission set per process), and under TCG about half of each start-up
 * was V8 parsing and compiling a 1-2 MB bundle that no boot ever caches
 * (DENO_DIR is a fresh tmpfs, and Deno writes a main module's code cache
 * only when it finishes evaluating; every step ends with Deno.exit).
 *
 * How: each bundle is imported (not run: `import.meta.main` is false) by a
 * one-line module under the `deno` that will run it on the seed, with its
 * own permission flags and a fresh DENO_DIR, from a folder named by the
 * modules' bytes (V8 stores the script URL in the cache); the V8 code cache and the
 * dependency-analysis cache it leaves are copied into fresh SQLite files
 * with the rows sorted and the staging tree's file URLs rewritten to the
 * seed's mount point (both caches are keyed by specifier plus a hash of
 * the source text; V8's own check is source length, V8 version and flags,
 * so the path the warm-up ran from does not matter). The result is
 * byte-identical across builds (images_test). On the seed the launcher
 * copies them into DENO_DIR (SQLite cannot open them on the read-only
 * squashfs in WAL mode). A cache V8 rejects only costs the compile it
 * would have cost anyway: it is never trusted for anything but speed, and
 * it sits on the same squashfs (under dm-verity with Secure Boot) as the
 * code it was made from. V8 rejects a cache made under other V8 flags, and
 * the modules Deno loads lazily (`ext:deno_node/...`) are cached under
 * the same key for every step: each set of V8 flags the seed's launchers
 * run with therefore gets a cache of its own, `deno-cache/<flags>/`
 * ({@link codeCacheDir}), or the last step warmed would leave its flags
 * on every shared entry and the others would compile them at boot.
 * Private to images/.
 *
 * @module
 */
import { DatabaseSync } from "node:sqlite";
import { hashFile, sha256Hex } from "../verify/mod.ts";
import { ImagesError } from "./errors.ts";
import { runTool, TOOL_TIMEOUT_MS } from "./_run.ts";
import { seedRunArgs } from "./launcher.ts";

/** Folder on the seed squashfs (below the seed root) holding the prepared caches. */
export const CODE_CACHE_DIR = "deno-cache";
/** The cache files Deno keeps in DENO_DIR that the warm-up fills and the seed reads. */
export const CODE_CACHE_FILES = ["v8_code_cache_v2", "dep_analysis_cache_v2"] as const;
/**
 * The folder (below the seed root) of the prepared cache for the steps
 * that run with `v8Flags`: `deno-cache/default` for V8's defaults,
 * `deno-cache/no-opt+no-maglev+no-sparkplug` for those flags.
 */
export function codeCacheDir(v8Flags?: string): string {
  const name = v8Flags
    ? v8Flags.split(",").map((f) => f.replace(/^--/, "").replaceAll("=", "-")).join("+")
    : "default";
  return `${CODE_CACHE_DIR}/${name}`;
}

/** Where the warm-up stages the modules (the images set's scratch folder). */
const WARM_BASE = "/tmp/phase";
/** How often a build waiting for another build's warm-up looks again. */
const LOCK_POLL_MS = 500;
/** Largest Deno binary hashed to tell whether the seed runs this host's Deno. */
const MAX_DENO_BYTES = 512 * 1024 * 1024;

/** One module to warm: its path below the staging root and the `deno run` flags it runs with. */
export interface WarmModule {
  readonly path: string;
  readonly flags: readonly string[];
  /** The V8 flags it runs with (a cache made under other V8 flags is rejected). */
  readonly v8Flags?: string;
}

/** The file: URL of an absolute path (what Deno uses as the cache key). */
function fileUrl(path: string): string {
  return new URL(`file://${path}`).href;
}

async function sameBytes(a: string, b: string): Promise<boolean> {
  const digest = async (p: string) => {
    using f = await Deno.open(p);
    return (await hashFile(f, MAX_DENO_BYTES)).digest;
  };
  return (await digest(a)) === (await digest(b));
}

/**
 * Warms the caches for `modules` staged under `root` and writes them to
 * `root/<codeCacheDir(v8Flags)>/`, one folder per set of V8 flags among
 * the modules, keyed as if `root` were mounted at `seedRoot`.
 * Returns false (and writes nothing) when the seed's Deno is not the Deno
 * running this build (an arm64 seed on an amd64 host) and no `emulator`
 * can run it: V8 would reject a cache from another binary.
 */
export async function prepareCodeCache(opts: {
  readonly root: string;
  readonly seedRoot: string;
  readonly seedDeno: string;
  readonly work: string;
  readonly modules: readonly WarmModule[];
  /**
   * How to run a seed Deno built for another architecture (an arm64 seed
   * on an amd64 host): a qemu user-mode emulator and its arguments, the
   * seed's Deno appended. V8's code cache holds bytecode, checked against
   * V8's version and flags, not the CPU it was made on.
   */
  readonly emulator?: { readonly tool: string; readonly args: readonly string[] };
}): Promise<boolean> {
  // The warm-up runs `deno` from PATH when the seed's Deno is this build's
  // (normally), the seed's own Deno under the emulator otherwise.
  let runner: { tool: string; args: readonly string[] } = { tool: "deno", args: [] };
  if (!(await sameBytes(opts.seedDeno, Deno.execPath()))) {
    if (!opts.emulator) return false;
    runner = { tool: opts.emulator.tool, args: [...opts.emulator.args, opts.seedDeno] };
  }
  // V8 writes the script's URL into its cache (it takes the real one from
  // the loader when it reads it back): the warm-up runs from a path named
  // by the modules' bytes, the same for every build of the same code, so
  // the cache bytes are too. A lock keeps two builds from sharing it.
  const id = sha256Hex(
    (await Promise.all(
      opts.modules.map(async (m) =>
        `${m.path}\0${sha256Hex(await Deno.readFile(`${opts.root}/${m.path}`))}\0${
          m.flags.join(" ")
        }\0${m.v8Flags ?? ""}`
      ),
    )).join("\n"),
  ).slice(0, 16);
  const stage = `${WARM_BASE}/codecache-${id}`;
  const dir = `${opts.work}/deno-warm`;
  await Deno.remove(dir, { recursive: true }).catch(() => {});
  const groups = new Map<string, WarmModule[]>();
  for (const m of opts.modules) {
    const out = codeCacheDir(m.v8Flags);
    groups.set(out, [...(groups.get(out) ?? []), m]);
  }
  const unlock = await lock(`${stage}.lock`);
  try {
    await Deno.remove(stage, { recursive: true }).catch(() => {});
    for (const m of opts.modules) {
      await Deno.mkdir(dirname(`${stage}/${m.path}`), { recursive: true });
      await Deno.copyFile(`${opts.root}/${m.path}`, `${stage}/${m.path}`);
    }
    const from = fileUrl(stage) + "/";
    const to = fileUrl(opts.seedRoot) + "/";
    // One DENO_DIR per set of V8 flags: entries shared by all steps (Deno's
    // lazily loaded modules) are made under the flags that will read them.
    for (const [g, [out, modules]] of [...groups].entries()) {
      const denoDir = `${dir}/deno-${g}`;
      await Deno.mkdir(denoDir, { recursive: true });
      for (const [i, m] of modules.entries()) {
        // A static import needs no read grant and does not run the entry's main.
        const warm = `${dir}/warm-${g}-${i}.js`;
        await Deno.writeTextFile(
          warm,
          `import ${JSON.stringify(fileUrl(`${stage}/${m.path}`))};\n`,
        );
        await runTool(runner.tool, [
          ...runner.args,
          ...seedRunArgs(m.v8Flags),
          // The folder it imports from, then the module's own seed set (flags accumulate).
          `--allow-read=${stage}`,
          ...m.flags,
          warm,
        ], { env: { DENO_DIR: denoDir, HOME: `${dir}/home`, DENO_NO_UPDATE_CHECK: "1" } });
      }
      await Deno.mkdir(`${opts.root}/${out}`, { recursive: true });
      for (const name of CODE_CACHE_FILES) {
        copyRewritten(`${denoDir}/${name}`, `${opts.root}/${out}/${name}`, from, to);
      }
    }
  } finally {
    await Deno.remove(stage, { recursive: true }).catch(() => {});
    await unlock();
  }
  await Deno.remove(dir, { recursive: true }).catch(() => {});
  return true;
}

function dirname(p: string): string {
  return p.slice(0, p.lastIndexOf("/"));
}

/** Takes a lock directory (mkdir is atomic); one older than the tool deadline is stale. */
async function lock(path: string): Promise<() => Promise<void>> {
  const start = Date.now();
  while (true) {
    try {
      await Deno.mkdir(path);
      return () => Deno.remove(path).catch(() => {});
    } catch (err) {
      if (!(err instanceof Deno.errors.AlreadyExists)) throw err;
    }
    const st = await Deno.stat(path).catch(() => undefined);
    if (st?.mtime && Date.now() - st.mtime.getTime() > TOOL_TIMEOUT_MS) {
      await Deno.remove(path).catch(() => {});
      continue;
    }
    if (Date.now() - start > TOOL_TIMEOUT_MS) {
      throw new ImagesError("E_BUILD", `code cache: ${path} is held by another build`, {
        hint: "wait for the other image build to finish, or remove the lock if none is running",
      });
    }
    await new Promise((r) => setTimeout(r, LOCK_POLL_MS));
  }
}

/**
 * Copies the tables of one Deno cache database into a new file: same
 * schema, rows in key order, staging URLs rewritten, the warm-up's own
 * modules dropped, no WAL, no statistics tables (nothing that depends on
 * the order or timing of the warm-up).
 */
function copyRewritten(src: string, dst: string, from: string, to: string): void {
  const db = new DatabaseSync(src, { readOnly: true });
  const out = new DatabaseSync(dst);
  try {
    out.exec("PRAGMA journal_mode=DELETE; PRAGMA page_size=4096;");
    const tables = db.prepare(
      "SELECT name, sql FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%' ORDER BY name",
    ).all() as { name: string; sql: string }[];
    out.exec("BEGIN");
    for (const t of tables) {
      out.exec(t.sql);
      const read = db.prepare(`SELECT * FROM "${t.name}"`);
      read.setReadBigInts(true);
      const rows = (read.all() as Record<string, unknown>[]).filter((r) =>
        typeof r.specifier !== "string" || r.specifier.startsWith("ext:") ||
        r.specifier.startsWith(from)
      ).map((r) =>
        typeof r.specifier === "string" && r.specifier.startsWith(from)
          ? { ...r, specifier: to + r.specifier.slice(from.length) }
          : r
      );
      const key = (r: Record<string, unknown>) =>
        String(r.specifier ?? r.key) + "\0" + String(r.type ?? "");
      rows.sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0));
      if (!rows.length) continue;
      const cols = Object.keys(rows[0]);
      const ins = out.prepare(
        `INSERT INTO "${t.name}" (${cols.map((c) => `"${c}"`).join(",")}) VALUES (${
          cols.map(() => "?").join(",")
        })`,
      );
      for (const r of rows) ins.run(...(cols.map((c) => r[c]) as (string | bigint | Uint8Array)[]));
    }
    out.exec("COMMIT");
  } finally {
    db.close();
    out.close();
  }
}
