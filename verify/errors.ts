import { PhaseError } from "../core/mod.ts";

/** Codes of the verifier, in the order checks run (formats.md §1). */
export type VerifyCode =
  | "E_SCHEMA"
  | "E_SIGNATURE"
  | "E_MISMATCH"
  | "E_EXPIRED"
  | "E_ROLLBACK"
  | "E_SIZE"
  | "E_DIGEST"
  | "E_TRUST"
  | "E_IO";

/** An error of the verifier. */
export class VerifyError extends PhaseError<VerifyCode> {}
