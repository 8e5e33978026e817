/**
 * Entrypoint `phase-job`: `deno task job submit MODULE --peer MULTIADDR`
 * sends one job to a Plasm node and verifies its receipt; `deno task job
 * key` prints the submitter keyid. Permission set `job`. Exits explicitly
 * (libp2p leaves TCP handles open).
 *
 * @module
 */
import { consoleLogger } from "../core/mod.ts";
import { main } from "../cli/mod.ts";
import { JOB_HELP } from "./_help.ts";
import { JOB_PERMISSION_SET, runJobCli } from "./cli.ts";

function writeAll(b: Uint8Array): void {
  let off = 0;
  while (off < b.length) off += Deno.stdout.writeSync(b.subarray(off));
}

if (import.meta.main) {
  await main({
    name: "job",
    permissionSet: JOB_PERMISSION_SET,
    help: JOB_HELP,
    run: (args) =>
      runJobCli(args, {
        stdout: writeAll,
        line: (t) => console.log(t),
        note: (t) => console.error(t),
        log: consoleLogger("job"),
      }),
  });
}
