/**
 * The provider's error family.
 *
 * @module
 */
import { PhaseError } from "../cli/errors.ts";

/** Codes of the provider. */
export type ProviderCode =
  | "E_KEY"
  | "E_TRUST"
  | "E_BIND"
  | "E_ROOT"
  | "E_STATE"
  | "E_FETCH"
  | "E_CATALOG";

/** An error of `serve` / `provider`. */
export class ProviderError extends PhaseError<ProviderCode> {}

/** Exit statuses of the provider entrypoints (distinct per code). */
export const PROVIDER_EXIT_CODES: Readonly<Record<ProviderCode, number>> = {
  E_KEY: 3,
  E_TRUST: 4,
  E_BIND: 5,
  E_ROOT: 6,
  E_STATE: 7,
  E_FETCH: 8,
  E_CATALOG: 9,
};
