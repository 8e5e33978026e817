/**
 * Entrypoint `phase-images`. Not built yet: it exits with a clear message
 * (issue #5) under its permission set 'images'.
 *
 * @module
 */
import { PhaseError } from "../cli/errors.ts";
import { main } from "../cli/run.ts";

if (import.meta.main) {
  await main({
    name: "images",
    permissionSet: "images",
    exitCodes: { E_UNAVAILABLE: 69 },
    run: () => {
      throw new PhaseError("E_UNAVAILABLE", "'images' is not available in this version of Phase yet", {
        hint: "it is being built (issue #5); see README.md for what works today",
      });
    },
  });
}
