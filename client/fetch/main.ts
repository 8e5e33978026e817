/**
 * Entrypoint `phase-fetch`. Not built yet: it exits with a clear message
 * (issue #4) under its permission set 'fetch'.
 *
 * @module
 */
import { PhaseError } from "../../cli/errors.ts";
import { main } from "../../cli/run.ts";

if (import.meta.main) {
  await main({
    name: "fetch",
    permissionSet: Deno.args.includes("--private") ? "fetch-private" : "fetch",
    exitCodes: { E_UNAVAILABLE: 69 },
    run: () => {
      throw new PhaseError("E_UNAVAILABLE", "'fetch' is not available in this version of Phase yet", {
        hint: "it is being built (issue #4); see README.md for what works today",
      });
    },
  });
}
