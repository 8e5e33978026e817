/**
 * Artifact responses: ETag, `Range`/`If-Range`, and a body streamed from
 * an open file whose identity is still the hashed one (TM-19), with a
 * stall cut for clients that stop reading (TM-18). Private to provider/.
 *
 * @module
 */
import type { Logger } from "../core/mod.ts";
import { type Artifact, identityOf, sameIdentity } from "./catalog.ts";
import type { Metrics } from "./http.ts";
import { etagMatches, parseRange } from "./range.ts";
import { headers, text } from "./_respond.ts";
import { type ArtifactMemory, MEMORY_CHUNK_BYTES } from "./memory_cache.ts";

/** Bytes read from disk per streamed chunk. */
export const STREAM_CHUNK_BYTES = 512 * 1024;
/** A response whose client reads nothing for this long is aborted (TM-18), in ms. */
export const SEND_STALL_TIMEOUT_MS = 30_000;

/** What artifact streaming needs from the provider. */
export interface ArtifactContext {
  readonly metrics: Metrics;
  readonly logger: Logger;
  readonly stallMs: number;
  /** Called when a file no longer matches its hash (rescan it). */
  readonly onStale?: (artifact: Artifact) => void;
  /** Open checked streams; calling an entry cuts that response (bounded stop). */
  readonly streams?: Set<() => void>;
  /** Verified artifact bytes held in memory, served without a file read (issue 17). */
  readonly memory?: ArtifactMemory;
}

function count(m: Metrics, key: string, bytes: number) {
  const e = m.perArtifact[key] ??= { requests: 0, bytes: 0 };
  e.bytes += bytes;
  if (bytes === 0) e.requests++;
}

/** Answers `a` to `req` (`key` names it in the per-artifact counters). */
export async function serveArtifact(
  ctx: ArtifactContext,
  req: Request,
  a: Artifact,
  extra: Record<string, string>,
  key: string,
): Promise<Response> {
  const m = ctx.metrics;
  const etag = `"sha256:${a.digest}"`;
  const base = {
    etag,
    "accept-ranges": "bytes",
    "content-type": "application/octet-stream",
    "cache-control": "public, max-age=31536000, immutable",
    ...extra,
  };
  if (etagMatches(req.headers.get("if-none-match"), etag)) {
    m.notModified++;
    return new Response(null, { status: 304, headers: headers(base) });
  }
  let range = parseRange(req.headers.get("range"), a.size);
  const ifRange = req.headers.get("if-range");
  if (ifRange !== null && ifRange.trim() !== etag) range = undefined;
  if (range === "unsatisfiable") {
    return new Response(null, {
      status: 416,
      headers: headers({ ...base, "content-range": `bytes */${a.size}`, "content-length": "0" }),
    });
  }
  const start = range ? range.start : 0;
  const end = range ? range.end : a.size - 1;
  const length = a.size === 0 ? 0 : end - start + 1;
  const h: Record<string, string> = { ...base, "content-length": String(length) };
  if (range) h["content-range"] = `bytes ${start}-${end}/${a.size}`;
  const status = range ? 206 : 200;
  const held = req.method === "GET" && length > 0 ? ctx.memory?.get(a.digest) : undefined;
  if (held) {
    // Bytes that hashed to the ETag's digest when they were read (TM-19).
    m.memory.hits++;
    if (range) m.partial++;
    count(m, key, 0);
    m.bytes += length;
    count(m, key, length);
    return new Response(memoryBody(ctx, held, start, end + 1, a), { status, headers: headers(h) });
  }
  // TM-19: serve only from a file that is still the one whose digest is
  // the ETag; a replaced or rewritten file is refused, never mixed.
  let file: Deno.FsFile;
  try {
    file = await Deno.open(a.path, { read: true });
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) {
      // Out of descriptors or the like (TM-18): not a change on disk.
      ctx.logger.warn("artifact_open_failed", { digest: a.digest, error: String(err) });
      return text(503, "busy; retry", { "retry-after": "1" });
    }
    ctx.onStale?.(a);
    return text(503, "artifact is being replaced; retry", { "retry-after": "1" });
  }
  let ok = false;
  try {
    ok = sameIdentity(identityOf(await file.stat()), a.identity);
  } catch { /* treated as changed */ }
  if (!ok) {
    file.close();
    ctx.logger.warn("artifact_changed", { path: a.path, digest: a.digest });
    ctx.onStale?.(a);
    return text(503, "artifact changed on disk and is being re-hashed; retry", {
      "retry-after": "1",
    });
  }
  if (range) m.partial++;
  count(m, key, 0);
  if (req.method === "HEAD" || length === 0) {
    file.close();
    return new Response(null, { status, headers: headers(h) });
  }
  // The next answers come from memory once the snapshot is read and hashed.
  ctx.memory?.want(a);
  if (a.immutable && end === a.size - 1) {
    // A private snapshot nobody rewrites: Deno streams it without JS per
    // chunk (TM-19 holds by construction). Slow clients hold a slot until
    // they finish or leave; the global and per-client caps bound them (TM-18).
    if (start > 0) await file.seek(start, Deno.SeekMode.Start);
    m.bytes += length;
    count(m, key, length);
    return new Response(file.readable, { status, headers: headers(h) });
  }
  return new Response(checkedStream(ctx, file, a, start, length, key), {
    status,
    headers: headers(h),
  });
}

