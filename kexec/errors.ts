/**
 * Errors of kexec/: a literal code per failure and a distinct exit status.
 *
 * @module
 */
import { PhaseError } from "../cli/errors.ts";
import { VERIFY_EXIT_CODES } from "../verify/mod.ts";

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

/** Exit statuses of `phase-kexec` (verifier codes keep the verifier's statuses). */
export const KEXEC_EXIT_CODES: Readonly<Record<string, number>> = {
  ...VERIFY_EXIT_CODES,
  E_STAGE: 20,
  E_LOAD: 21,
  E_EXEC: 22,
  E_FDT: 23,
  E_FALLBACK: 24,
  E_NOT_LOADED: 25,
};
