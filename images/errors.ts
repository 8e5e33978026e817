/**
 * Errors of images/.
 *
 * @module
 */
import { PhaseError } from "../core/mod.ts";

/** Codes of images/. */
export type ImagesCode = "E_TOOL" | "E_INPUT" | "E_BUILD" | "E_IO";

/** An error of images/. */
export class ImagesError extends PhaseError<ImagesCode> {}
