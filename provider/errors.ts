/**
 * The provider's error family.
 *
 * @module
 */
import { PhaseError } from "../core/mod.ts";

/**
 * Codes of the provider: `E_KEY` (the signing key cannot be loaded or
 * made), `E_TRUST` (the trust file cannot be read or parsed), `E_BIND`
 * (cannot listen), `E_ROOT` (the root cannot be scanned), `E_STATE` (the
 * state directory cannot be made), `E_FETCH` (a running provider asked by
 * `status` / `list` did not answer), `E_CATALOG` (registered, not thrown today).
 */
export type ProviderCode =
  | "E_KEY"
  | "E_TRUST"
  | "E_BIND"
  | "E_ROOT"
  | "E_STATE"
  | "E_FETCH"
  | "E_CATALOG";

/**
 * An error of the provider, thrown by {@link startProvider}: a
 * {@link PhaseError} with a {@link ProviderCode}, a hint and the cause.
 */
export class ProviderError extends PhaseError<ProviderCode> {}
