/**
 * The transport's error family. Its codes are the client's fetch codes of
 * the one registry (core/errors.ts): a caller tells failures apart by
 * `code`, whichever component threw.
 *
 * @module
 */
import { PhaseError } from "../core/mod.ts";

/** Codes of the transport. */
export type NetCode =
  | "E_POLICY"
  | "E_FETCH"
  | "E_TOO_LARGE"
  | "E_STALL"
  | "E_REDIRECT"
  | "E_TOR";

/** An error of a transfer, the SOCKS dialer or the Tor launcher. */
export class NetError extends PhaseError<NetCode> {}
