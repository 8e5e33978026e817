/**
 * The client's error family (discovery and fetch). Verification failures
 * keep their own `VerifyError` codes and exit statuses (formats.md §1).
 *
 * @module
 */
import { PhaseError } from "../cli/mod.ts";
import { VERIFY_EXIT_CODES } from "../verify/mod.ts";

/** Codes of the client. */
export type ClientCode =
  | "E_POLICY"
  | "E_FETCH"
  | "E_TOO_LARGE"
  | "E_STALL"
  | "E_REDIRECT"
  | "E_PRIVATE_ROOT"
  | "E_CACHE"
  | "E_CAPTIVE"
  | "E_NO_CANDIDATE"
  | "E_TOR";

/** An error of discovery or fetch. */
export class ClientError extends PhaseError<ClientCode> {}

/** Exit statuses of `fetch` and `discover`: verify's, then the client's own. */
export const CLIENT_EXIT_CODES: Readonly<Record<string, number>> = {
  ...VERIFY_EXIT_CODES,
  E_POLICY: 20,
  E_FETCH: 21,
  E_TOO_LARGE: 22,
  E_STALL: 23,
  E_REDIRECT: 24,
  E_PRIVATE_ROOT: 25,
  E_CACHE: 26,
  E_CAPTIVE: 27,
  E_NO_CANDIDATE: 28,
  E_TOR: 29,
};
