/**
 * Build helper, run by `deno task wasm:build` as a child process: WAT + WIT
 * -> core module (wabt) -> component (jco embed + new) -> JS glue and core
 * modules (jco transpile, `--instantiation async`, so the glue imports
 * nothing and the runtime hands it the core modules). jco loads its own
 * wasm from the npm cache and preview2-shim reads the environment, so this
 * runs with read access to the npm cache and env, and no write: it prints
 * the outputs as JSON on stdout. Never used at run time.
 *
 * @module
 */
import { componentEmbed, componentNew, transpile } from "@bytecodealliance/jco";
import { watToWasm } from "./build.ts";
import { encodeBase64 } from "../verify/mod.ts";

/** Builds the component `name` from `<dir>/<name>.wat` and `<dir>/<name>.wit`. */
export async function buildComponent(dir: string, name: string): Promise<{
  component: Uint8Array;
  files: Record<string, Uint8Array>;
}> {
  const core = await watToWasm(`${name}.wat`, await Deno.readTextFile(`${dir}/${name}.wat`));
  const embedded = await componentEmbed({
    binary: core,
    witSource: await Deno.readTextFile(`${dir}/${name}.wit`),
    world: "job",
  });
  const component = await componentNew(embedded, []);
  const out = await transpile(component, {
    name,
    instantiation: "async",
    typescript: false,
    nodejsCompat: false,
    base64Cutoff: 0,
  });
  const files: Record<string, Uint8Array> = {};
  for (const [file, bytes] of Object.entries(out.files as Record<string, Uint8Array>)) {
    files[file] = bytes;
  }
  return { component, files };
}

if (import.meta.main) {
  const [dir, name] = Deno.args;
  const { component, files } = await buildComponent(dir, name);
  const json: Record<string, string> = {};
  for (const [f, b] of Object.entries(files)) json[f] = encodeBase64(b);
  console.log(JSON.stringify({ component: encodeBase64(component), files: json }));
}
