/**
 * The provider's error family.
 *
 * @module
 */
import { PhaseError } from "../core/mod.ts";

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
