/**
 * Entrypoint `phase-serve`. Not built yet: it exits with a clear message
 * (issue #3) under its permission set 'serve'.
 *
 * @module
 */
import { PhaseError } from "../cli/errors.ts";
import { main } from "../cli/run.ts";

if (import.meta.main) {
  await main({
    name: "serve",
    permissionSet: Deno.args[0] === "serve" ? "serve" : "provider",
    exitCodes: { E_UNAVAILABLE: 69 },
    run: () => {
      throw new PhaseError("E_UNAVAILABLE", "'serve' is not available in this version of Phase yet", {
        hint: "it is being built (issue #3); see README.md for what works today",
      });
    },
  });
}
