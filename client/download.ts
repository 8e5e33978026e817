/**
 * Downloading one artifact into the content-addressed cache: one pass that
 * hashes while it writes, never more than `size` bytes (TM-05), stall and
 * minimum-rate timeouts (TM-06), resume by Range from the partial prefix,
 * failover across sources, and a parallel ranged download from several
 * providers that still writes and hashes strictly in order (so the partial
 * file is always a resumable prefix and memory stays bounded).
 *
 * @module
 */
import { createHash, type Hash } from "node:crypto";
import { type Logger, PhaseError } from "../core/mod.ts";
import { VerifyError } from "../verify/mod.ts";
import { cachedPath, type CacheLayout, syncDir } from "./cache.ts";
import { ClientError } from "./errors.ts";
import {
  DEFAULT_LIMITS,
  type FetchFn,
  openRequest,
  rawHttpFetch,
  readGuarded,
  type TransferLimits,
} from "../net/mod.ts";

/** Size of one ranged segment in a parallel download, in bytes. */
export const SEGMENT_BYTES = 4 * 1024 * 1024;
/** Segments a parallel download may hold in memory ahead of the hasher, per provider. */
export const WINDOW_SEGMENTS_PER_SOURCE = 2;
/**
 * A source of a parallel download stops taking segments when at least two
 * other sources delivered their last segment this many times faster: a
 * slow origin is then left to the clients that have nothing else (a boot
 * storm, issue 12 §4). It still serves if the others fail (sequential
 * fallback). 2x rather than 4x: bench/storm measured a lower origin share
 * with it (bench/README.md).
 */
export const RETIRE_SLOWER_THAN = 2;
/** Plain failures (a reset, a refused range) a source may have in a parallel download before it leaves it. */
export const SEGMENT_RETRIES = 2;
/** Pause before a source that failed a segment is given another, in milliseconds. */
export const SEGMENT_RETRY_PAUSE_MS = 250;
/** Smallest remaining size worth splitting across providers, in bytes. */
export const PARALLEL_MIN_BYTES = 16 * 1024 * 1024;
/** Bytes collected before one write to the partial file (and one hash update), in bytes. */
export const WRITE_BUFFER_BYTES = 1024 * 1024;
/** Write buffers of one stream: one filling from the socket, the others being written. */
export const WRITE_BUFFERS = 4;
/**
 * Bytes written between two background `fdatasync` calls of the partial
 * file, in bytes: writeback runs during the transfer instead of all of it
 * in the final fsync (which is still done before the rename).
 */
export const WRITEBACK_BYTES = 64 * 1024 * 1024;
/** Most full download rounds per artifact (a round ends with a digest check). */
export const MAX_ROUNDS = 6;
/**
 * Most sources one artifact's download takes on while it runs (found by
 * re-discovery): bounds the workers, the segments held in memory and the
 * number of times a sequential stream is cut to go parallel (TM-08).
 */
export const MAX_ADDED_SOURCES = 8;

/**
 * Longest wait a busy source's `Retry-After` may impose before the next
 * try, in ms: a provider cannot park a client for longer (TM-18 on the
 * client side; a larger value is cut to this).
 */
export const MAX_BUSY_WAIT_MS = 10_000;
/**
 * Total time one artifact's download may spend waiting on busy sources, in
 * ms; beyond it a busy answer is a plain failure. Well inside the boot's
 * fetch deadline (boot/ FETCH_TIMEOUT_MS, 15 min).
 */
export const BUSY_BUDGET_MS = 5 * 60_000;
/** Shortest wait before a busy source is asked again (a `Retry-After: 0` must not spin), in ms. */
export const MIN_BUSY_WAIT_MS = 250;

/**
 * A `503` with a `Retry-After`: the source is busy (a download cap, TM-18),
 * not failing and not lying (TM-07): another source is tried, else the
 * download waits at most {@link MAX_BUSY_WAIT_MS} and asks again. A `503`
 * without `Retry-After` stays a plain failure.
 */
export class BusyError extends ClientError {
  /** How long the source asked to wait, capped at MAX_BUSY_WAIT_MS, in ms. */
  readonly waitMs: number;
  /** A busy answer from `url` asking to wait `waitMs` (already capped). */
  constructor(url: string, waitMs: number) {
    super("E_FETCH", `${url}: HTTP 503 busy (retry after ${Math.ceil(waitMs / 1000)} s)`);
    this.waitMs = waitMs;
  }
}

/**
 * The wait a `503` asks for, in ms (delta-seconds or an HTTP date, within
 * {@link MIN_BUSY_WAIT_MS}..{@link MAX_BUSY_WAIT_MS}), or undefined when it is not a busy answer.
 */
export function busyWaitMs(
  status: number,
  retryAfter: string | null,
  now: number = Date.now(),
): number | undefined {
  if (status !== 503 || retryAfter === null) return undefined;
  const v = retryAfter.trim();
  let ms: number;
  if (/^[0-9]{1,9}$/.test(v)) ms = Number(v) * 1000;
  else {
    const at = Date.parse(v);
    if (Number.isNaN(at)) return undefined;
    ms = at - now;
  }
  return Math.min(MAX_BUSY_WAIT_MS, Math.max(MIN_BUSY_WAIT_MS, ms));
}

/** Waits `ms`, or less when `wake` settles first. */
async function pause(ms: number, wake?: Promise<unknown>): Promise<void> {
  let t: ReturnType<typeof setTimeout> | undefined;
  await Promise.race([
    new Promise<void>((r) => (t = setTimeout(r, ms))),
    ...(wake ? [wake.then(() => {}, () => {})] : []),
  ]);
  clearTimeout(t);
}

/**
 * Sources found while a download runs (re-discovery, e.g. peers that
 * verified the release and re-serve it): hints like every other source
 * (TM-07, TM-08). A peer that sends wrong bytes is dropped for the rest of
 * the run and its segments are fetched elsewhere.
 */
export interface MoreSources {
  /** Every source found so far (the download ignores those it already has or dropped). */
  list(): readonly ArtifactSource[];
  /** Resolves when {@link MoreSources.list} may have grown (it may never resolve). */
  changed(): Promise<void>;
}

/** A place an artifact can be fetched from. */
export interface ArtifactSource {
  /** Provider identity (its origin): parallel downloads use distinct ids. */
  readonly id: string;
  /** Candidate URLs at this source, tried in order (e.g. /cas/sha256/<hex>, then by name). */
  readonly urls: readonly string[];
  /** `ipfs`: a trustless gateway answer (raw block); tried after HTTP sources. */
  readonly kind: "http" | "ipfs";
}

