/**
 * The provider's HTTP API (formats.md §3) as a handler
 * `(Request) => Promise<Response>`: manifests from memory, artifacts
 * streamed from an open file whose identity matches the hashed one.
 *
 * @module
 */
import type { Logger } from "../core/mod.ts";
import { canonicalArch, digestOfRawCid } from "../verify/mod.ts";
import { type Artifact, type Catalog, identityOf, type Release, sameIdentity } from "./catalog.ts";
import { renderStatusPage } from "./html.ts";
import { accepts, etagMatches, parseRange, prefersHtml } from "./range.ts";

/** Bytes read from disk per streamed chunk. */
export const STREAM_CHUNK_BYTES = 512 * 1024;
/** A response whose client reads nothing for this long is aborted (TM-18), in ms. */
export const SEND_STALL_TIMEOUT_MS = 30_000;
/** Most requests in flight (open artifact streams included) before 503 (TM-18). */
export const MAX_INFLIGHT = 2048;
/** Most requests in flight from one client address before 503 (TM-18). */
export const MAX_INFLIGHT_PER_CLIENT = 256;
/** Longest request target looked at, in characters. */
export const MAX_TARGET_CHARS = 2048;
/** Longest path logged, in characters. */
const MAX_LOGGED_PATH = 256;

const SEGMENT_RE = /^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$/;
const HEX64_RE = /^[0-9a-f]{64}$/;
const VERSION = "0.1.0";

/** Counters shown by `/status` and the status page. */
export interface Metrics {
  requests: number;
  bytes: number;
  errors: number;
  rejectedPaths: number;
  notModified: number;
  partial: number;
  refusedBusy: number;
  tornAborts: number;
  inflight: number;
  readonly byStatus: Record<string, number>;
  readonly perArtifact: Record<string, { requests: number; bytes: number }>;
}

/** New zeroed metrics. */
export function newMetrics(): Metrics {
  return {
    requests: 0,
    bytes: 0,
    errors: 0,
    rejectedPaths: 0,
    notModified: 0,
    partial: 0,
    refusedBusy: 0,
    tornAborts: 0,
    inflight: 0,
    byStatus: {},
    perArtifact: {},
  };
}

/** State of the advertisement layers, for `/` and `/status`. */
export interface AdvertState {
  readonly mdns: {
    readonly enabled: boolean;
    readonly state: string;
    readonly instances: readonly string[];
  };
  readonly dht: {
    readonly enabled: boolean;
    readonly state: string;
    readonly peerId?: string;
    readonly addresses?: readonly string[];
    readonly peers: number;
  };
}

/** Everything the handler reads. */
export interface HandlerOptions {
  readonly name: string;
  readonly catalog: () => Catalog;
  readonly metrics: Metrics;
  /** Access and security log (JSON lines). */
  readonly logger: Logger;
  readonly startedAt: Date;
  readonly now?: () => Date;
  readonly serving?: () => boolean;
  readonly advert?: () => AdvertState;
  readonly defaultChannel?: string;
  readonly defaultArch?: string;
  readonly maxInflight?: number;
  /** Most requests in flight from one client address (TM-18). */
  readonly maxInflightPerClient?: number;
  readonly stallTimeoutMs?: number;
  /** Called when a file no longer matches its hash (rescan it). */
  readonly onStale?: (artifact: Artifact) => void;
  /** Access log sink; default `logger.info("access", entry)`. */
  readonly accessLog?: (entry: AccessEntry) => void;
  /** Open artifact streams; calling an entry cuts that response (bounded stop). */
  readonly streams?: Set<() => void>;
}

/** One access-log entry (one JSON line per request). */
export interface AccessEntry {
  readonly method: string;
  readonly path: string;
  readonly status: number;
  readonly length: number;
  readonly range?: string;
  readonly remote?: string;
  readonly ms: number;
}

