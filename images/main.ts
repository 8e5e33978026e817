/**
 * Entrypoint `phase-images` under permission set 'images'.
 *
 * @module
 */
import { main } from "../cli/mod.ts";
import { runImages } from "./cli.ts";

if (import.meta.main) {
  await main({
    name: "images",
    permissionSet: "images",
    run: (args) => runImages(args),
  });
}
