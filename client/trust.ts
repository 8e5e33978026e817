/**
 * Walking the trust chain before a fetch (formats.md §1.1, TM-09): from
 * the newest trust version this device accepted (re-verified from its
 * pinned trust file), ask the release's sources for `/trust/<N+1>.json`,
 * verify each step, persist it beside the rollback floor (not in private
 * mode), and return the newest trust: the one manifests are verified under.
 *
 * @module
 */
import type { Logger } from "../core/mod.ts";
import { DEFAULT_LIMITS, fetchCapped, type FetchFn, type TransferLimits } from "../net/mod.ts";
import {
  loadStoredTrust,
  MAX_TRUST_BYTES,
  MAX_TRUST_STEPS,
  recordTrustStep,
  type Trust,
  walkTrustChain,
} from "../verify/mod.ts";

/** How a fetch walks the trust chain. */
export interface TrustChainOptions {
  /**
   * Keep each accepted version in `<state>/trust/` and raise the
   * trust-version floor. Private mode keeps them too, in its tmpfs state
   * (`<private root>/state`, gone at power-off), so its kexec step verifies
   * under the same trust as its fetch; false keeps nothing.
   */
  readonly persist: boolean;
  /** Most versions accepted in one walk (default {@link MAX_TRUST_STEPS}). */
  readonly maxSteps?: number;
}

/** What {@link resolveTrust} needs. */
export interface ResolveTrustOptions {
  /** The device's pinned trust (its `--trust` file). */
  readonly pinned: Trust;
  /** The state directory with the rollback floor (`<cache>/state`). */
  readonly stateDir: string;
  /** Origins asked for `/trust/<version>.json`, in order. */
  readonly origins: readonly string[];
  /** Persistence and bounds. */
  readonly chain: TrustChainOptions;
  /** The clock. */
  readonly now: Date;
  /** Header, stall and rate limits of each request. */
  readonly limits?: TransferLimits;
  /** The fetch used (over Tor: `socksFetch`). */
  readonly fetchFn?: FetchFn;
  /** Accepted and refused versions are logged here. */
  readonly logger?: Logger;
  /**
   * Called before each write into `stateDir` (private mode passes
   * `checkPrivateTree`, TM-13); a throw stops the walk.
   */
  readonly beforeWrite?: () => Promise<void>;
}

/**
 * Returns the newest trust reachable from the pinned one. Throws
 * `E_TRUST` when a source serves a version that does not verify (the
 * versions accepted before it are kept) or when the device's
 * trust-version floor cannot be reached.
 */
export async function resolveTrust(o: ResolveTrustOptions): Promise<Trust> {
  const stored = await loadStoredTrust(o.stateDir, o.pinned, o.now);
  const fetchVersion = async (v: number, max: number): Promise<Uint8Array | undefined> => {
    for (const origin of o.origins) {
      const url = new URL(`/trust/${v}.json`, origin).href;
      try {
        const { bytes } = await fetchCapped(url, max, {
          limits: o.limits ?? DEFAULT_LIMITS,
          fetchFn: o.fetchFn,
          logger: o.logger,
          accept: "application/json",
        });
        return bytes;
      } catch (err) {
        // A source without this version (404) or unreachable: ask the next.
        o.logger?.info("trust_version_unavailable", {
          url,
          error: (err as Error).message,
        });
      }
    }
    return undefined;
  };
  const walk = await walkTrustChain(stored.trust, fetchVersion, {
    maxSteps: o.chain.maxSteps ?? MAX_TRUST_STEPS,
    maxBytes: MAX_TRUST_BYTES,
    now: o.now,
    floor: stored.floor,
    onAccept: async (step) => {
      if (o.chain.persist) await o.beforeWrite?.();
      const floor = o.chain.persist ? await recordTrustStep(o.stateDir, step) : undefined;
      o.logger?.info("trust_rotated", {
        version: step.trust.version,
        keys: [...step.trust.keys.keys()],
        threshold: step.trust.threshold,
        expired: step.expired,
        persisted: floor !== undefined,
        threat: "TM-09",
      });
    },
  });
  if (walk.capped) {
    o.logger?.warn("trust_walk_capped", {
      version: walk.trust.version,
      max_steps: o.chain.maxSteps ?? MAX_TRUST_STEPS,
      note: "newer trust versions are walked on the next fetch",
    });
  }
  return walk.trust;
}