// Characters JSON.stringify would escape (quote, backslash, controls, lone
// surrogates): strings without them are written as they are.
// deno-lint-ignore no-control-regex
const NEEDS_ESCAPE_RE = /["\\\x00-\x1f\ud800-\udfff]/;

function jsonString(v: string): string {
  return NEEDS_ESCAPE_RE.test(v) ? JSON.stringify(v) : `"${v}"`;
}

// The timestamp string is rebuilt at most once per millisecond.
let tsMs = -1;
let tsText = "";

function isoNow(): string {
  const ms = Date.now();
  if (ms !== tsMs) {
    tsMs = ms;
    tsText = new Date(ms).toISOString();
  }
  return tsText;
}

/** Formats an access entry as the JSON line the console logger would write, cheaply. */
export function formatAccess(component: string, e: AccessEntry, now?: Date): string {
  const ts = now ? now.toISOString() : isoNow();
  return `{"ts":"${ts}","level":"info","component":${
    jsonString(component)
  },"event":"access","method":${jsonString(e.method)},"path":${
    jsonString(e.path)
  },"status":${e.status},"length":${e.length}${
    e.range === undefined ? "" : `,"range":${jsonString(e.range)}`
  }${e.remote === undefined ? "" : `,"remote":${jsonString(e.remote)}`},"ms":${e.ms}}\n`;
}

/** Connection info Deno.serve passes; optional so tests may omit it. */
export interface RequestInfo {
  readonly remoteAddr?: { hostname?: string; port?: number };
  /** Settles when the response was fully delivered or the client left. */
  readonly completed?: Promise<void>;
}

/** The handler type: plain `(Request) => Promise<Response>`. */
export type Handler = (req: Request, info?: RequestInfo) => Promise<Response>;

/**
 * The provider's handler, plus the same handler for `Deno.serve` itself:
 * `direct` answers in-memory documents synchronously (a Response, not a
 * Promise), which Deno.serve sends without a round through the microtask
 * queue; artifacts still come back as a Promise.
 */
export interface ProviderHandler extends Handler {
  readonly direct: (req: Request, info?: RequestInfo) => Response | Promise<Response>;
}

// Every response: never sniff a type. `referrer-policy` goes only on the
// HTML page (the one document with links); each header on every manifest
// response costs requests/s (bench/README.md, serve).
const BASE_HEADERS: Record<string, string> = {
  "x-content-type-options": "nosniff",
};

function headers(extra: Record<string, string>): Headers {
  return new Headers({ ...BASE_HEADERS, ...extra });
}

function text(status: number, body: string, extra: Record<string, string> = {}): Response {
  return new Response(body + "\n", {
    status,
    headers: headers({
      "content-type": "text/plain; charset=utf-8",
      "cache-control": "no-store",
      ...extra,
    }),
  });
}

function json(status: number, value: unknown, extra: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(value, null, 2) + "\n", {
    status,
    headers: headers({ "content-type": "application/json", "cache-control": "no-store", ...extra }),
  });
}

/** Splits the raw request target (not normalised by URL parsing). */
export function rawTarget(url: string): { path: string; query: string } {
  const scheme = url.indexOf("://");
  const slash = url.indexOf("/", scheme < 0 ? 0 : scheme + 3);
  const target = slash < 0 ? "/" : url.slice(slash);
  const q = target.indexOf("?");
  return q < 0
    ? { path: target, query: "" }
    : { path: target.slice(0, q), query: target.slice(q + 1) };
}

/**
 * Decodes a path into safe segments, or `undefined` for anything that is
 * not a plain name: `..`, `%2e%2e`, double encoding, backslashes, NUL,
 * empty segments, dotfiles (TM-10).
 */
export function safeSegments(path: string): string[] | undefined {
  if (path.length > MAX_TARGET_CHARS || !path.startsWith("/")) return undefined;
  if (path === "/") return [];
  const out: string[] = [];
  for (const raw of path.slice(1).split("/")) {
    let seg: string;
    try {
      seg = raw.includes("%") ? decodeURIComponent(raw) : raw;
    } catch {
      return undefined;
    }
    if (!SEGMENT_RE.test(seg) || seg.includes("..")) return undefined;
    out.push(seg);
  }
  return out;
}

