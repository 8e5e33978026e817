/**
 * Entrypoint `phase-trust` (`deno task trust`): edits trust files offline
 * under the `sign` set; no network, no subprocess.
 *
 * @module
 */
import { main } from "../cli/mod.ts";
import { runTrust, TRUST_HELP, TRUST_PERMISSION_SET } from "./trust_cli.ts";

if (import.meta.main) {
  await main({
    name: "trust",
    permissionSet: TRUST_PERMISSION_SET,
    help: TRUST_HELP,
    run: (args) => runTrust(args),
  });
}
