/**
 * The trust chain (formats.md §1.1): version N+1 of a trust file is valid
 * only when a threshold of version N's keys AND a threshold of its own keys
 * signed it, each key counted once. A device walks from the trust it has
 * pinned up to the newest version it can reach, one step at a time, so a
 * stolen or retired release key stops being trusted without re-flashing the
 * device (TM-09). Never touches the network: versions are fetched by the
 * caller's function.
 *
 * @module
 */
import { VerifyError } from "./errors.ts";
import { MAX_TRUST_BYTES, parseTrust, type Trust, trustExpired } from "./trust.ts";
import { countValidSignatures } from "./verify.ts";
import { signedBytes } from "./jcs.ts";

/** Most trust versions one walk accepts (a provider cannot keep a device walking forever). */
export const MAX_TRUST_STEPS = 16;

function stepError(message: string, hint: string, cause?: unknown): VerifyError {
  return new VerifyError("E_TRUST", message, { hint, cause });
}

/** One accepted step of a walk. */
export interface TrustStep {
  /** The accepted version. */
  readonly trust: Trust;
  /** Its exact bytes (what a device persists). */
  readonly bytes: Uint8Array;
  /** True when it had already expired at `now` (it still let the walk go on). */
  readonly expired: boolean;
  /** Keyids of `prev` that signed it. */
  readonly oldSigners: readonly string[];
  /** Its own keyids that signed it. */
  readonly newSigners: readonly string[];
}

/**
 * Checks one rotation: `nextBytes` must decode strictly as a trust file
 * (at most {@link MAX_TRUST_BYTES}) whose version is exactly
 * `prev.version + 1`, signed (JCS of the document without `signatures`) by
 * at least `prev.threshold` distinct keys of `prev` and at least its own
 * `threshold` distinct keys of its own. A key that signed several times
 * counts once. An expired `prev` still verifies its successor (a device
 * that was off for a year must be able to catch up); `now` only marks the
 * result `expired`. Throws `E_TRUST` with what is missing.
 *
 * @example
 * ```ts ignore
 * const step = verifyTrustStep(pinned, await Deno.readFile("2.json"), new Date());
 * console.log(step.trust.version, step.oldSigners, step.newSigners);
 * ```
 */
export function verifyTrustStep(prev: Trust, nextBytes: Uint8Array, now: Date): TrustStep {
  const want = prev.version + 1;
  if (nextBytes.length > MAX_TRUST_BYTES) {
    throw stepError(
      `trust version ${want}: ${nextBytes.length} bytes, above the ${MAX_TRUST_BYTES}-byte cap`,
      "a trust file is a few keys; this one is not a trust file",
    );
  }
  let next: Trust;
  try {
    next = parseTrust(nextBytes);
  } catch (err) {
    throw stepError(
      `trust version ${want}: ${(err as Error).message}`,
      "the provider serves a malformed trust file; 'deno task trust rotate' writes valid ones",
      err,
    );
  }
  if (next.version !== want) {
    const why = next.version <= prev.version
      ? `a rollback to version ${next.version} (this device trusts version ${prev.version})`
      : `a gap: version ${next.version} follows version ${prev.version}`;
    throw stepError(
      `trust version ${want} expected, got ${why}`,
      "every version is signed by the one before it: publish each version in turn " +
        "(/trust/<version>.json)",
    );
  }
  const message = signedBytes(next.document);
  const oldSigners = countValidSignatures(message, next.signatures, prev);
  const newSigners = countValidSignatures(message, next.signatures, next);
  if (oldSigners.length < prev.threshold) {
    throw stepError(
      `trust version ${want} has ${oldSigners.length} valid signature(s) of version ` +
        `${prev.version}'s keys, ${prev.threshold} required`,
      `a threshold of the keys this device trusts must sign the rotation: ` +
        `deno task trust sign NEXT.json --prev PREV.json --key KEY.pem`,
    );
  }
  if (newSigners.length < next.threshold) {
    throw stepError(
      `trust version ${want} has ${newSigners.length} valid signature(s) of its own keys, ` +
        `${next.threshold} required`,
      "the new keys must sign too (each key once): " +
        "deno task trust sign NEXT.json --prev PREV.json --key NEW.pem",
    );
  }
  return {
    trust: next,
    bytes: nextBytes,
    expired: trustExpired(next, now),
    oldSigners,
    newSigners,
  };
}

