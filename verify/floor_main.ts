/**
 * Entrypoint `phase-floor` (`deno task floor show|reset`): reads and writes
 * only the folders where rollback floors live; no network, no subprocess,
 * no environment.
 *
 * @module
 */
import { main } from "../cli/mod.ts";
import { FLOOR_HELP, FLOOR_PERMISSION_SET, runFloor } from "./floor_cli.ts";

if (import.meta.main) {
  await main({
    name: "floor",
    permissionSet: FLOOR_PERMISSION_SET,
    help: FLOOR_HELP,
    run: (args) => runFloor(args),
  });
}
