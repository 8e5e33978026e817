/**
 * Entrypoint `phase-discover`. Not built yet: it exits with a clear message
 * (issue #4) under its permission set 'discover'.
 *
 * @module
 */
import { PhaseError } from "../../cli/errors.ts";
import { main } from "../../cli/run.ts";

if (import.meta.main) {
  await main({
    name: "discover",
    permissionSet: "discover",
    exitCodes: { E_UNAVAILABLE: 69 },
    run: () => {
      throw new PhaseError("E_UNAVAILABLE", "'discover' is not available in this version of Phase yet", {
        hint: "it is being built (issue #4); see README.md for what works today",
      });
    },
  });
}
