/**
 * The error family of wasm/: one literal code per job outcome and per
 * receipt failure, each with its own exit status.
 *
 * @module
 */
import { PhaseError } from "../cli/errors.ts";

/** Codes of the WASM runtime and the receipt verifier. */
export type WasmCode =
  | "E_MODULE"
  | "E_IMPORT"
  | "E_TRAP"
  | "E_TIMEOUT"
  | "E_MEMORY"
  | "E_OUTPUT"
  | "E_EXIT"
  | "E_RECEIPT"
  | "E_IO"
  | "E_KEY"
  | "E_SIGNATURE"
  | "E_TRUST";

/** An error of the WASM runtime or the receipt verifier. */
export class WasmError extends PhaseError<WasmCode> {}

/** Exit statuses of `phase-wasm` (2, 13 and 70 are shared by every CLI). */
export const WASM_EXIT_CODES: Readonly<Record<WasmCode, number>> = {
  E_MODULE: 3,
  E_IMPORT: 4,
  E_TRAP: 5,
  E_TIMEOUT: 6,
  E_MEMORY: 7,
  E_OUTPUT: 8,
  E_EXIT: 9,
  E_RECEIPT: 10,
  E_IO: 11,
  E_KEY: 12,
  E_SIGNATURE: 14,
  E_TRUST: 15,
};
