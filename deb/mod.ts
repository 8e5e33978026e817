/**
 * deb/: the Debian package. `deno task deb --arch amd64|arm64 --out DIR`
 * builds `phase_<version>_<arch>.deb` reproducibly with the pinned Deno
 * runtime, every entrypoint bundled, one launcher per permission set in
 * /usr/bin and the hardened `phase-provider.service` and `phase-node.service`
 * (docs/packaging.md).
 *
 * @module
 */
export { DebError } from "./errors.ts";
export type { DebCode } from "./errors.ts";
export {
  DENO_RUNTIME,
  FETCH_HINT,
  integrityOf,
  MAX_RUNTIME_TARBALL_BYTES,
  RUNTIME_CACHE_DIR,
  tarballName,
  verifiedRuntime,
} from "./runtime.ts";
export type { DebArch, RuntimePin } from "./runtime.ts";
export {
  buildDeb,
  bundlePath,
  debFileName,
  LIB_ROOT,
  READINESS_CHECKS,
  UNIT_DIR,
  UNITS_SOURCE,
} from "./build.ts";
export type { DebOptions, DebResult } from "./build.ts";
export { NODE_UNIT, PACKAGE, PROVIDER_UNIT, SERVICE_USER, UNITS } from "./_control.ts";
export { runDeb } from "./main.ts";