function releaseInfo(r: Release) {
  return {
    channel: r.channel,
    arch: r.arch,
    version: r.manifest.version,
    origin: r.origin,
    issued_at: r.manifest.issuedAt.toISOString(),
    expires_at: r.manifest.expiresAt.toISOString(),
    manifest_cid: r.manifestCid,
    manifest: `/${r.channel}/${r.arch}/manifest.json`,
    record: r.record ? `/${r.channel}/${r.arch}/record.json` : null,
    signers: r.signers,
    artifacts: [...r.artifacts.values()].map((a) => ({
      name: a.name,
      size: a.size,
      digest: `sha256:${a.digest}`,
    })),
  };
}

/** What `GET /` answers as JSON (also the data of the HTML page). */
export function providerInfo(opts: HandlerOptions) {
  const now = (opts.now ?? (() => new Date()))();
  const catalog = opts.catalog();
  return {
    name: opts.name,
    software: "phase",
    version: VERSION,
    started_at: opts.startedAt.toISOString(),
    uptime_s: Math.max(0, Math.floor((now.getTime() - opts.startedAt.getTime()) / 1000)),
    catalog_loaded_at: catalog.loadedAt.toISOString(),
    channels: [...catalog.releases.values()].map(releaseInfo),
    refused: catalog.refused,
    advert: opts.advert?.() ?? null,
    metrics: opts.metrics,
  };
}

