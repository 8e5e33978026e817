/**
 * Entrypoint `phase-images` under permission set 'images'.
 *
 * @module
 */
import { main } from "../cli/run.ts";
import { runImages } from "./cli.ts";
import { IMAGES_EXIT_CODES } from "./errors.ts";

if (import.meta.main) {
  await main({
    name: "images",
    permissionSet: "images",
    exitCodes: IMAGES_EXIT_CODES,
    run: (args) => runImages(args),
  });
}