/** Fetches the bytes of trust version `version`, at most `maxBytes`; `undefined` when there is none. */
export type FetchTrustVersion = (
  version: number,
  maxBytes: number,
) => Promise<Uint8Array | undefined>;

/** Bounds and state of {@link walkTrustChain}. */
export interface WalkTrustOptions {
  /** Most versions accepted in this walk (default {@link MAX_TRUST_STEPS}). */
  readonly maxSteps?: number;
  /** Largest trust document, in bytes (default {@link MAX_TRUST_BYTES}). */
  readonly maxBytes?: number;
  /** The clock, for expiry (default: now). */
  readonly now?: Date;
  /**
   * The trust-version floor: the highest version accepted before on this
   * device. A walk that ends below it throws (never go back).
   */
  readonly floor?: number;
  /** Called with each step as it is accepted, before the next is fetched (to persist it). */
  readonly onAccept?: (step: TrustStep) => Promise<void>;
}

/** What {@link walkTrustChain} reached. */
export interface TrustWalk {
  /** The newest accepted trust (the pinned one when nothing newer was found). */
  readonly trust: Trust;
  /** The steps accepted, oldest first. */
  readonly steps: readonly TrustStep[];
  /** True when the walk stopped at `maxSteps` (there may be newer versions). */
  readonly capped: boolean;
}

/**
 * Walks the trust chain from `pinned`: asks `fetchVersion` for version
 * N+1, checks it with {@link verifyTrustStep}, and goes on until there is
 * none or `maxSteps` were accepted. An invalid step throws `E_TRUST` (the
 * steps before it were already given to `onAccept`). Ends with the newest
 * accepted trust, which must not be below `floor` (TM-09: never go back).
 * Expired intermediate versions are walked through; whether the result
 * verifies a manifest is decided there (an expired one does not).
 *
 * @example
 * ```ts ignore
 * const walk = await walkTrustChain(pinned, (v, max) => fetchCapped(`${base}/trust/${v}.json`, max),
 *   { maxSteps: 16, maxBytes: 256 * 1024, now: new Date(), floor: 1 });
 * ```
 */
export async function walkTrustChain(
  pinned: Trust,
  fetchVersion: FetchTrustVersion,
  opts: WalkTrustOptions = {},
): Promise<TrustWalk> {
  const maxSteps = opts.maxSteps ?? MAX_TRUST_STEPS;
  const maxBytes = Math.min(opts.maxBytes ?? MAX_TRUST_BYTES, MAX_TRUST_BYTES);
  const now = opts.now ?? new Date();
  const steps: TrustStep[] = [];
  let current = pinned;
  let capped = false;
  while (true) {
    if (steps.length >= maxSteps) {
      capped = true;
      break;
    }
    const bytes = await fetchVersion(current.version + 1, maxBytes);
    if (bytes === undefined) break;
    if (bytes.length > maxBytes) {
      throw stepError(
        `trust version ${current.version + 1}: more than ${maxBytes} bytes`,
        "a trust file is a few keys; this one is not a trust file",
      );
    }
    const step = verifyTrustStep(current, bytes, now);
    await opts.onAccept?.(step);
    steps.push(step);
    current = step.trust;
  }
  if (opts.floor !== undefined && current.version < opts.floor) {
    throw stepError(
      `trust version ${current.version} is below this device's trust-version floor ` +
        `${opts.floor} (TM-09: never go back to an older trust)`,
      `the device accepted trust version ${opts.floor} before; reach it again from a ` +
        "provider that serves the chain, or restore the device's state directory",
    );
  }
  return { trust: current, steps, capped };
}
