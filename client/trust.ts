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
  verifyTrustStep,
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

/** Most origins discover asks for the trust chain (TM-08: a flood of DHT values cannot make it ask more). */
export const MAX_TRUST_ORIGINS = 8;

/** A source that may serve `/trust/<version>.json`, and the newest version it claims. */
export interface TrustOrigin {
  /** An HTTP(S) URL on the origin (only its origin is used). */
  readonly url: string;
  /**
   * The newest trust version the source claims (a record's `trust_version`,
   * the mDNS TXT `trust_version`): a hint only. A source whose claim is at
   * or below the trust already held is not asked; one without a claim is.
   */
  readonly claims?: number;
}

/** What {@link reachTrust} needs. */
export interface ReachTrustOptions {
  /** Where the walk starts: the newest trust held (stored, else pinned). */
  readonly start: Trust;
  /** The trust-version floor (the walk never ends below it). */
  readonly floor?: number;
  /** Sources, best first; at most {@link MAX_TRUST_ORIGINS} distinct origins are asked. */
  readonly origins: readonly TrustOrigin[];
  /** The clock. */
  readonly now: Date;
  /** The whole walk's deadline, in milliseconds (each request is bounded by it too). */
  readonly deadlineMs: number;
  /** Most versions accepted (default {@link MAX_TRUST_STEPS}). */
  readonly maxSteps?: number;
  /** The fetch used. */
  readonly fetchFn?: FetchFn;
  /** Accepted and refused versions are logged here. */
  readonly logger?: Logger;
}

/** What {@link reachTrust} reached. */
export interface ReachedTrust {
  /** The newest trust reached (`start` when nothing newer verified). */
  readonly trust: Trust;
  /** The origins asked, in order. */
  readonly asked: readonly string[];
}

/**
 * Walks the trust chain for a step that must not write (discover, TM-09):
 * from `start`, asks the sources for `/trust/<N+1>.json` in turn; a
 * version that does not verify from the trust reached so far (a rollback,
 * a gap, a bad signature, above {@link MAX_TRUST_BYTES}) is logged and the
 * next source is asked, so a hostile source changes nothing. A source
 * that has no version N+1, or served a bad one, is not asked again. Never
 * throws for what a source serves, never persists, and ends within
 * `deadlineMs` with the newest trust verified by then.
 */
export async function reachTrust(o: ReachTrustOptions): Promise<ReachedTrust> {
  const origins: string[] = [];
  for (const s of o.origins) {
    if (s.claims !== undefined && s.claims <= o.start.version) continue;
    let origin: string;
    try {
      const u = new URL(s.url);
      if (u.protocol !== "http:" && u.protocol !== "https:") continue;
      origin = u.origin;
    } catch {
      continue;
    }
    if (!origins.includes(origin)) origins.push(origin);
    if (origins.length >= MAX_TRUST_ORIGINS) break;
  }
  if (origins.length === 0) return { trust: o.start, asked: [] };
  const signal = AbortSignal.timeout(o.deadlineMs);
  const limits: TransferLimits = {
    headersTimeoutMs: o.deadlineMs,
    stallTimeoutMs: o.deadlineMs,
    minRateBytesPerS: 0,
    minRateWindowMs: o.deadlineMs,
  };
  const done = new Set<string>();
  let current = o.start;
  const fetchVersion = async (v: number, max: number): Promise<Uint8Array | undefined> => {
    for (const origin of origins) {
      if (done.has(origin) || signal.aborted) continue;
      const url = new URL(`/trust/${v}.json`, origin).href;
      let bytes: Uint8Array;
      try {
        ({ bytes } = await fetchCapped(url, max, {
          limits,
          fetchFn: o.fetchFn,
          logger: o.logger,
          accept: "application/json",
          signal,
        }));
      } catch (err) {
        done.add(origin);
        o.logger?.info("trust_version_unavailable", { url, error: (err as Error).message });
        continue;
      }
      try {
        // Checked here, per source: a bad answer from one source must not
        // end the walk when another serves the genuine version.
        verifyTrustStep(current, bytes, o.now);
        return bytes;
      } catch (err) {
        done.add(origin);
        o.logger?.warn("trust_version_refused", {
          url,
          error: (err as Error).message,
          threat: "TM-09",
        });
      }
    }
    return undefined;
  };
  try {
    const walk = await walkTrustChain(o.start, fetchVersion, {
      maxSteps: o.maxSteps ?? MAX_TRUST_STEPS,
      maxBytes: MAX_TRUST_BYTES,
      now: o.now,
      floor: o.floor,
      onAccept: (step) => {
        current = step.trust;
        o.logger?.info("trust_rotated", {
          version: step.trust.version,
          keys: [...step.trust.keys.keys()],
          threshold: step.trust.threshold,
          expired: step.expired,
          persisted: false,
          threat: "TM-09",
        });
        return Promise.resolve();
      },
    });
    current = walk.trust;
  } catch (err) {
    // Not reachable with the per-source check above; keep what verified.
    o.logger?.warn("trust_walk_failed", { error: (err as Error).message, threat: "TM-09" });
  }
  return { trust: current, asked: origins };
}
