/**
 * Errors of kexec/: a literal code per failure and a distinct exit status.
 *
 * @module
 */
import { PhaseError } from "../core/mod.ts";

/** Codes of kexec/. Verification failures keep the verifier's codes. */
export type KexecCode =
  | "E_STAGE"
  | "E_LOAD"
  | "E_EXEC"
  | "E_FDT"
  | "E_FALLBACK"
  | "E_NOT_LOADED";

/** An error of kexec/. */
export class KexecError extends PhaseError<KexecCode> {}
