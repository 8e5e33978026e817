/**
 * Entrypoint `phase-node`: `deno task node` runs a Plasm job node (until
 * SIGINT or SIGTERM), `deno task node id` prints its peer id, `deno task
 * node status` prints its counters, all under the permission set `node`.
 * libp2p leaves TCP handles open after `stop()`: `main` exits explicitly.
 *
 * @module
 */
import { consoleLogger } from "../core/mod.ts";
import { main } from "../cli/mod.ts";
import { NODE_HELP } from "./_help.ts";
import { NODE_PERMISSION_SET, runNodeCli } from "./cli.ts";

if (import.meta.main) {
  const stopped = new Promise<void>((resolve) => {
    Deno.addSignalListener("SIGINT", () => resolve());
    Deno.addSignalListener("SIGTERM", () => resolve());
  });
  await main({
    name: "node",
    permissionSet: NODE_PERMISSION_SET,
    help: NODE_HELP,
    run: (args) =>
      runNodeCli(args, {
        stdout: (b) => Deno.stdout.writeSync(b),
        line: (t) => console.log(t),
        note: (t) => console.error(t),
        log: consoleLogger("node"),
        stopped,
      }),
  });
}