/** Builds the provider's request handler. */
export function createHandler(opts: HandlerOptions): ProviderHandler {
  const m = opts.metrics;
  const log = opts.logger;
  const maxInflight = opts.maxInflight ?? MAX_INFLIGHT;
  const maxPerClient = opts.maxInflightPerClient ?? MAX_INFLIGHT_PER_CLIENT;
  const perClient = new Map<string, number>();
  const stallMs = opts.stallTimeoutMs ?? SEND_STALL_TIMEOUT_MS;
  const defaultChannel = opts.defaultChannel ?? "stable";
  const defaultArch = canonicalArch(opts.defaultArch ?? Deno.build.arch) ?? "amd64";

  function count(key: string, bytes: number) {
    const e = m.perArtifact[key] ??= { requests: 0, bytes: 0 };
    e.bytes += bytes;
    if (bytes === 0) e.requests++;
  }

  // Small documents are answered by cloning a prepared Response: building
  // headers per request costs more than the rest of the request.
  const templates = new WeakMap<Uint8Array, Map<string, { get: Response; head: Response }>>();
  // Body length of the template a synchronous answer was cloned from (-1:
  // none), so the access log need not read the response's headers back.
  let templateLength = -1;

  function manifestLike(req: Request, bytes: Uint8Array, digest: string, type: string): Response {
    const etag = `"sha256:${digest}"`;
    const h = { etag, "cache-control": "no-cache", "content-type": type };
    if (etagMatches(req.headers.get("if-none-match"), etag)) {
      m.notModified++;
      return new Response(null, { status: 304, headers: headers(h) });
    }
    let byType = templates.get(bytes);
    if (!byType) templates.set(bytes, byType = new Map());
    let t = byType.get(type);
    if (!t) {
      const full = headers({ ...h, "content-length": String(bytes.length) });
      t = {
        get: new Response(bytes.slice() as Uint8Array<ArrayBuffer>, { status: 200, headers: full }),
        head: new Response(null, { status: 200, headers: full }),
      };
      byType.set(type, t);
    }
    if (req.method === "HEAD") return t.head.clone();
    m.bytes += bytes.length;
    templateLength = bytes.length;
    return t.get.clone();
  }

  async function serveArtifact(
    req: Request,
    a: Artifact,
    extra: Record<string, string>,
    key: string,
  ): Promise<Response> {
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
    // TM-19: serve only from a file that is still the one whose digest is
    // the ETag; a replaced or rewritten file is refused, never mixed.
    let file: Deno.FsFile;
    try {
      file = await Deno.open(a.path, { read: true });
    } catch {
      opts.onStale?.(a);
      return text(503, "artifact is being replaced; retry", { "retry-after": "1" });
    }
    let ok = false;
    try {
      ok = sameIdentity(identityOf(await file.stat()), a.identity);
    } catch { /* treated as changed */ }
    if (!ok) {
      file.close();
      log.warn("artifact_changed", { path: a.path, digest: a.digest });
      opts.onStale?.(a);
      return text(503, "artifact changed on disk and is being re-hashed; retry", {
        "retry-after": "1",
      });
    }
    const start = range ? range.start : 0;
    const end = range ? range.end : a.size - 1;
    const length = a.size === 0 ? 0 : end - start + 1;
    const h: Record<string, string> = { ...base, "content-length": String(length) };
    if (range) h["content-range"] = `bytes ${start}-${end}/${a.size}`;
    const status = range ? 206 : 200;
    if (range) m.partial++;
    count(key, 0);
    if (req.method === "HEAD" || length === 0) {
      file.close();
      return new Response(null, { status, headers: headers(h) });
    }
    if (a.immutable && end === a.size - 1) {
      // A private snapshot nobody rewrites: Deno streams it without JS per
      // chunk (TM-19 holds by construction). Slow clients hold a slot until
      // they finish or leave; the global and per-client caps bound them (TM-18).
      if (start > 0) await file.seek(start, Deno.SeekMode.Start);
      m.bytes += length;
      count(key, length);
      return new Response(file.readable, { status, headers: headers(h) });
    }
    return new Response(fileStream(file, a, start, length, key), { status, headers: headers(h) });
  }

  function fileStream(file: Deno.FsFile, a: Artifact, start: number, length: number, key: string) {
    let remaining = length;
    let closed = false;
    let stall: ReturnType<typeof setTimeout> | undefined;
    let ctl: ReadableStreamDefaultController<Uint8Array> | undefined;
    const kill = () => {
      finish();
      try {
        ctl?.close(); // short of Content-Length: the client sees a cut response
      } catch { /* already closed */ }
    };
    opts.streams?.add(kill);
    const finish = () => {
      if (closed) return;
      closed = true;
      opts.streams?.delete(kill);
      clearTimeout(stall);
      try {
        file.close();
      } catch { /* already closed */ }
    };
    return new ReadableStream<Uint8Array>({
      async start(controller) {
        ctl = controller;
        if (start > 0) await file.seek(start, Deno.SeekMode.Start);
      },
      async pull(controller) {
        clearTimeout(stall);
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
            log.warn("artifact_changed_while_serving", { path: a.path, digest: a.digest });
            opts.onStale?.(a);
            finish();
            // Ending short of Content-Length makes the HTTP layer abort the
            // connection: the client gets an incomplete body, never mixed bytes.
            controller.close();
            return;
          }
          remaining -= off;
          m.bytes += off;
          count(key, off);
          controller.enqueue(buf);
          if (remaining === 0) {
            finish();
            controller.close();
            return;
          }
          // TM-18: a client that stops reading does not hold the file forever.
          stall = setTimeout(() => {
            log.warn("client_stalled", { path: a.path, after_ms: stallMs });
            finish();
            try {
              controller.close();
            } catch { /* already errored */ }
          }, stallMs);
        } catch (err) {
          finish();
          controller.error(err);
        }
      },
      cancel() {
        finish();
      },
    }, { highWaterMark: 1 });
  }

  function releaseFor(channel: string, arch: string): Release | undefined {
    const canonical = canonicalArch(arch);
    if (!canonical) return undefined;
    return opts.catalog().releases.get(`${channel}/${canonical}`);
  }

  // Digests of discovery records, computed once per record.
  const recordDigests = new WeakMap<Uint8Array, string>();

  async function recordDigest(record: Uint8Array): Promise<string> {
    const digest = new Uint8Array(
      await crypto.subtle.digest("SHA-256", record as Uint8Array<ArrayBuffer>),
    );
    const hex = [...digest].map((b) => b.toString(16).padStart(2, "0")).join("");
    recordDigests.set(record, hex);
    return hex;
  }

  function route(req: Request, segs: string[], query: string): Response | Promise<Response> {
    const catalog = opts.catalog();
    if (segs.length === 0) {
      if (prefersHtml(req.headers.get("accept"))) {
        return new Response(renderStatusPage(providerInfo(opts)), {
          headers: headers({
            "content-type": "text/html; charset=utf-8",
            "cache-control": "no-store",
            "content-security-policy": "default-src 'none'; style-src 'unsafe-inline'",
            "referrer-policy": "no-referrer",
          }),
        });
      }
      return json(200, providerInfo(opts));
    }
    if (segs.length === 1) {
      if (segs[0] === "health") {
        const up = opts.serving?.() ?? true;
        return json(up ? 200 : 503, { status: up ? "serving" : "stopping" });
      }
      if (segs[0] === "status") {
        return json(200, {
          ...m,
          // This request itself is not counted.
          inflight: m.inflight - 1,
          releases: catalog.releases.size,
          uptime_s: Math.floor(
            ((opts.now ?? (() => new Date()))().getTime() - opts.startedAt.getTime()) / 1000,
          ),
          advert: opts.advert?.() ?? null,
        });
      }
      if (segs[0] === "manifest.json") {
        const r = releaseFor(defaultChannel, defaultArch);
        if (r) return manifestLike(req, r.manifestBytes, r.manifestDigest, "application/json");
      }
      return text(404, "not found");
    }
    if (segs.length === 3 && segs[0] === "cas" && segs[1] === "sha256" && HEX64_RE.test(segs[2])) {
      const a = catalog.byDigest.get(segs[2]);
      if (a) return serveArtifact(req, a, {}, `${a.channel}/${a.arch}/${a.name}`);
      const r = catalog.manifestsByDigest.get(segs[2]);
      if (r) return manifestLike(req, r.manifestBytes, r.manifestDigest, "application/json");
      return text(404, "not found");
    }
    if (segs.length === 2 && segs[0] === "ipfs") {
      const hex = digestOfRawCid(segs[1]);
      if (!hex) return text(404, "not found");
      const format = new URLSearchParams(query).get("format");
      if (format !== null && format !== "raw") return text(406, "only format=raw is served");
      const raw = format === "raw" ||
        accepts(req.headers.get("accept"), "application/vnd.ipld.raw");
      const type = raw ? "application/vnd.ipld.raw" : "application/octet-stream";
      const extra = {
        "content-type": type,
        "content-disposition": `attachment; filename="${segs[1]}.bin"`,
        "x-ipfs-path": `/ipfs/${segs[1]}`,
      };
      const a = catalog.byDigest.get(hex);
      if (a) return serveArtifact(req, a, extra, `${a.channel}/${a.arch}/${a.name}`);
      const r = catalog.manifestsByDigest.get(hex);
      if (r) {
        const res = manifestLike(req, r.manifestBytes, r.manifestDigest, type);
        for (const [k, v] of Object.entries(extra)) res.headers.set(k, v);
        return res;
      }
      return text(404, "not found");
    }
    if (segs.length === 3) {
      const r = releaseFor(segs[0], segs[1]);
      if (!r) return text(404, "not found");
      if (segs[2] === "manifest.json") {
        return manifestLike(req, r.manifestBytes, r.manifestDigest, "application/json");
      }
      if (segs[2] === "record.json") {
        if (!r.record) return text(404, "no discovery record for this release");
        const record = r.record;
        const hex = recordDigests.get(record);
        if (hex) return manifestLike(req, record, hex, "application/json");
        return recordDigest(record).then((h) => manifestLike(req, record, h, "application/json"));
      }
      const a = r.artifacts.get(segs[2]);
      if (a) return serveArtifact(req, a, {}, `${r.channel}/${r.arch}/${a.name}`);
    }
    return text(404, "not found");
  }

  function direct(req: Request, info?: RequestInfo): Response | Promise<Response> {
    const t0 = performance.now();
    m.requests++;
    const { path, query } = rawTarget(req.url);
    const shownPath = path.length > MAX_LOGGED_PATH ? path.slice(0, MAX_LOGGED_PATH) + "..." : path;
    // A request holds a slot until its response is delivered or the client
    // leaves (info.completed), so slow downloads count against the caps.
    // Read once: each read of remoteAddr is a call into the runtime.
    const remote = info?.remoteAddr?.hostname;
    const client = remote ?? "local";
    m.inflight++;
    perClient.set(client, (perClient.get(client) ?? 0) + 1);
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      m.inflight--;
      const n = (perClient.get(client) ?? 1) - 1;
      if (n <= 0) perClient.delete(client);
      else perClient.set(client, n);
    };
    const failed = (err: unknown): Response => {
      log.error("handler_error", {
        path: shownPath,
        error: err instanceof Error ? err.message : String(err),
      });
      return text(500, "internal error");
    };
    const done = (res: Response, known = -1, fromMemory = false): Response => {
      // A document from memory holds nothing once it is returned: its slot
      // is free at once (no completion promise per manifest request). An
      // artifact holds its slot until delivered or abandoned (TM-18).
      if (info?.completed && !fromMemory) info.completed.then(release, release);
      else release();
      if (res.status >= 500) m.errors++;
      m.byStatus[res.status] = (m.byStatus[res.status] ?? 0) + 1;
      const entry: AccessEntry = {
        method: req.method,
        path: shownPath,
        status: res.status,
        length: known >= 0 ? known : Number(res.headers.get("content-length") ?? 0),
        range: req.headers.get("range") ?? undefined,
        remote,
        ms: Math.round((performance.now() - t0) * 1000) / 1000,
      };
      if (opts.accessLog) opts.accessLog(entry);
      else log.info("access", entry as unknown as Record<string, unknown>);
      return res;
    };
    let res: Response | Promise<Response>;
    templateLength = -1;
    try {
      if (req.method !== "GET" && req.method !== "HEAD") {
        res = text(405, "method not allowed", { allow: "GET, HEAD" });
      } else if (
        req.body !== null ||
        (req.headers.get("content-length") ?? "0") !== "0" ||
        req.headers.has("transfer-encoding")
      ) {
        // Nothing a provider serves takes input: bodies are refused unread.
        res = text(413, "request bodies are refused", { connection: "close" });
      } else if (m.inflight > maxInflight || (perClient.get(client) ?? 0) > maxPerClient) {
        m.refusedBusy++;
        res = text(503, "busy; retry", { "retry-after": "1" });
      } else {
        const segs = safeSegments(path);
        if (!segs) {
          m.rejectedPaths++;
          // TM-10: every traversal attempt is logged, and answered like any miss.
          log.warn("path_rejected", { path: shownPath, remote });
          res = text(404, "not found");
        } else {
          res = route(req, segs, query);
        }
      }
    } catch (err) {
      res = failed(err);
    }
    // Documents from memory are answered synchronously; only artifact
    // streams (and a record's first digest) wait for I/O.
    if (res instanceof Promise) return res.then((r) => done(r), (err) => done(failed(err)));
    return done(res, res.status === 200 ? templateLength : -1, true);
  }

  const handler = ((req: Request, info?: RequestInfo) => {
    try {
      return Promise.resolve(direct(req, info));
    } catch (err) {
      return Promise.reject(err);
    }
  }) as ProviderHandler;
  return Object.assign(handler, { direct });
}
