/**
 * Entrypoint `phase-kexec` under permission set 'kexec': verify, stage,
 * re-check and load the target kernel; exec; chainload fallback.
 *
 * @module
 */
import { main } from "../cli/run.ts";
import { runKexec } from "./cli.ts";
import { KEXEC_EXIT_CODES } from "./errors.ts";

if (import.meta.main) {
  await main({
    name: "kexec",
    permissionSet: "kexec",
    exitCodes: KEXEC_EXIT_CODES,
    run: (args) => runKexec(args),
  });
}
