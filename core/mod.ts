/**
 * core/: what library code of every component may build on: the error base
 * class and the project's one table of error codes and exit statuses,
 * bounded file I/O and the injected logger. Nothing here parses flags,
 * reads `deno.json` or exits the process: that is `cli/`, for entrypoints.
 *
 * @example Map an error to its exit status
 * ```ts
 * import { EXIT_STATUS, exitStatusOf, PhaseError } from "./mod.ts";
 *
 * const err = new PhaseError("E_DIGEST", "kernel: digest mismatch");
 * if (exitStatusOf(err) !== EXIT_STATUS.E_DIGEST) throw new Error("registry");
 * ```
 *
 * @module
 */
export {
  describe,
  type ErrorCode,
  EXIT_INTERNAL,
  EXIT_PERMISSIONS,
  EXIT_STATUS,
  EXIT_USAGE,
  exitStatusOf,
  isErrorCode,
  PermissionSetError,
  PhaseError,
  UsageError,
} from "./errors.ts";
export {
  describeScopes,
  explainFsError,
  explainRefusal,
  type FsRefusal,
  fsRefusal,
  type FsScopes,
  type NamedPath,
  NotRegularFileError,
  PathRefusedError,
  readFileCapped,
  RELATIVE_PATHS_NOTE,
  TooLargeError,
  writeFileAtomic,
} from "./io.ts";
export { consoleLogger, type Logger, memoryLogger } from "./log.ts";
/** Strict field readers for the one-line JSON results boot steps print. */
export * as stepResult from "./step.ts";
