/**
 * Entrypoint `phase-images` under permission set 'images'.
 *
 * @module
 */
import { main } from "../cli/mod.ts";
import { runImages } from "./cli.ts";
import { IMAGES_HELP } from "./_help.ts";

if (import.meta.main) {
  await main({
    name: "images",
    permissionSet: "images",
    help: IMAGES_HELP,
    run: (args) => runImages(args),
  });
}
