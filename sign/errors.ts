import { PhaseError } from "../core/mod.ts";

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
