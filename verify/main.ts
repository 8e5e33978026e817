/**
 * Entrypoint `phase-verify`: no network, no write, no subprocess.
 *
 * @module
 */
import { main } from "../cli/mod.ts";
import { runVerify, VERIFY_PERMISSION_SET } from "./cli.ts";

if (import.meta.main) {
  await main({
    name: "verify",
    permissionSet: VERIFY_PERMISSION_SET,
    run: (args) => runVerify(args),
  });
}
