/**
 * images/: builds, reproducibly, the seed initramfs, the squashfs seed, the
 * GPT USB image (ESP with systemd-boot + seed + ext4 cache), QCOW2 and
 * Parallels images, a signed target release and SHA256SUMS.
 *
 * @module
 */
export { ImagesError } from "./errors.ts";
export type { ImagesCode } from "./errors.ts";
export {
  buildImages,
  bundledPath,
  CACHE_MIB,
  DEFAULT_SOURCE_DATE_EPOCH,
  denoBundle,
  derivedUuid,
  diskDescriptor,
  ESP_MIB,
  EXTRA_BUNDLES,
  SEED_MODULES,
  SEED_TASKS,
} from "./build.ts";
export type { BuildOptions, BuildResult, NodePolicy } from "./build.ts";
export { launcherScript, NO_DENO_DIR, permissionFlags, SEED_ROOT } from "./launcher.ts";
export { PART_NAMES, SEED_SHELL_MARKER, TARGET_MARKER } from "./_files.ts";
export { runImages } from "./cli.ts";
export { imagesTaskArgs, type ImagesTaskOptions } from "./task.ts";
export { runTool, TOOL_TIMEOUT_MS } from "./_run.ts";
