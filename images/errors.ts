/**
 * Errors of images/.
 *
 * @module
 */
import { PhaseError } from "../cli/errors.ts";

/** Codes of images/. */
export type ImagesCode = "E_TOOL" | "E_INPUT" | "E_BUILD" | "E_IO";

/** An error of images/. */
export class ImagesError extends PhaseError<ImagesCode> {}

/** Exit statuses of `phase-images`. */
export const IMAGES_EXIT_CODES: Readonly<Record<ImagesCode, number>> = {
  E_TOOL: 30,
  E_INPUT: 31,
  E_BUILD: 32,
  E_IO: 33,
};