/** What to download and how. */
export interface DownloadOptions {
  /** The cache to download into. */
  readonly layout: CacheLayout;
  /** The artifact's name, for logs and errors. */
  readonly name: string;
  /** The hex SHA-256 its content must hash to (its name in the cache). */
  readonly hex: string;
  /** Its exact size, in bytes: nothing beyond is read (TM-05). */
  readonly size: number;
  /** Where it may be fetched from, in failover order. */
  readonly sources: readonly ArtifactSource[];
  /** Header, stall and minimum-rate limits of every request (default `DEFAULT_LIMITS`). */
  readonly limits?: TransferLimits;
  /** The fetch used (default: the raw HTTP/1.1 client, the global `fetch` for https). */
  readonly fetchFn?: FetchFn;
  /** Structured log of failovers and retries. */
  readonly logger?: Logger;
  /** Called with the bytes written and hashed so far. */
  readonly onProgress?: (done: number) => void;
  /**
   * Called with the bytes already on disk before this run transferred any:
   * a resumed prefix, or the whole artifact on a cache hit (so progress
   * counts them as done, not as transferred).
   */
  readonly onPresent?: (bytes: number) => void;
  /** Use several providers at once when more than one is known (default true). */
  readonly parallel?: boolean;
  /** Size of one ranged segment of a parallel download, in bytes (default 4 MiB). */
  readonly segmentBytes?: number;
  /** Smallest remainder worth splitting across providers, in bytes (default 16 MiB). */
  readonly parallelMinBytes?: number;
  /**
   * Source ids dropped for the rest of the run (shared by every artifact of
   * one fetch): a source that alone sent bytes that did not hash to the
   * digest is added here and never asked again (TM-01, TM-07). Default: a
   * set private to this artifact.
   */
  readonly dropped?: Set<string>;
  /**
   * Sources found while this download runs: a sequential stream is cut
   * (its prefix kept) to go parallel once a new one appears, and a
   * parallel download gives new ones their own share of the segments.
   * At most {@link MAX_ADDED_SOURCES} are taken on.
   */
  readonly more?: MoreSources;
}

/** The result of one artifact. */
export interface DownloadResult {
  /** Its file in the cache, `<cache>/cas/sha256/<hex>`, verified. */
  readonly path: string;
  /** True when it was already in the cache (re-hashed, not downloaded). */
  readonly cached: boolean;
  /** The sources (ids) whose bytes it holds. */
  readonly sources: readonly string[];
}

const ACCEPT_RAW = "application/vnd.ipld.raw, application/octet-stream;q=0.9";

async function writeAll(file: Deno.FsFile, chunk: Uint8Array): Promise<void> {
  let off = 0;
  while (off < chunk.length) off += await file.write(chunk.subarray(off));
}

/** Parses `Content-Range: bytes a-b/total`. */
function contentRange(
  h: string | null,
): { start: number; end: number; total: number | undefined } | undefined {
  const m = h ? /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(h.trim()) : null;
  if (!m) return undefined;
  return { start: Number(m[1]), end: Number(m[2]), total: m[3] === "*" ? undefined : Number(m[3]) };
}

/**
 * Stands in the contributors of a partial file for a prefix found on disk:
 * left by an earlier run or another candidate, its sender is unknown, so a
 * digest failure after resuming it blames no one (TM-07).
 */
export const EARLIER_PREFIX = "(prefix from an earlier attempt)";

/** Bytes `[start, end)` of a partial file and the source that sent them. */
export interface SentRange {
  /** First byte, inclusive. */
  readonly start: number;
  /** End, exclusive. */
  readonly end: number;
  /** The source id that sent them ({@link EARLIER_PREFIX} for a prefix found on disk). */
  readonly id: string;
}

/** An open partial file: its bytes, their hash so far, who sent them. */
export interface PartialFile {
  file: Deno.FsFile;
  pos: number;
  hash: Hash;
  contributors: Set<string>;
  /**
   * Who sent which bytes (this run): after a digest mismatch with several
   * senders, each sender's ranges are fetched again elsewhere to find the
   * liar (TM-07). Absent: not tracked.
   */
  ranges?: SentRange[];
}

/** Opens (or creates) the partial file and re-hashes its prefix. */
async function openPartial(path: string, size: number): Promise<PartialFile> {
  const file = await Deno.open(path, { read: true, write: true, create: true, mode: 0o600 });
  const hash = createHash("sha256");
  let len = (await file.stat()).size;
  if (len > size) {
    await file.truncate(0);
    len = 0;
  }
  const buf = new Uint8Array(Math.min(1024 * 1024, Math.max(len, 1)));
  let pos = 0;
  while (pos < len) {
    const n = await file.read(buf.subarray(0, Math.min(buf.length, len - pos)));
    if (n === null) break;
    hash.update(buf.subarray(0, n));
    pos += n;
  }
  if (pos !== len) {
    await file.truncate(pos);
  }
  await file.seek(pos, Deno.SeekMode.Start);
  // TM-07: a prefix is trusted only for a resume by whoever wrote it in
  // this run; one found on disk counts as a second, unknown contributor.
  return {
    file,
    pos,
    hash,
    contributors: new Set(pos > 0 ? [EARLIER_PREFIX] : []),
    ranges: pos > 0 ? [{ start: 0, end: pos, id: EARLIER_PREFIX }] : [],
  };
}

async function restart(p: PartialFile): Promise<void> {
  await p.file.truncate(0);
  await p.file.seek(0, Deno.SeekMode.Start);
  p.pos = 0;
  p.hash = createHash("sha256");
  p.contributors.clear();
  p.ranges = [];
}

/** Notes that `id` sent bytes `[start, end)` (merged with its previous range when adjacent). */
function noteRange(p: PartialFile, start: number, end: number, id: string): void {
  if (!p.ranges || end <= start) return;
  const last = p.ranges[p.ranges.length - 1];
  if (last && last.id === id && last.end === start) {
    p.ranges[p.ranges.length - 1] = { start: last.start, end, id };
  } else p.ranges.push({ start, end, id });
}

/**
 * The write side of one sequential stream. The socket is read straight
 * into a 1 MiB write buffer (raw_http's direct reader, else BYOB), so no
 * byte is copied in JavaScript. A full buffer is hashed in one `update`
 * while it is still in the CPU cache and handed to the writer (the runtime's
 * blocking pool) while the next one fills; `p.pos` counts it once its write
 * completed. After success the hash and `p.pos` cover exactly the bytes on
 * disk; after a failed write the partial starts over (abandon). At most
 * `WRITE_BUFFERS * WRITE_BUFFER_BYTES` bytes are held. Every
 * `WRITEBACK_BYTES` a background `fdatasync` (on a second descriptor, so
 * it does not queue behind the writes) starts the writeback early; the
 * final fsync before the rename is unchanged.
 */
