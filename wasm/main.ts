/**
 * Entrypoint `phase-wasm`: `run` and `postboot` under the permission set
 * 'wasm', `receipt verify` under 'receipt' (read-only).
 *
 * @module
 */
import { consoleLogger } from "../core/mod.ts";
import { main } from "../cli/mod.ts";
import { RECEIPT_PERMISSION_SET, runWasm, WASM_PERMISSION_SET } from "./cli.ts";

function writeAll(w: { writeSync(b: Uint8Array): number }, b: Uint8Array): void {
  let off = 0;
  while (off < b.length) off += w.writeSync(b.subarray(off));
}

if (import.meta.main) {
  await main({
    name: "wasm",
    permissionSet: Deno.args[0] === "receipt" ? RECEIPT_PERMISSION_SET : WASM_PERMISSION_SET,
    run: (args) =>
      runWasm(args, {
        stdout: (b) => writeAll(Deno.stdout, b),
        stderr: (b) => writeAll(Deno.stderr, b),
        line: (t) => console.log(t),
        log: consoleLogger("wasm"),
      }),
  });
}
