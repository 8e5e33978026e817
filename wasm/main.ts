/**
 * Entrypoint `phase-wasm`. Not built yet: it exits with a clear message
 * (issue #6) under its permission set 'wasm'.
 *
 * @module
 */
import { PhaseError } from "../cli/errors.ts";
import { main } from "../cli/run.ts";

if (import.meta.main) {
  await main({
    name: "wasm",
    permissionSet: Deno.args[0] === "receipt" ? "receipt" : "wasm",
    exitCodes: { E_UNAVAILABLE: 69 },
    run: () => {
      throw new PhaseError("E_UNAVAILABLE", "'wasm' is not available in this version of Phase yet", {
        hint: "it is being built (issue #6); see README.md for what works today",
      });
    },
  });
}
