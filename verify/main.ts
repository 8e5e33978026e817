/**
 * Entrypoint `phase-verify`: no network, no write, no subprocess.
 *
 * @module
 */
import { main } from "../cli/mod.ts";
import { runVerify, VERIFY_PERMISSION_SET } from "./cli.ts";
import { VERIFY_HELP } from "./_help.ts";

if (import.meta.main) {
  await main({
    name: "verify",
    permissionSet: VERIFY_PERMISSION_SET,
    help: VERIFY_HELP,
    run: (args) => runVerify(args),
  });
}
