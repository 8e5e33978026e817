import { PhaseError } from "../cli/errors.ts";

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

/** Exit statuses of the `verify` entrypoint (formats.md §1 table). */
export const VERIFY_EXIT_CODES: Readonly<Record<VerifyCode, number>> = {
  E_SCHEMA: 3,
  E_SIGNATURE: 4,
  E_MISMATCH: 5,
  E_EXPIRED: 6,
  E_ROLLBACK: 7,
  E_SIZE: 8,
  E_DIGEST: 9,
  E_TRUST: 10,
  E_IO: 11,
};
