/**
 * Component jobs. A WebAssembly component cannot run as such in Deno: jco
 * transpiles it at build time (`deno task wasm:build`) into JS glue plus
 * core modules, stored beside it in `<name>/`. The glue is JS, and JS in
 * the job worker could exhaust the shared process's heap, so the runtime
 * runs a component only when its digest, its glue's and its core modules'
 * are listed in `examples/components.json`, which the build writes and this
 * repository ships (TM-16). The receipt names the component's digest.
 *
 * @module
 */
import { readFileCapped } from "../core/mod.ts";
import { isJsonObject, parseStrictJson } from "../verify/mod.ts";
import { WasmError } from "./errors.ts";
import { sha256Digest } from "./receipt.ts";
import type { ComponentGlue } from "./runner.ts";

/** Largest glue file read, in bytes. */
export const MAX_GLUE_BYTES = 1024 * 1024;
/** Largest core module of a component read, in bytes. */
export const MAX_CORE_BYTES = 16 * 1024 * 1024;
/** Largest allow-list read, in bytes. */
export const MAX_COMPONENTS_FILE_BYTES = 256 * 1024;

function refuse(message: string): WasmError {
  return new WasmError("E_MODULE", message, {
    hint:
      "components run through the jco output 'deno task wasm:build' made and listed in wasm/examples/components.json",
  });
}

/** The allow-list shipped with this build. */
async function allowList(): Promise<
  Record<string, { glue: string; core: Record<string, string> }>
> {
  const path = new URL("./examples/components.json", import.meta.url).pathname;
  let doc;
  try {
    doc = parseStrictJson(await readFileCapped(path, MAX_COMPONENTS_FILE_BYTES));
  } catch (err) {
    throw refuse(`cannot read the component allow-list ${path}: ${(err as Error).message}`);
  }
  if (!isJsonObject(doc)) throw refuse("the component allow-list is not an object");
  return doc as unknown as Record<string, { glue: string; core: Record<string, string> }>;
}

/**
 * Loads the transpiled glue of the component at `path` (bytes already
 * read), from `<path without .wasm>/`, checking every digest.
 */
export async function loadComponent(path: string, bytes: Uint8Array): Promise<ComponentGlue> {
  const digest = sha256Digest(bytes);
  const entry = (await allowList())[digest];
  if (!entry || typeof entry.glue !== "string" || !isJsonObject(entry.core)) {
    throw refuse(`component ${digest} is not one this build transpiled`);
  }
  const dir = path.replace(/\.wasm$/, "");
  const name = dir.split("/").pop()!;
  const read = async (file: string, cap: number) => {
    try {
      return await readFileCapped(`${dir}/${file}`, cap);
    } catch (err) {
      throw refuse(`cannot read ${dir}/${file}: ${(err as Error).message}`);
    }
  };
  const glueBytes = await read(`${name}.js`, MAX_GLUE_BYTES);
  if (sha256Digest(glueBytes) !== entry.glue) {
    throw refuse(`${dir}/${name}.js differs from the glue built for it`);
  }
  const coreModules: Record<string, Uint8Array> = {};
  for (const [file, want] of Object.entries(entry.core)) {
    if (!/^[A-Za-z0-9_.-]+\.wasm$/.test(file)) throw refuse(`bad core module name '${file}'`);
    const core = await read(file, MAX_CORE_BYTES);
    if (sha256Digest(core) !== want) throw refuse(`${dir}/${file} differs from the one built`);
    coreModules[file] = core;
  }
  return { glue: new TextDecoder().decode(glueBytes), coreModules };
}
