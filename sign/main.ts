/**
 * Entrypoint `phase-sign` (`keygen`, `sign`): reads release trees and keys,
 * writes manifests and keys; no network, no subprocess.
 *
 * @module
 */
import { main } from "../cli/mod.ts";
import { runSign, SIGN_PERMISSION_SET } from "./cli.ts";
import { signHelp } from "./_help.ts";

if (import.meta.main) {
  await main({
    name: Deno.args[0] === "keygen" ? "keygen" : "sign",
    permissionSet: SIGN_PERMISSION_SET,
    help: signHelp(Deno.args),
    run: (args) => runSign(args),
  });
}