export class PartialSink {
  readonly #p: PartialFile;
  readonly #path: string;
  readonly #onProgress?: (done: number) => void;
  #cur: Uint8Array;
  #fill = 0;
  readonly #free: ArrayBuffer[] = [];
  /** Buffers handed to the writer, in order, not yet written and hashed. */
  readonly #entries: Promise<void>[] = [];
  #tail: Promise<void> = Promise.resolve();
  #failed: unknown;
  #unsynced = 0;
  #sync: Promise<void> | undefined;
  #syncFile: Deno.FsFile | undefined;
  #syncError: unknown;
  #noWriteback = false;

  constructor(p: PartialFile, path: string, onProgress?: (done: number) => void) {
    this.#p = p;
    this.#path = path;
    this.#onProgress = onProgress;
    this.#cur = new Uint8Array(WRITE_BUFFER_BYTES);
    for (let i = 1; i < WRITE_BUFFERS; i++) this.#free.push(new ArrayBuffer(WRITE_BUFFER_BYTES));
  }

  /** The free tail of the current buffer: where the next socket read goes (never empty). */
  space(): Uint8Array {
    return this.#cur.subarray(this.#fill);
  }

  /** Takes back the current buffer after a BYOB read transferred it. */
  adopt(buffer: ArrayBuffer): void {
    this.#cur = new Uint8Array(buffer);
  }

  /** Accounts for bytes read in place into {@link space}, or copies bytes from elsewhere. */
  push(chunk: Uint8Array): Promise<void> | undefined {
    if (chunk.buffer === this.#cur.buffer && chunk.byteOffset === this.#fill) {
      this.#fill += chunk.length;
      return this.#fill === this.#cur.length ? this.#rotate() : undefined;
    }
    return this.#copy(chunk);
  }

