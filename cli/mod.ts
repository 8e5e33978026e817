/**
 * cli/: the layer only entrypoints use: strict flags, the permission table
 * and the start-up guard that refuses a process holding more than its set
 * (TM-12), and `main`, which prints `phase-<name>: error: ...` + `hint:` and
 * exits with the status of {@link ../core/mod.ts}'s registry. Library code
 * imports `core/`, never this.
 *
 * @module
 */
export { parseDurationMs, parseFlags, parseIntFlag, required } from "./flags.ts";
export type { OptionSpec, ParsedValues } from "./flags.ts";
export {
  assertPermissionSet,
  configDir,
  DEFAULT_IMPORT_HOSTS,
  excessPermissions,
  fsScopes,
  guardProbes,
  normaliseSet,
  PERMISSION_KINDS,
  permissionSet,
  permissionTable,
  phaseVersion,
  rawTable,
  rawTasks,
  resolveScope,
  revokeUnheld,
  unstableFeatures,
} from "./permissions.ts";
export type { Grant, PermissionKind, PermissionSet } from "./permissions.ts";
export { formatError, main, namedPaths, renderHelp, wantsHelp, wantsVersion } from "./run.ts";
export { printResult, wantsJson } from "./output.ts";
export type { OutputOptions } from "./output.ts";
export {
  DEFAULT_PATHS,
  KEY_DIRS,
  KEYS_DIR,
  PROVIDER_STATE_DIR,
  SYSTEM_TRUST_FILE,
  TRUST_DIR,
  TRUST_DIRS,
  TRUST_FILE,
  WASM_STATE_DIR,
} from "./layout.ts";
export type { Entrypoint, FlagHelp, HelpSpec } from "./run.ts";