/** A body read chunk by chunk, each checked against the hashed file's identity (TM-19). */
function checkedStream(
  ctx: ArtifactContext,
  file: Deno.FsFile,
  a: Artifact,
  start: number,
  length: number,
  key: string,
): ReadableStream<Uint8Array> {
  const m = ctx.metrics;
  let remaining = length;
  const life = cuttable(ctx, a, () => {
    try {
      file.close();
    } catch { /* already closed */ }
  });
  return new ReadableStream<Uint8Array>({
    async start(controller) {
      life.attach(controller);
      if (start > 0) await file.seek(start, Deno.SeekMode.Start);
    },
    async pull(controller) {
      life.reading();
      try {
        const buf = new Uint8Array(Math.min(STREAM_CHUNK_BYTES, remaining));
        let off = 0;
        while (off < buf.length) {
          const n = await file.read(buf.subarray(off));
          if (n === null) break;
          off += n;
        }
        // TM-19: every chunk is read from the hashed, unchanged file.
        const now = identityOf(await file.stat());
        if (off !== buf.length || !sameIdentity(now, a.identity)) {
          m.tornAborts++;
          ctx.logger.warn("artifact_changed_while_serving", { path: a.path, digest: a.digest });
          ctx.onStale?.(a);
          life.finish();
          // Ending short of Content-Length makes the HTTP layer abort the
          // connection: the client gets an incomplete body, never mixed bytes.
          controller.close();
          return;
        }
        remaining -= off;
        m.bytes += off;
        count(m, key, off);
        controller.enqueue(buf);
        if (remaining === 0) {
          life.finish();
          controller.close();
          return;
        }
        // TM-18: a client that stops reading does not hold the file forever.
        life.waiting();
      } catch (err) {
        life.finish();
        controller.error(err);
      }
    },
    cancel() {
      life.finish();
    },
  }, { highWaterMark: 1 });
}

/**
 * A body of `bytes[start, end)` handed over in {@link MEMORY_CHUNK_BYTES}
 * sub-arrays (no copy). Like the checked stream it is cut at a stop and
 * when its client reads nothing for `ctx.stallMs` (TM-18): ending short of
 * Content-Length makes the HTTP layer abort the connection.
 */
function memoryBody(
  ctx: ArtifactContext,
  bytes: Uint8Array,
  start: number,
  end: number,
  a: Artifact,
): ReadableStream<Uint8Array> {
  let off = start;
  const life = cuttable(ctx, a);
  return new ReadableStream<Uint8Array>({
    start(controller) {
      life.attach(controller);
    },
    pull(controller) {
      life.reading();
      const next = Math.min(end, off + MEMORY_CHUNK_BYTES);
      controller.enqueue(bytes.subarray(off, next));
      off = next;
      if (off === end) {
        life.finish();
        controller.close();
        return;
      }
      life.waiting();
    },
    cancel() {
      life.finish();
    },
  }, { highWaterMark: 0 });
}

/**
 * The life of a streamed body that can be cut (TM-18): listed in
 * `ctx.streams` so that a stop can cut it, cut when its client has read
 * nothing for `ctx.stallMs` (logged), and `release` called once when it
 * ends, whichever way. A cut closes the stream short of Content-Length:
 * the HTTP layer then aborts the connection and the client sees a cut
 * response.
 */
function cuttable(ctx: ArtifactContext, a: Artifact, release: () => void = () => {}) {
  let done = false;
  let stall: ReturnType<typeof setTimeout> | undefined;
  let ctl: ReadableStreamDefaultController<Uint8Array> | undefined;
  const finish = () => {
    if (done) return;
    done = true;
    ctx.streams?.delete(cut);
    clearTimeout(stall);
    release();
  };
  const cut = () => {
    finish();
    try {
      ctl?.close();
    } catch { /* already closed */ }
  };
  ctx.streams?.add(cut);
  return {
    /** The stream's controller, which a cut closes. */
    attach: (c: ReadableStreamDefaultController<Uint8Array>) => void (ctl = c),
    /** The client asks for more: no stall now. */
    reading: () => clearTimeout(stall),
    /** A chunk waits for the client: cut if it is not read in time. */
    waiting: () =>
      void (stall = setTimeout(() => {
        ctx.logger.warn("client_stalled", { path: a.path, after_ms: ctx.stallMs });
        cut();
      }, ctx.stallMs)),
    /** The body ended (sent, failed or cancelled). */
    finish,
  };
}