  async #copy(chunk: Uint8Array): Promise<void> {
    let off = 0;
    while (off < chunk.length) {
      const k = Math.min(chunk.length - off, this.#cur.length - this.#fill);
      this.#cur.set(chunk.subarray(off, off + k), this.#fill);
      this.#fill += k;
      off += k;
      if (this.#fill === this.#cur.length) await this.#rotate();
    }
  }

  /** Hands the filled part of the current buffer to the writer and takes a free one. */
  async #rotate(): Promise<void> {
    if (this.#failed) throw this.#failed;
    if (this.#fill === 0) return;
    const data = this.#cur.subarray(0, this.#fill);
    this.#fill = 0;
    // Hashed now, while the bytes are still in the CPU cache (a 1 MiB
    // buffer fits in L2; SHA-256 over 2 MiB buffers measured ~20% slower
    // here). The writes are chained (each starts after the previous one
    // completed, on the runtime's blocking pool) and `p.pos` counts a
    // buffer once its write completed; after a failed write abandon()
    // starts the partial over, so the hash never covers bytes not on disk.
    this.#p.hash.update(data);
    const entry = this.#tail.then(async () => {
      if (this.#failed) return;
      try {
        await writeAll(this.#p.file, data);
        this.#written(data.length);
        this.#free.push(data.buffer as ArrayBuffer);
      } catch (err) {
        this.#failed ??= err;
      } finally {
        this.#entries.shift();
      }
    });
    this.#entries.push(entry);
    this.#tail = entry;
    // Wait for a write only when no buffer is free to read into.
    while (this.#free.length === 0 && !this.#failed) await this.#entries[0];
    if (this.#failed) throw this.#failed;
    this.#cur = new Uint8Array(this.#free.pop()!);
  }

  #written(n: number): void {
    this.#p.pos += n;
    this.#onProgress?.(this.#p.pos);
    this.#unsynced += n;
    if (this.#unsynced >= WRITEBACK_BYTES && !this.#sync && !this.#noWriteback) {
      this.#unsynced = 0;
      this.#sync = (async () => {
        if (!this.#syncFile) {
          try {
            this.#syncFile = await Deno.open(this.#path, { read: true });
          } catch {
            // Early writeback is only an optimisation: without a second
            // descriptor the final fsync does all of it.
            this.#noWriteback = true;
            return;
          }
        }
        // An I/O error here is the download's error (the data may be lost).
        await this.#syncFile.syncData();
      })().catch((err) => {
        this.#syncError ??= err;
      }).finally(() => {
        this.#sync = undefined;
      });
    }
  }

  /** Writes and hashes everything received; throws when a write or a writeback failed. */
  async finish(): Promise<void> {
    await this.#rotate();
    await this.#tail;
    if (this.#failed) throw this.#failed;
    await this.#sync;
    this.#closeSync();
    if (this.#syncError) throw this.#syncError;
  }

  /**
   * After a failed transfer: keeps what arrived (the next source resumes
   * after it). When a write or a writeback failed, the hash covers bytes
   * that may not be on disk: the partial starts over from byte 0.
   */
  async abandon(): Promise<void> {
    try {
      await this.finish();
    } catch {
      await this.#tail;
      await this.#sync;
      this.#closeSync();
      await this.#p.file.truncate(0).catch(() => {});
      await this.#p.file.seek(0, Deno.SeekMode.Start).catch(() => {});
      this.#p.pos = 0;
      this.#p.hash = createHash("sha256");
      this.#p.contributors.clear();
      if (this.#p.ranges) this.#p.ranges = [];
    }
  }

  #closeSync(): void {
    try {
      this.#syncFile?.close();
    } catch { /* closed */ }
    this.#syncFile = undefined;
  }
}

/** Why a sequential stream was cut: a new source appeared (not a failure of the source). */
class Cut extends Error {}

/**
 * Streams the rest of the artifact from one URL into the partial file.
 * `cut` stops it early (the prefix received is kept) and throws {@link Cut}.
 */
async function fetchSequential(
  o: DownloadOptions,
  p: PartialFile,
  src: ArtifactSource,
  url: string,
  cut?: AbortSignal,
): Promise<void> {
  const limits = o.limits ?? DEFAULT_LIMITS;
  if (cut?.aborted) throw new Cut();
  const open = await openRequest(
    { url, start: p.pos, accept: src.kind === "ipfs" ? ACCEPT_RAW : undefined },
    { limits, fetchFn: o.fetchFn ?? rawHttpFetch, logger: o.logger, signal: cut },
  ).catch((err) => {
    throw cut?.aborted ? new Cut() : err;
  });
  const onCut = () => open.abort.abort();
  cut?.addEventListener("abort", onCut, { once: true });
  try {
    await streamInto(o, p, src, url, open);
  } catch (err) {
    throw cut?.aborted ? new Cut() : err;
  } finally {
    cut?.removeEventListener("abort", onCut);
  }
}

/** Aborts an opened request and discards what is left of its body. */
async function cancelRequest(open: Awaited<ReturnType<typeof openRequest>>): Promise<void> {
  open.abort.abort();
  await open.response.body?.cancel().catch(() => {});
}

async function streamInto(
  o: DownloadOptions,
  p: PartialFile,
  src: ArtifactSource,
  url: string,
  open: Awaited<ReturnType<typeof openRequest>>,
): Promise<void> {
  const limits = o.limits ?? DEFAULT_LIMITS;
  const { response } = open;
  const cancel = () => cancelRequest(open);
  if (response.status === 206 && p.pos > 0) {
    const cr = contentRange(response.headers.get("content-range"));
    if (!cr || cr.start !== p.pos || (cr.total !== undefined && cr.total !== o.size)) {
      await cancel();
      throw new ClientError(
        "E_FETCH",
        `${url}: answered range ${response.headers.get("content-range")} for bytes ${p.pos}-`,
      );
    }
  } else if (response.status === 200) {
    // The server ignored Range: start over from byte 0 with this stream.
    if (p.pos > 0) await restart(p);
  } else {
    await cancel();
    const busy = busyWaitMs(response.status, response.headers.get("retry-after"));
    if (busy !== undefined) throw new BusyError(url, busy);
    throw new ClientError("E_FETCH", `${url}: HTTP ${response.status}`);
  }
  const want = o.size - p.pos;
  const declared = Number(response.headers.get("content-length") ?? "NaN");
  if (declared > want) {
    await cancel();
    o.logger?.warn("oversize_refused", {
      artifact: o.name,
      url,
      declared,
      expected: want,
      threat: "TM-05",
    });
    throw new ClientError(
      "E_TOO_LARGE",
      `${url}: announces ${declared} bytes where ${want} remain (TM-05)`,
    );
  }
  p.contributors.add(src.id);
  const sink = new PartialSink(p, partialPathOf(o), o.onProgress);
  const from = p.pos;
  let overflow = false;
  try {
    ({ overflow } = await readGuarded(open, want, (chunk) => sink.push(chunk), {
      limits,
      into: () => sink.space(),
      adopt: (b) => sink.adopt(b),
    }));
    await sink.finish();
  } catch (err) {
    // What arrived before a drop is kept (a resumable prefix); a failed
    // write leaves the file cut back to what the hash covers.
    await sink.abandon();
    noteRange(p, from, p.pos, src.id);
    throw err;
  }
  noteRange(p, from, p.pos, src.id);
  if (overflow) {
    // TM-05: the first `size` bytes are kept (the digest decides on them);
    // what the sender had beyond is never read.
    o.logger?.warn("extra_bytes_refused", { artifact: o.name, url, size: o.size, threat: "TM-05" });
  }
  if (p.pos < o.size) {
    throw new ClientError("E_FETCH", `${url}: connection closed at byte ${p.pos} of ${o.size}`);
  }
}

/** The byte range of segment `idx` of a parallel download (inclusive end). */
interface Segment {
  readonly idx: number;
  readonly start: number;
  readonly end: number;
}

/**
 * Fetches one ranged segment from `url` into a fresh buffer. Anything but
 * a 206 for exactly the asked range fails (E_FETCH); a length above the
 * range is refused (TM-05).
 */
async function fetchSegment(
  o: DownloadOptions,
  url: string,
  s: Segment,
  signal?: AbortSignal,
): Promise<Uint8Array> {
  const open = await openRequest({ url, start: s.start, end: s.end }, {
    limits: o.limits ?? DEFAULT_LIMITS,
    fetchFn: o.fetchFn ?? rawHttpFetch,
    logger: o.logger,
    signal,
  });
  // Another source delivered this segment first: stop reading it.
  const onAbort = () => open.abort.abort();
  signal?.addEventListener("abort", onAbort, { once: true });
  try {
    if (signal?.aborted) open.abort.abort();
    return await readSegment(o, url, s, open);
  } finally {
    signal?.removeEventListener("abort", onAbort);
  }
}

async function readSegment(
  o: DownloadOptions,
  url: string,
  s: Segment,
  open: Awaited<ReturnType<typeof openRequest>>,
): Promise<Uint8Array> {
  const limits = o.limits ?? DEFAULT_LIMITS;
  const len = s.end - s.start + 1;
  const { response } = open;
  const cancel = () => cancelRequest(open);
  const cr = contentRange(response.headers.get("content-range"));
  if (
    response.status !== 206 || !cr || cr.start !== s.start || cr.end !== s.end ||
    (cr.total !== undefined && cr.total !== o.size)
  ) {
    await cancel();
    const busy = busyWaitMs(response.status, response.headers.get("retry-after"));
    if (busy !== undefined) throw new BusyError(url, busy);
    throw new ClientError(
      "E_FETCH",
      `${url}: HTTP ${response.status} ${
        response.headers.get("content-range") ?? ""
      } for bytes ${s.start}-${s.end}`,
    );
  }
  const declared = Number(response.headers.get("content-length") ?? "NaN");
  if (declared > len) {
    await cancel();
    o.logger?.warn("oversize_refused", {
      artifact: o.name,
      url,
      declared,
      expected: len,
      threat: "TM-05",
    });
    throw new ClientError(
      "E_TOO_LARGE",
      `${url}: announces ${declared} bytes for a ${len}-byte range (TM-05)`,
    );
  }
  // Read in place into the segment's buffer when the body allows (BYOB).
  let buf = new Uint8Array(len);
  let off = 0;
  let inBuf = true;
  const { overflow } = await readGuarded(open, len, (c) => {
    if (c.buffer !== buf.buffer) buf.set(c, off);
    off += c.length;
  }, {
    limits,
    // Once full, one more 1-byte read tells the end from extra bytes (TM-05).
    into: () => {
      inBuf = off < len;
      return inBuf ? buf.subarray(off) : new Uint8Array(1);
    },
    adopt: (b) => {
      if (inBuf) buf = new Uint8Array(b);
    },
  });
  if (overflow) o.logger?.warn("extra_bytes_refused", { artifact: o.name, url, threat: "TM-05" });
  if (off < len) {
    throw new ClientError("E_FETCH", `${url}: range ${s.start}-${s.end} closed after ${off} bytes`);
  }
  return buf;
}

/** Fetches a segment from the first URL form of a source that has it (a 404 tries the next form). */
async function fetchSegmentFrom(
  o: DownloadOptions,
  urls: string[],
  s: Segment,
  signal?: AbortSignal,
): Promise<Uint8Array> {
  for (;;) {
    try {
      return await fetchSegment(o, urls[0], s, signal);
    } catch (err) {
      const notHere = err instanceof PhaseError && err.code === "E_FETCH" &&
        / HTTP 404 /.test(err.message);
      if (!notHere || urls.length <= 1) throw err;
      urls.shift();
    }
  }
}

/** A segment handed to a worker, and the signal that tells it another source delivered it. */
interface Taken extends Segment {
  readonly signal: AbortSignal;
}

/**
 * The shared state of a parallel download: which segment is handed out
 * next, which failed and wait for another source, and the segments that
 * arrived out of order. Segments are written and hashed strictly in order
 * (so the partial file stays a resumable prefix), and at most `window`
 * segments are handed out ahead of the writer (so memory stays bounded).
 * When the window is full and the segment the writer waits for is still
 * with one (slower) source, an idle source fetches it too: the first copy
 * is kept and the other request is cut, so a slow origin does not hold
 * back fast peers (head-of-line).
 */
class SegmentQueue {
  readonly #o: DownloadOptions;
  readonly #p: PartialFile;
  readonly #base: number;
  readonly #seg: number;
  readonly #count: number;
  #sources: number;
  readonly #requeued: number[] = [];
  readonly #ready = new Map<number, Uint8Array>();
  /** Requests in flight per segment (at most 2: the first and one duplicate). */
  readonly #inflight = new Map<number, Set<AbortController>>();
  #next = 0;
  #written = 0;
  #wake: () => void = () => {};
  #changed: Promise<void>;
  #flushing: Promise<void> = Promise.resolve();
  /** Bytes per millisecond of each source's last delivered segment. */
  readonly #rates = new Map<string, number>();
  /** Sources that left (failed, retired or dropped): their rate no longer counts. */
  readonly #gone = new Set<string>();
  /** A failed write of the partial file: ends every worker. */
  writeError: unknown;

  constructor(o: DownloadOptions, p: PartialFile, sources: number) {
    this.#o = o;
    this.#p = p;
    this.#base = p.pos;
    this.#seg = o.segmentBytes ?? SEGMENT_BYTES;
    this.#count = Math.ceil((o.size - this.#base) / this.#seg);
    this.#sources = sources;
    this.#changed = new Promise<void>((r) => (this.#wake = r));
  }

  get #window(): number {
    return Math.max(2, WINDOW_SEGMENTS_PER_SOURCE * this.#sources);
  }

  /** A source joined (re-discovery): the window grows by its share. */
  addSource(): void {
    this.#sources++;
    this.notify();
  }

  /** True when every segment is written (or the writer failed). */
  get finished(): boolean {
    return this.#written >= this.#count || this.writeError !== undefined;
  }

  /** Wakes the workers waiting in {@link take}. */
  notify(): void {
    const w = this.#wake;
    this.#changed = new Promise<void>((r) => (this.#wake = r));
    w();
  }

  #segment(idx: number): Taken {
    const start = this.#base + idx * this.#seg;
    const ac = new AbortController();
    const set = this.#inflight.get(idx) ?? new Set();
    set.add(ac);
    this.#inflight.set(idx, set);
    return { idx, start, end: Math.min(this.#o.size, start + this.#seg) - 1, signal: ac.signal };
  }

  /** True once segment `idx` is delivered by some source. */
  settled(idx: number): boolean {
    return idx < this.#written || this.#ready.has(idx);
  }

  /** The next segment to fetch, or undefined when there is none left for anyone. */
  async take(): Promise<Taken | undefined> {
    for (;;) {
      if (this.writeError) return undefined;
      if (this.#requeued.length > 0) return this.#segment(this.#requeued.shift()!);
      if (this.#next < this.#count && this.#next < this.#written + this.#window) {
        return this.#segment(this.#next++);
      }
      if (this.#written >= this.#count) return undefined;
      // Nothing new to hand out: duplicate the segment the writer waits
      // for if only one source has it (it is the slowest one in flight).
      const head = this.#written;
      const with1 = this.#inflight.get(head);
      if (!this.#ready.has(head) && with1?.size === 1) return this.#segment(head);
      if (this.#next >= this.#count && this.#inflight.size === 0 && this.#requeued.length === 0) {
        return undefined;
      }
      await this.#changed;
    }
  }

  /** The request for `s` ended (delivered, failed or cut). */
  #done(s: Taken): void {
    const set = this.#inflight.get(s.idx);
    if (!set) return;
    for (const ac of set) if (ac.signal === s.signal) set.delete(ac);
    if (set.size === 0) this.#inflight.delete(s.idx);
  }

  /** Gives a segment back for another source (unless another copy is on its way or arrived). */
  requeue(s: Taken): void {
    this.#done(s);
    if (!this.settled(s.idx) && !this.#inflight.has(s.idx) && !this.#requeued.includes(s.idx)) {
      this.#requeued.push(s.idx);
      this.#requeued.sort((a, b) => a - b);
    }
    this.notify();
  }

  /**
   * Hands in a fetched segment; the writer takes it when its turn comes.
   * Returns false when another source delivered it first (these bytes are
   * dropped); the other request for it is cut.
   */
  deliver(s: Taken, buf: Uint8Array, id: string): boolean {
    this.#done(s);
    if (this.settled(s.idx)) {
      this.notify();
      return false;
    }
    for (const ac of this.#inflight.get(s.idx) ?? []) ac.abort();
    this.#inflight.delete(s.idx);
    this.#ready.set(s.idx, buf);
    const start = s.start;
    this.#flushing = this.#flushing.then(async () => {
      while (this.#ready.has(this.#written)) {
        const b = this.#ready.get(this.#written)!;
        this.#ready.delete(this.#written);
        await writeAll(this.#p.file, b);
        this.#p.hash.update(b);
        this.#p.pos += b.length;
        this.#written++;
        this.#o.onProgress?.(this.#p.pos);
      }
    }).catch((err) => {
      this.writeError = err;
    }).finally(() => this.notify());
    // Who sent it, for the search of a liar after a digest mismatch (TM-07).
    noteRange(this.#p, start, s.end + 1, id);
    this.notify();
    return true;
  }

  /** Notes how fast `id` delivered its last segment. */
  rate(id: string, bytes: number, ms: number): void {
    this.#rates.set(id, bytes / Math.max(1, ms));
  }

  /** `id` left the download. */
  leave(id: string): void {
    this.#gone.add(id);
    this.notify();
  }

  /** True when two other sources still in the download were RETIRE_SLOWER_THAN times faster. */
  slow(id: string): boolean {
    const mine = this.#rates.get(id);
    if (mine === undefined) return false;
    let faster = 0;
    for (const [other, r] of this.#rates) {
      if (other !== id && !this.#gone.has(other) && r >= mine * RETIRE_SLOWER_THAN) faster++;
    }
    return faster >= 2;
  }

  /** Waits `ms`, or until every segment is written (a busy source's wait). */
  async pauseUnlessFinished(ms: number): Promise<void> {
    const end = performance.now() + ms;
    while (!this.finished && performance.now() < end) {
      await pause(end - performance.now(), this.#changed);
    }
  }

  /** Cuts every request still in flight (the download ended). */
  cancelAll(): void {
    for (const set of this.#inflight.values()) for (const ac of set) ac.abort();
  }

  /** Waits until everything delivered is written; throws a write error. */
  async drain(): Promise<void> {
    await this.#flushing;
    if (this.writeError) throw this.writeError;
  }
}

/**
 * One source's share of a parallel download: takes segments until none is
 * left. On a failure the segment goes back to the queue and the source
 * leaves the parallel phase; stalls, endless data and redirects also mark
 * it bad for this artifact, a plain failure (no Range support, a reset)
 * does not. A request cut because another source delivered the segment
 * first is not a failure.
 */
async function segmentWorker(
  o: DownloadOptions,
  p: PartialFile,
  queue: SegmentQueue,
  src: ArtifactSource,
  bad: Set<string>,
): Promise<void> {
  try {
    await segmentLoop(o, p, queue, src, bad);
  } finally {
    queue.leave(src.id);
  }
}

async function segmentLoop(
  o: DownloadOptions,
  p: PartialFile,
  queue: SegmentQueue,
  src: ArtifactSource,
  bad: Set<string>,
): Promise<void> {
  const urls = [...src.urls];
  let failures = 0;
  let busyMs = 0;
  for (let s = await queue.take(); s; s = await queue.take()) {
    if (bad.has(src.id)) {
      // Dropped meanwhile (it lied about another artifact): leave.
      queue.requeue(s);
      return;
    }
    if (queue.slow(src.id)) {
      // Others are much faster: leave the slow source to those who need it.
      queue.requeue(s);
      o.logger?.info("source_retired", { artifact: o.name, source: src.id, at: p.pos });
      return;
    }
    let buf: Uint8Array;
    const t0 = performance.now();
    try {
      buf = await fetchSegmentFrom(o, urls, s, s.signal);
    } catch (err) {
      queue.requeue(s);
      if (s.signal.aborted) {
        // Cut because another source delivered it first: not a failure,
        // but it was slower than the segment's size over this time.
        queue.rate(src.id, s.end - s.start + 1, performance.now() - t0);
        continue;
      }
      if (err instanceof BusyError && busyMs + err.waitMs <= BUSY_BUDGET_MS) {
        // Busy (a download cap): the others take its segments meanwhile;
        // neither a failure nor a lie (TM-07). Ask again after the wait.
        o.logger?.info("source_busy", { artifact: o.name, source: src.id, wait_ms: err.waitMs });
        const t = performance.now();
        await queue.pauseUnlessFinished(err.waitMs);
        busyMs += performance.now() - t;
        continue;
      }
      o.logger?.warn("source_failed", {
        artifact: o.name,
        source: src.id,
        error: (err as Error)?.message,
      });
      if (!(err instanceof PhaseError && err.code === "E_FETCH")) bad.add(src.id);
      else if (++failures <= SEGMENT_RETRIES) {
        // A reset under load: try again after a pause, a bounded number of times.
        await new Promise((r) => setTimeout(r, SEGMENT_RETRY_PAUSE_MS));
        continue;
      }
      return;
    }
    queue.rate(src.id, buf.length, performance.now() - t0);
    if (queue.deliver(s, buf, src.id)) p.contributors.add(src.id);
  }
}

/**
 * Fetches the rest of the artifact from several providers at once, by
 * segments (see {@link SegmentQueue}). Sources found meanwhile
 * (`o.more`) join with a worker of their own.
 */
async function fetchParallel(
  o: DownloadOptions,
  p: PartialFile,
  sources: readonly ArtifactSource[],
  bad: Set<string>,
  extra: ArtifactSource[],
): Promise<void> {
  const queue = new SegmentQueue(o, p, sources.length);
  const have = new Set(sources.map((s) => s.id));
  const workers = sources.map((src) => segmentWorker(o, p, queue, src, bad));
  let active = workers.length;
  let allDone!: () => void;
  const done = new Promise<void>((r) => (allDone = r));
  const track = (w: Promise<void>) =>
    w.finally(() => {
      if (--active === 0) allDone();
    });
  const all = workers.map(track);
  if (o.more) {
    // Re-discovery: new sources join while segments remain (bounded by MAX_ADDED_SOURCES).
    (async () => {
      while (active > 0 && !queue.finished) {
        const next = await Promise.race([
          o.more!.changed().then(() => true),
          done.then(() => false),
        ]);
        if (!next) return;
        for (const src of newSources(o, have, bad, extra.length)) {
          have.add(src.id);
          extra.push(src);
          queue.addSource();
          active++;
          all.push(track(segmentWorker(o, p, queue, src, bad)));
          o.logger?.info("source_added", { artifact: o.name, source: src.id, at: p.pos });
        }
      }
    })().catch((err) => {
      o.logger?.warn("rediscovery_failed", { artifact: o.name, error: (err as Error).message });
    });
  }
  await done;
  await Promise.all(all);
  queue.cancelAll();
  await queue.drain();
  if (p.pos < o.size) {
    throw new ClientError(
      "E_FETCH",
      `parallel download of '${o.name}' stopped at byte ${p.pos} of ${o.size}: every provider failed`,
    );
  }
}

/** HTTP sources from `o.more` not yet used nor dropped, within MAX_ADDED_SOURCES. */
function newSources(
  o: DownloadOptions,
  have: ReadonlySet<string>,
  bad: ReadonlySet<string>,
  added: number,
): ArtifactSource[] {
  const out: ArtifactSource[] = [];
  for (const src of o.more?.list() ?? []) {
    if (added + out.length >= MAX_ADDED_SOURCES) break;
    if (src.kind !== "http" || have.has(src.id) || bad.has(src.id)) continue;
    if (out.some((x) => x.id === src.id)) continue;
    out.push(src);
  }
  return out;
}

/**
 * Makes `<cas>/<hex>` exist with verified content: a cache hit is
 * re-hashed; otherwise the artifact is downloaded from the sources with
 * failover, checked, fsynced and renamed into place. The cache's
 * directories must exist ({@link ensureCache}). Throws a `VerifyError`
 * (E_DIGEST) or a `ClientError` when no source delivers the right bytes.
 */
export async function downloadArtifact(o: DownloadOptions): Promise<DownloadResult> {
  const hit = await cachedPath(o.layout, o.hex, o.size);
  if (hit) {
    o.onPresent?.(o.size);
    o.onProgress?.(o.size);
    return { path: hit, cached: true, sources: [] };
  }
  // One writer per partial file: a second fetcher on the same cache waits
  // here (flock; released by the kernel even on kill -9), then finds the
  // artifact in cas/ or resumes the prefix the first one left.
  const lock = await Deno.open(`${o.layout.partialDir}/${o.hex}.lock`, {
    write: true,
    create: true,
    mode: 0o600,
  });
  try {
    await lock.lock(true);
    const now = await cachedPath(o.layout, o.hex, o.size);
    if (now) {
      o.onPresent?.(o.size);
      o.onProgress?.(o.size);
      return { path: now, cached: true, sources: [] };
    }
    return await downloadLocked(o);
  } finally {
    lock.close();
  }
}

/** A source id and the id of the same host's other route (`<origin>` and `ipfs:<origin>/`). */
function sameHost(id: string): string[] {
  if (id.startsWith("ipfs:")) return [id, id.slice(5).replace(/\/$/, "")];
  return [id, `ipfs:${id}/`];
}

const partialPathOf = (o: DownloadOptions) => `${o.layout.partialDir}/${o.hex}`;

/** Moves a verified partial file into cas/ (fsync, rename, fsync of the directory). */
async function promote(
  o: DownloadOptions,
  p: PartialFile,
  final: string,
  liars: readonly string[],
): Promise<DownloadResult> {
  await p.file.sync();
  p.file.close();
  // After a liar search the partial path holds the verified (synced) copy.
  await Deno.rename(partialPathOf(o), final);
  await syncDir(o.layout.casDir);
  return {
    path: final,
    cached: false,
    sources: [...p.contributors].filter((c) => c !== EARLIER_PREFIX && !liars.includes(c)),
  };
}

async function readAt(file: Deno.FsFile, at: number, len: number): Promise<Uint8Array> {
  const out = new Uint8Array(len);
  await file.seek(at, Deno.SeekMode.Start);
  let off = 0;
  while (off < len) {
    const n = await file.read(out.subarray(off));
    if (n === null) break;
    off += n;
  }
  return out.subarray(0, off);
}

async function writeAt(file: Deno.FsFile, at: number, bytes: Uint8Array): Promise<void> {
  await file.seek(at, Deno.SeekMode.Start);
  await writeAll(file, bytes);
}

/** SHA-256 (hex) of the first `size` bytes of the file, read 1 MiB at a time. */
async function hashFile(file: Deno.FsFile, size: number): Promise<string> {
  const h = createHash("sha256");
  for (let at = 0; at < size; at += WRITE_BUFFER_BYTES) {
    h.update(await readAt(file, at, Math.min(WRITE_BUFFER_BYTES, size - at)));
  }
  return h.digest("hex");
}

/**
 * After a digest mismatch of a file several sources wrote (TM-07): for
 * each sender in turn (fewest bytes first), its ranges are fetched again
 * from the other sources into a copy of the file (`<partial>.check`) and
 * the copy is hashed. When it matches the digest, the sender's bytes
 * differed from the verified ones: it lied, and is returned; the copy
 * replaces the partial file (verified, ready to promote). Otherwise the
 * copy is discarded and the next sender is tried (so an honest sender
 * whose bytes were "replaced" by a liar's is never blamed). Undefined when
 * none verifies (the caller starts over without blaming anyone). Each
 * round re-fetches at most the file's size in all.
 */
async function findLiars(
  o: DownloadOptions,
  p: PartialFile,
  http: readonly ArtifactSource[],
): Promise<string[] | undefined> {
  const ranges = p.ranges ?? [];
  const bytesOf = new Map<string, number>();
  for (const r of ranges) bytesOf.set(r.id, (bytesOf.get(r.id) ?? 0) + r.end - r.start);
  const ids = [...bytesOf.keys()].sort((a, b) => bytesOf.get(a)! - bytesOf.get(b)!);
  if (ids.length < 2) return undefined;
  const seg = o.segmentBytes ?? SEGMENT_BYTES;
  const path = partialPathOf(o);
  const check = `${path}.check`;
  // Asked first: the sources that delivered the most (the fastest).
  const ranked = [...http].sort((a, b) => (bytesOf.get(b.id) ?? 0) - (bytesOf.get(a.id) ?? 0));
  await p.file.sync();
  for (const id of ids) {
    if (id === EARLIER_PREFIX) continue;
    const others = ranked.filter((s) => s.id !== id);
    if (others.length === 0) continue;
    await Deno.copyFile(path, check);
    const copy = await Deno.open(check, { read: true, write: true });
    let differs = false;
    let ok = false;
    try {
      for (const r of ranges.filter((x) => x.id === id)) {
        for (let at = r.start; at < r.end; at += seg) {
          const s = { idx: -1, start: at, end: Math.min(r.end, at + seg) - 1 };
          let fresh: Uint8Array | undefined;
          for (const src of others) {
            try {
              fresh = await fetchSegmentFrom(o, [...src.urls], s);
              break;
            } catch { /* the next source */ }
          }
          if (!fresh) throw new ClientError("E_FETCH", `no other source for bytes ${at}-`);
          const old = await readAt(copy, at, fresh.length);
          if (old.length === fresh.length && old.every((b, i) => b === fresh[i])) continue;
          await writeAt(copy, at, fresh);
          differs = true;
        }
      }
      ok = differs && await hashFile(copy, o.size) === o.hex;
      if (ok) await copy.sync();
    } catch (err) {
      o.logger?.warn("liar_search_failed", { artifact: o.name, error: (err as Error).message });
    } finally {
      copy.close();
    }
    if (!ok) {
      await Deno.remove(check).catch(() => {});
      continue;
    }
    await Deno.rename(check, path);
    p.contributors.delete(id);
    for (const src of others) if (bytesOf.has(src.id)) p.contributors.add(src.id);
    o.logger?.info("liar_found", { artifact: o.name, source: id, threat: "TM-07" });
    return [id];
  }
  return undefined;
}

async function downloadLocked(o: DownloadOptions): Promise<DownloadResult> {
  const final = `${o.layout.casDir}/${o.hex}`;
  const partialPath = partialPathOf(o);
  // Sources dropped earlier in this run (they lied about another artifact) stay dropped.
  const dropped = o.dropped ?? new Set<string>();
  const bad = new Set<string>(dropped);
  let order = [...o.sources];
  let allowParallel = o.parallel ?? true;
  const errors: string[] = [];
  let digestFailures = 0;
  // Time spent waiting on busy sources (bounded by BUSY_BUDGET_MS), in ms.
  let busyMs = 0;
  // Sources taken on from re-discovery (o.more), kept for later rounds.
  const extra: ArtifactSource[] = [];
  for (let round = 0; round < MAX_ROUNDS; round++) {
    const p = await openPartial(partialPath, o.size);
    try {
      if (p.pos > 0) {
        o.logger?.info("resume", { artifact: o.name, from: p.pos, size: o.size });
        o.onPresent?.(p.pos);
      }
      const minParallel = o.parallelMinBytes ?? PARALLEL_MIN_BYTES;
      // Passes: a sequential stream cut because a source appeared starts
      // another pass with it (at most once per source taken on).
      // Busy sources (503 + Retry-After) of this pass, and when each may be asked again.
      const busyUntil = new Map<string, number>();
      for (let pass = 0; p.pos < o.size && pass <= MAX_ADDED_SOURCES;) {
        const usable = [...order, ...extra].filter((s) => !bad.has(s.id));
        const http = usable.filter((s) => s.kind === "http");
        const distinct = [...new Map(http.map((s) => [s.id, s])).values()];
        if (allowParallel && distinct.length > 1 && o.size - p.pos >= minParallel) {
          try {
            await fetchParallel(o, p, distinct, bad, extra);
          } catch (err) {
            errors.push((err as Error).message);
            o.logger?.warn("parallel_failed", {
              artifact: o.name,
              at: p.pos,
              error: (err as Error).message,
            });
          }
        }
        // While one source streams alone, re-discovery may find others:
        // the stream is then cut (its prefix kept) and the rest goes parallel.
        const cut = new AbortController();
        let watching = true;
        let stopWatch!: () => void;
        const stopped = new Promise<void>((r) => (stopWatch = r));
        if (o.more && allowParallel) {
          const have = new Set(usable.map((s) => s.id));
          (async () => {
            while (watching) {
              await Promise.race([o.more!.changed(), stopped]);
              if (!watching) return;
              if (
                o.size - p.pos >= minParallel &&
                newSources(o, have, bad, extra.length).length > 0
              ) return cut.abort();
            }
          })().catch(() => {});
        }
        let wasCut = false;
        try {
          // Sequential failover over what is left: HTTP sources first, then IPFS gateways.
          sources: for (const src of [...http, ...usable.filter((s) => s.kind === "ipfs")]) {
            if (p.pos >= o.size) break;
            if (bad.has(src.id) && src.kind === "http") continue;
            for (const url of src.urls) {
              if (p.pos >= o.size) break;
              try {
                await fetchSequential(o, p, src, url, cut.signal);
              } catch (err) {
                if (err instanceof Cut) {
                  wasCut = true;
                  break sources;
                }
                errors.push((err as Error).message);
                if (err instanceof BusyError) {
                  // Busy, not failing nor lying (TM-07): the next source now,
                  // this one again after its (bounded) Retry-After.
                  busyUntil.set(src.id, performance.now() + err.waitMs);
                  o.logger?.info("source_busy", {
                    artifact: o.name,
                    url,
                    at: p.pos,
                    wait_ms: err.waitMs,
                  });
                  continue sources;
                }
                o.logger?.warn("source_failed", {
                  artifact: o.name,
                  url,
                  at: p.pos,
                  error: (err as Error).message,
                });
                // A redirect elsewhere, endless data or a stall marks the source;
                // a plain failure (404, reset) lets the next URL form be tried.
                if (err instanceof PhaseError && err.code !== "E_FETCH") {
                  bad.add(src.id);
                  break;
                }
                continue;
              }
            }
          }
        } finally {
          watching = false;
          stopWatch();
        }
        if (!wasCut) {
          if (p.pos >= o.size || busyUntil.size === 0) break;
          // Every source left was busy: wait for the first to be free again
          // (or for re-discovery to find another), within BUSY_BUDGET_MS.
          const wait = Math.max(
            MIN_BUSY_WAIT_MS,
            Math.min(...busyUntil.values()) - performance.now(),
          );
          if (busyMs + wait > BUSY_BUDGET_MS) break;
          busyUntil.clear();
          const t = performance.now();
          await pause(wait, o.more?.changed());
          busyMs += performance.now() - t;
          if (o.more) {
            const found = newSources(o, new Set(usable.map((s) => s.id)), bad, extra.length);
            extra.push(...found);
            if (found.length > 0) {
              o.logger?.info("source_added", {
                artifact: o.name,
                at: p.pos,
                added: found.map((s) => s.id),
              });
            }
          }
          continue;
        }
        pass++;
        const found = newSources(o, new Set(usable.map((s) => s.id)), bad, extra.length);
        extra.push(...found);
        o.logger?.info("sequential_cut", {
          artifact: o.name,
          at: p.pos,
          added: found.map((s) => s.id),
        });
      }
      if (p.pos < o.size && digestFailures > 0) {
        // Every source that delivered the whole artifact sent other bytes:
        // that is tampering (TM-01), not a network failure.
        throw new VerifyError(
          "E_DIGEST",
          `'${o.name}' never matched sha256:${o.hex}: the sources that delivered it sent other bytes (TM-01)`,
          {
            cause: errors,
            hint: `last errors: ${errors.slice(-3).join("; ")}`,
          },
        );
      }
      if (p.pos < o.size) {
        throw new ClientError(
          "E_FETCH",
          `cannot fetch '${o.name}' (sha256:${o.hex}): every source failed`,
          {
            cause: errors,
            hint: `last errors: ${errors.slice(-3).join("; ")}`,
          },
        );
      }
      const got = p.hash.digest("hex");
      if (got !== o.hex) {
        // TM-01: whoever sent these bytes lied; never let them into cas/.
        o.logger?.warn("digest_mismatch", {
          artifact: o.name,
          got: `sha256:${got}`,
          sources: [...p.contributors],
          threat: "TM-01",
        });
        errors.push(`'${o.name}' hashed to sha256:${got}`);
        digestFailures++;
        const drop = (liar: string) => {
          bad.add(liar);
          if (liar === EARLIER_PREFIX) return;
          // The peer is dropped under both of its names (origin and its /ipfs/ route).
          for (const id of sameHost(liar)) {
            dropped.add(id);
            bad.add(id);
          }
          o.logger?.warn("source_dropped", { source: liar, artifact: o.name, threat: "TM-01" });
        };
        // One sender: it lied. Several (a parallel download, a resume
        // across sources): each sender's bytes are fetched again from the
        // others; when the file then verifies, whoever sent bytes that
        // differ from it lied (TM-07) and only its ranges were re-fetched.
        // Otherwise start over from byte 0 without blaming anyone, one
        // source at a time.
        if (p.contributors.size === 1) drop([...p.contributors][0]);
        else {
          const http = [...order, ...extra].filter((s) => s.kind === "http" && !bad.has(s.id));
          const liars = await findLiars(o, p, [...new Map(http.map((s) => [s.id, s])).values()]);
          if (liars) {
            for (const liar of liars) drop(liar);
            return await promote(o, p, final, liars);
          }
          allowParallel = false;
        }
        order = [...order.slice(1), ...order.slice(0, 1)];
        await restart(p);
        continue;
      }
      return await promote(o, p, final, []);
    } finally {
      try {
        p.file.close();
      } catch { /* closed after sync */ }
    }
  }
  throw new VerifyError(
    "E_DIGEST",
    `'${o.name}' never matched sha256:${o.hex} after ${MAX_ROUNDS} rounds (TM-01)`,
    {
      hint:
        "every known source serves other bytes than the manifest names; find an honest provider",
    },
  );
}
