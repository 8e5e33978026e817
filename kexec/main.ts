/**
 * Entrypoint `phase-kexec` under permission set 'kexec': verify, stage,
 * re-check and load the target kernel; exec; chainload fallback.
 *
 * @module
 */
import { main } from "../cli/mod.ts";
import { runKexec } from "./cli.ts";
import { kexecHelp } from "./_help.ts";

if (import.meta.main) {
  await main({
    name: "kexec",
    permissionSet: "kexec",
    help: kexecHelp(Deno.args),
    run: (args) => runKexec(args),
  });
}
