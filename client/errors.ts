/**
 * The client's error family (discovery and fetch). Verification failures
 * keep their own `VerifyError` codes and exit statuses (formats.md §1).
 *
 * @module
 */
import { PhaseError } from "../core/mod.ts";

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
