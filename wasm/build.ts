/**
 * `deno task wasm:build`: rebuilds the example jobs from source,
 * deterministically. WAT -> core module with wabt (same bytes on every
 * run: no names section, no timestamps). `--check` rebuilds in memory and
 * fails when a committed file differs.
 *
 * @module
 */
import wabtInit from "wabt";

/** The examples built from WAT, relative to wasm/examples. */
export const WAT_EXAMPLES = ["hello"] as const;

/** Compiles WAT source to a core module, deterministically. */
export async function watToWasm(name: string, source: string): Promise<Uint8Array> {
  const wabt = await wabtInit();
  const mod = wabt.parseWat(name, source);
  try {
    mod.resolveNames();
    mod.validate();
    return new Uint8Array(mod.toBinary({ log: false, write_debug_names: false }).buffer);
  } finally {
    mod.destroy();
  }
}

/** Directory of the examples. */
export function examplesDir(): string {
  return new URL("./examples", import.meta.url).pathname;
}

/** Builds every example; returns the files that differ from what is on disk (check) or were written. */
export async function buildExamples(opts: { check: boolean }): Promise<string[]> {
  const dir = examplesDir();
  const changed: string[] = [];
  for (const name of WAT_EXAMPLES) {
    const bytes = await watToWasm(`${name}.wat`, await Deno.readTextFile(`${dir}/${name}.wat`));
    const target = `${dir}/${name}.wasm`;
    let current: Uint8Array | undefined;
    try {
      current = await Deno.readFile(target);
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
    }
    const same = current !== undefined && current.length === bytes.length &&
      current.every((b, i) => b === bytes[i]);
    if (same) continue;
    changed.push(target);
    if (!opts.check) await Deno.writeFile(target, bytes);
  }
  return changed;
}

if (import.meta.main) {
  const check = Deno.args.includes("--check");
  const changed = await buildExamples({ check });
  for (const f of changed) console.log(`${check ? "differs" : "built"}: ${f}`);
  if (check && changed.length > 0) Deno.exit(1);
}
