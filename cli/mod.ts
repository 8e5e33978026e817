/**
 * Shared plumbing of Phase entrypoints: the permission table and start-up
 * guard, strict flags, the error base class and exit statuses, logging.
 *
 * @module
 */
export {
  describe,
  EXIT_INTERNAL,
  EXIT_PERMISSIONS,
  EXIT_USAGE,
  PermissionSetError,
  PhaseError,
  UsageError,
} from "./errors.ts";
export { parseDurationMs, parseFlags, required } from "./flags.ts";
export type { OptionSpec, ParsedValues } from "./flags.ts";
export { consoleLogger, memoryLogger } from "./log.ts";
export type { Logger } from "./log.ts";
export {
  assertPermissionSet,
  configDir,
  DEFAULT_IMPORT_HOSTS,
  excessPermissions,
  normaliseSet,
  PERMISSION_KINDS,
  permissionSet,
  permissionTable,
  rawTable,
  resolveScope,
} from "./permissions.ts";
export type { Grant, PermissionKind, PermissionSet } from "./permissions.ts";
export { exitStatusFor, formatError, main } from "./run.ts";
export type { Entrypoint, ExitCodes } from "./run.ts";
export { explainFsError, readFileCapped, TooLargeError, writeFileAtomic } from "./io.ts";
