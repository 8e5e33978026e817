/**
 * Errors of deb/.
 *
 * @module
 */
import { PhaseError } from "../core/mod.ts";

/** Codes of deb/. */
export type DebCode = "E_INPUT" | "E_DIGEST" | "E_BUILD" | "E_TOOL";

/** An error of deb/. */
export class DebError extends PhaseError<DebCode> {}
