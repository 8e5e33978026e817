import { PhaseError } from "../cli/errors.ts";

/** Codes of the signer. */
export type SignCode =
  | "E_EXISTS"
  | "E_KEY"
  | "E_KEY_MODE"
  | "E_ARTIFACT"
  | "E_MANIFEST"
  | "E_IO";

/** An error of keygen / sign. */
export class SignError extends PhaseError<SignCode> {}

/** Exit statuses of the sign entrypoint. */
export const SIGN_EXIT_CODES: Readonly<Record<SignCode, number>> = {
  E_EXISTS: 3,
  E_KEY: 4,
  E_KEY_MODE: 5,
  E_ARTIFACT: 6,
  E_MANIFEST: 7,
  E_IO: 8,
};
