/**
 * Artifacts held in memory (issue 17 §2). A private snapshot that is asked
 * for is read once in the background, hashed while it is read, and kept
 * while it fits a byte budget; later answers stream sub-arrays of it. The
 * runtime sends those without a file read per chunk: a bare server gave
 * 3.8-4.4 GB/s from memory against 1.9-2.6 GB/s from the file (wrk, 4
 * connections, bench/README.md), where nginx's `sendfile` gives 2.4-3.5.
 *
 * The bytes are kept only when they hash to the artifact's digest (TM-19):
 * what is served from memory is exactly what the ETag names, even if the
 * snapshot on disk was altered behind the provider's back.
 *
 * @module
 */
import type { Logger } from "../core/mod.ts";
import { readFileHashed, SHA256_PREFIX } from "../verify/mod.ts";
import { type Artifact, identityOf, sameIdentity } from "./catalog.ts";

/** Default budget of artifact bytes held in memory (`serve --memory-cache-mib`), in bytes. */
export const MEMORY_CACHE_BYTES = 512 * 1024 * 1024;
/**
 * An entry used within this long is never dropped to make room, in ms:
 * two large artifacts asked for in turn would otherwise evict each other
 * and re-read their whole file on every request. What does not fit is
 * served from its file until room frees.
 */
export const MEMORY_IDLE_EVICT_MS = 60_000;
/** Largest `serve --memory-cache-mib` accepted, in MiB (64 GiB). */
export const MAX_MEMORY_CACHE_MIB = 65_536;
/** Bytes handed to the HTTP layer per chunk of a body streamed from memory. */
export const MEMORY_CHUNK_BYTES = 1024 * 1024;

/** Counters of the memory cache, shown in the provider's metrics. */
export interface MemoryCounters {
  /** Artifact bytes held now. */
  bytes: number;
  /** Artifacts held now. */
  artifacts: number;
  /** Bodies answered from memory. */
  hits: number;
  /** Snapshots read, hashed and kept. */
  loads: number;
  /** Snapshots read whose bytes did not hash to their digest (TM-19): not kept. */
  refused: number;
  /** Loads not started: no room without dropping an entry used in the last minute. */
  full: number;
}

/** New zeroed counters. */
export function newMemoryCounters(): MemoryCounters {
  return { bytes: 0, artifacts: 0, hits: 0, loads: 0, refused: 0, full: 0 };
}

/**
 * Holds verified artifact bytes by digest, at most `budgetBytes` in all:
 * room is made from digests the catalog no longer serves, then from the
 * least recently used entry idle for {@link MEMORY_IDLE_EVICT_MS}. One
 * load runs at a time, and room is made before it reads, so memory holds
 * at most the budget (bodies still streaming from a dropped entry keep it
 * until they end).
 */
export class ArtifactMemory {
  readonly #budget: number;
  readonly #logger: Logger;
  readonly #counters: MemoryCounters;
  readonly #live: (digest: string) => boolean;
  readonly #onMismatch: (a: Artifact) => void;
  readonly #now: () => number;
  /** Digest -> bytes and last use (ms); Map order is use order, least recent first. */
  readonly #held = new Map<string, { bytes: Uint8Array; used: number }>();
  #loading: Promise<void> | undefined;

  /**
   * `live(digest)` says whether the catalog still serves a digest (what it
   * no longer serves is dropped first); `onMismatch` hears of a snapshot
   * whose bytes no longer hash to its digest (rescan it); `now` is the
   * clock of last uses, in ms.
   */
  constructor(
    budgetBytes: number,
    logger: Logger,
    counters: MemoryCounters,
    live: (digest: string) => boolean,
    onMismatch: (a: Artifact) => void = () => {},
    now: () => number = () => performance.now(),
  ) {
    this.#budget = budgetBytes;
    this.#logger = logger;
    this.#counters = counters;
    this.#live = live;
    this.#onMismatch = onMismatch;
    this.#now = now;
  }

  /** The verified bytes of `digest` when held (they become the most recently used). */
  get(digest: string): Uint8Array | undefined {
    const entry = this.#held.get(digest);
    if (!entry) return undefined;
    this.#held.delete(digest);
    this.#held.set(digest, { bytes: entry.bytes, used: this.#now() });
    return entry.bytes;
  }

  /**
   * Starts holding `a` when it is a private snapshot that fits the budget
   * and no other load runs. Returns the load, for tests; callers do not
   * wait for it.
   */
  want(a: Artifact): Promise<void> | undefined {
    // Only a snapshot nobody rewrites: a file in the root (`--no-snapshot`)
    // is served by the checked stream, which notices a rewrite (TM-19).
    if (!a.immutable || a.size === 0 || a.size > this.#budget) return undefined;
    if (this.#loading || this.#held.has(a.digest)) return undefined;
    this.#loading = this.#load(a).finally(() => this.#loading = undefined);
    return this.#loading;
  }

  async #load(a: Artifact): Promise<void> {
    const live = this.#live;
    // Room first, so that memory never holds the budget plus the new bytes.
    for (const digest of [...this.#held.keys()]) if (!live(digest)) this.#drop(digest);
    const idleBefore = this.#now() - MEMORY_IDLE_EVICT_MS;
    for (const [digest, e] of [...this.#held]) {
      if (this.#counters.bytes + a.size <= this.#budget || e.used > idleBefore) break;
      this.#drop(digest);
    }
    if (this.#counters.bytes + a.size > this.#budget) {
      this.#counters.full++;
      return;
    }
    let got: { bytes: Uint8Array; digest: string } | undefined;
    try {
      using file = await Deno.open(a.path, { read: true });
      if (sameIdentity(identityOf(await file.stat()), a.identity)) {
        got = await readFileHashed(file, a.size);
      }
    } catch (err) {
      this.#logger.warn("artifact_memory_load_failed", { path: a.path, error: String(err) });
      return;
    }
    // TM-19: only bytes that hash to the digest the ETag names are held.
    if (!got || got.digest !== SHA256_PREFIX + a.digest) {
      this.#counters.refused++;
      this.#logger.warn("artifact_changed", { path: a.path, digest: a.digest, threat: "TM-19" });
      this.#onMismatch(a);
      return;
    }
    if (!live(a.digest)) return;
    this.#held.set(a.digest, { bytes: got.bytes, used: this.#now() });
    this.#counters.bytes += a.size;
    this.#counters.artifacts++;
    this.#counters.loads++;
  }

  #drop(digest: string): void {
    const entry = this.#held.get(digest);
    if (!entry) return;
    this.#held.delete(digest);
    this.#counters.bytes -= entry.bytes.length;
    this.#counters.artifacts--;
  }
}
