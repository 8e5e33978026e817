/**
 * Entrypoint `phase-verify`: no network, no write, no subprocess.
 *
 * @module
 */
import { main } from "../cli/run.ts";
import { runVerify, VERIFY_EXIT_CODES, VERIFY_PERMISSION_SET } from "./cli.ts";

if (import.meta.main) {
  await main({
    name: "verify",
    permissionSet: VERIFY_PERMISSION_SET,
    exitCodes: VERIFY_EXIT_CODES,
    run: (args) => runVerify(args),
  });
}
