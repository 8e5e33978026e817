/**
 * The error family of wasm/: one literal code per job outcome and per
 * receipt failure, each with its own exit status.
 *
 * @module
 */
import { PhaseError } from "../core/mod.ts";

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
  | "E_TRUST"
  | "E_TOO_LARGE"
  | "E_RUNTIME"
  | "E_CANCELLED";

/** An error of the WASM runtime or the receipt verifier. */
export class WasmError extends PhaseError<WasmCode> {}
