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

/** An open partial file: its bytes, their hash so far, who sent them. */
export interface PartialFile {
  file: Deno.FsFile;
  pos: number;
  hash: Hash;
  contributors: Set<string>;
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
  return { file, pos, hash, contributors: new Set(pos > 0 ? [EARLIER_PREFIX] : []) };
}

async function restart(p: PartialFile): Promise<void> {
  await p.file.truncate(0);
  await p.file.seek(0, Deno.SeekMode.Start);
  p.pos = 0;
  p.hash = createHash("sha256");
  p.contributors.clear();
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
    }
  }

  #closeSync(): void {
    try {
      this.#syncFile?.close();
    } catch { /* closed */ }
    this.#syncFile = undefined;
  }
}

/** Streams the rest of the artifact from one URL into the partial file. */
async function fetchSequential(
  o: DownloadOptions,
  p: PartialFile,
  src: ArtifactSource,
  url: string,
): Promise<void> {
  const limits = o.limits ?? DEFAULT_LIMITS;
  const open = await openRequest(
    { url, start: p.pos, accept: src.kind === "ipfs" ? ACCEPT_RAW : undefined },
    { limits, fetchFn: o.fetchFn ?? rawHttpFetch, logger: o.logger },
  );
  const { response } = open;
  const cancel = async () => {
    open.abort.abort();
    await response.body?.cancel().catch(() => {});
  };
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
    throw err;
  }
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
async function fetchSegment(o: DownloadOptions, url: string, s: Segment): Promise<Uint8Array> {
  const limits = o.limits ?? DEFAULT_LIMITS;
  const len = s.end - s.start + 1;
  const open = await openRequest({ url, start: s.start, end: s.end }, {
    limits,
    fetchFn: o.fetchFn ?? rawHttpFetch,
    logger: o.logger,
  });
  const { response } = open;
  const cancel = async () => {
    open.abort.abort();
    await response.body?.cancel().catch(() => {});
  };
  const cr = contentRange(response.headers.get("content-range"));
  if (
    response.status !== 206 || !cr || cr.start !== s.start || cr.end !== s.end ||
    (cr.total !== undefined && cr.total !== o.size)
  ) {
    await cancel();
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
): Promise<Uint8Array> {
  for (;;) {
    try {
      return await fetchSegment(o, urls[0], s);
    } catch (err) {
      const notHere = err instanceof PhaseError && err.code === "E_FETCH" &&
        / HTTP 404 /.test(err.message);
      if (!notHere || urls.length <= 1) throw err;
      urls.shift();
    }
  }
}

/**
 * The shared state of a parallel download: which segment is handed out
 * next, which failed and wait for another source, and the segments that
 * arrived out of order. Segments are written and hashed strictly in order
 * (so the partial file stays a resumable prefix), and at most `window`
 * segments are handed out ahead of the writer (so memory stays bounded).
 */
class SegmentQueue {
  readonly #o: DownloadOptions;
  readonly #p: PartialFile;
  readonly #base: number;
  readonly #seg: number;
  readonly #count: number;
  readonly #window: number;
  readonly #requeued: number[] = [];
  readonly #ready = new Map<number, Uint8Array>();
  #next = 0;
  #written = 0;
  #wake: () => void = () => {};
  #changed: Promise<void>;
  #flushing: Promise<void> = Promise.resolve();
  /** A failed write of the partial file: ends every worker. */
  writeError: unknown;

  constructor(o: DownloadOptions, p: PartialFile, sources: number) {
    this.#o = o;
    this.#p = p;
    this.#base = p.pos;
    this.#seg = o.segmentBytes ?? SEGMENT_BYTES;
    this.#count = Math.ceil((o.size - this.#base) / this.#seg);
    this.#window = Math.max(2, WINDOW_SEGMENTS_PER_SOURCE * sources);
    this.#changed = new Promise<void>((r) => (this.#wake = r));
  }

  /** Wakes the workers waiting in {@link take}. */
  notify(): void {
    const w = this.#wake;
    this.#changed = new Promise<void>((r) => (this.#wake = r));
    w();
  }

  /** The next segment to fetch, or undefined when there is none left for anyone. */
  async take(): Promise<Segment | undefined> {
    for (;;) {
      if (this.writeError) return undefined;
      let idx: number | undefined;
      if (this.#requeued.length > 0) idx = this.#requeued.shift();
      else if (this.#next < this.#count && this.#next < this.#written + this.#window) {
        idx = this.#next++;
      } else if (this.#next >= this.#count) return undefined;
      if (idx !== undefined) {
        const start = this.#base + idx * this.#seg;
        return { idx, start, end: Math.min(this.#o.size, start + this.#seg) - 1 };
      }
      await this.#changed;
    }
  }

  /** Gives a segment back for another source. */
  requeue(s: Segment): void {
    this.#requeued.push(s.idx);
    this.#requeued.sort((a, b) => a - b);
    this.notify();
  }

  /** Hands in a fetched segment; the writer takes it when its turn comes. */
  deliver(s: Segment, buf: Uint8Array): void {
    this.#ready.set(s.idx, buf);
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
    this.notify();
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
 * does not.
 */
async function segmentWorker(
  o: DownloadOptions,
  p: PartialFile,
  queue: SegmentQueue,
  src: ArtifactSource,
  bad: Set<string>,
): Promise<void> {
  const urls = [...src.urls];
  for (let s = await queue.take(); s; s = await queue.take()) {
    let buf: Uint8Array;
    try {
      buf = await fetchSegmentFrom(o, urls, s);
    } catch (err) {
      queue.requeue(s);
      o.logger?.warn("source_failed", {
        artifact: o.name,
        source: src.id,
        error: (err as Error)?.message,
      });
      if (!(err instanceof PhaseError && err.code === "E_FETCH")) bad.add(src.id);
      return;
    }
    p.contributors.add(src.id);
    queue.deliver(s, buf);
  }
}

/**
 * Fetches the rest of the artifact from several providers at once, by
 * segments (see {@link SegmentQueue}).
 */
async function fetchParallel(
  o: DownloadOptions,
  p: PartialFile,
  sources: readonly ArtifactSource[],
  bad: Set<string>,
): Promise<void> {
  const queue = new SegmentQueue(o, p, sources.length);
  await Promise.all(sources.map((src) => segmentWorker(o, p, queue, src, bad)));
  await queue.drain();
  if (p.pos < o.size) {
    throw new ClientError(
      "E_FETCH",
      `parallel download of '${o.name}' stopped at byte ${p.pos} of ${o.size}: every provider failed`,
    );
  }
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
  for (let round = 0; round < MAX_ROUNDS; round++) {
    const p = await openPartial(partialPath, o.size);
    try {
      if (p.pos > 0) {
        o.logger?.info("resume", { artifact: o.name, from: p.pos, size: o.size });
        o.onPresent?.(p.pos);
      }
      const usable = order.filter((s) => !bad.has(s.id));
      const http = usable.filter((s) => s.kind === "http");
      const distinct = [...new Map(http.map((s) => [s.id, s])).values()];
      if (
        allowParallel && distinct.length > 1 &&
        o.size - p.pos >= (o.parallelMinBytes ?? PARALLEL_MIN_BYTES)
      ) {
        try {
          await fetchParallel(o, p, distinct, bad);
        } catch (err) {
          errors.push((err as Error).message);
          o.logger?.warn("parallel_failed", {
            artifact: o.name,
            at: p.pos,
            error: (err as Error).message,
          });
        }
      }
      // Sequential failover over what is left: HTTP sources first, then IPFS gateways.
      for (const src of [...http, ...usable.filter((s) => s.kind === "ipfs")]) {
        if (p.pos >= o.size) break;
        if (bad.has(src.id) && src.kind === "http") continue;
        for (const url of src.urls) {
          if (p.pos >= o.size) break;
          try {
            await fetchSequential(o, p, src, url);
          } catch (err) {
            errors.push((err as Error).message);
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
        // One sender: it lied. Several (a resume across sources, a prefix
        // from an earlier attempt, a parallel download): start over from
        // byte 0 without blaming anyone, one source at a time (TM-07).
        if (p.contributors.size === 1) {
          const liar = [...p.contributors][0];
          bad.add(liar);
          if (liar !== EARLIER_PREFIX) {
            // The peer is dropped under both of its names (origin and its /ipfs/ route).
            for (const id of sameHost(liar)) {
              dropped.add(id);
              bad.add(id);
            }
            o.logger?.warn("source_dropped", { source: liar, artifact: o.name, threat: "TM-01" });
          }
        } else allowParallel = false;
        order = [...order.slice(1), ...order.slice(0, 1)];
        await restart(p);
        continue;
      }
      await p.file.sync();
      p.file.close();
      await Deno.rename(partialPath, final);
      await syncDir(o.layout.casDir);
      return {
        path: final,
        cached: false,
        sources: [...p.contributors].filter((c) => c !== EARLIER_PREFIX),
      };
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
