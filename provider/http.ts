/**
 * The provider's HTTP API (formats.md §3) as a handler
 * `(Request) => Promise<Response>`: manifests from memory, artifacts
 * streamed from an open file whose identity matches the hashed one.
 *
 * @module
 */
import type { Logger } from "../core/mod.ts";
import { canonicalArch } from "../verify/mod.ts";
import type { Artifact, Catalog, Release } from "./catalog.ts";
import { SEND_STALL_TIMEOUT_MS } from "./_artifact.ts";
import { type ArtifactMemory, type MemoryCounters, newMemoryCounters } from "./memory_cache.ts";
import { accessLog, admission, compose, type RequestContext, safePath } from "./_middleware.ts";
import { router, routes } from "./_routes.ts";

export { SEND_STALL_TIMEOUT_MS, STREAM_CHUNK_BYTES } from "./_artifact.ts";
/** Most requests in flight (open artifact streams included) before 503 (TM-18). */
export const MAX_INFLIGHT = 2048;
/** Most requests in flight from one client address before 503 (TM-18). */
export const MAX_INFLIGHT_PER_CLIENT = 256;
/**
 * Most artifact downloads (GET bodies of kernels, initramfs, rootfs) sent at
 * once before new ones get `503` + `Retry-After` (TM-18, and a boot storm:
 * the first clients finish at full rate and can serve the others, issue 12
 * §4). Manifests, records and the status documents are never refused by
 * it. 64: far below {@link MAX_INFLIGHT} (so a flood of downloads leaves
 * room for manifests and `/health`) and above the machines one LAN boots at
 * once from one provider without peers (each stream beyond shares the same
 * uplink anyway).
 */
export const MAX_DOWNLOADS = 64;
/** The `Retry-After` a download refused at {@link MAX_DOWNLOADS} carries, in seconds. */
export const DOWNLOAD_RETRY_AFTER_S = 1;
/**
 * Refused downloads closer together than this belong to one burst, logged
 * once (`downloads_capped`), in ms.
 */
export const BUSY_LOG_QUIET_MS = 10_000;
/** Longest request target looked at, in characters. */
export const MAX_TARGET_CHARS = 2048;
/** Longest path logged, in characters. */
const MAX_LOGGED_PATH = 256;
/**
 * Most request paths whose decoded segments are remembered, in entries;
 * the memory is cleared when full, so a client sending ever new paths
 * costs at most this many entries of at most {@link MAX_CACHED_PATH}
 * characters (~1 MiB), and only what decodes as safe is kept (TM-10: every
 * rejected path is still decoded, refused and logged each time).
 */
export const PATH_CACHE_ENTRIES = 1024;
/** Longest path whose decoded segments are remembered, in characters. */
export const MAX_CACHED_PATH = 256;

// Shared by every request until safePath sets the decoded ones; never mutated.
const NO_SEGMENTS: string[] = [];
const SEGMENT_RE = /^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$/;
const VERSION = "0.1.0";

/** Counters shown by `/status` and the status page. */
export interface Metrics {
  /** Requests answered since start. */
  requests: number;
  /** Body bytes sent since start (manifests, records and artifacts). */
  bytes: number;
  /** Responses with a 5xx status. */
  errors: number;
  /** Request paths refused as unsafe (traversal, dotfiles, bad encoding: TM-10). */
  rejectedPaths: number;
  /** `304 Not Modified` answers. */
  notModified: number;
  /** `206 Partial Content` answers. */
  partial: number;
  /** Requests refused with 503 at the in-flight caps (TM-18). */
  refusedBusy: number;
  /** Artifact downloads (GET bodies) being sent now, counted against the download cap. */
  downloads: number;
  /** Artifact downloads refused with 503 at the download cap (`maxDownloads`). */
  refusedDownloads: number;
  /** Artifact responses cut because the file changed while served (TM-19). */
  tornAborts: number;
  /** Requests in flight now (open artifact streams included). */
  inflight: number;
  /** Verified artifacts held in memory and the bodies answered from them (issue 17). */
  readonly memory: MemoryCounters;
  /** Responses by HTTP status. */
  readonly byStatus: Record<string, number>;
  /** Requests and body bytes per artifact, by `<channel>/<arch>/<name>`. */
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
    downloads: 0,
    refusedDownloads: 0,
    tornAborts: 0,
    inflight: 0,
    memory: newMemoryCounters(),
    byStatus: {},
    perArtifact: {},
  };
}

/** State of the advertisement layers, for `/` and `/status`. */
export interface AdvertState {
  /** The mDNS layer: on or off, its state (`running`, `off`, ...) and its instance names. */
  readonly mdns: {
    readonly enabled: boolean;
    readonly state: string;
    readonly instances: readonly string[];
  };
  /** The DHT layer: on or off, its state, its libp2p peer id, listen multiaddrs and peer count. */
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
  /** Provider name shown on the status page and in `GET /`. */
  readonly name: string;
  /** The catalog to answer from, read per request (so a rescan takes effect at once). */
  readonly catalog: () => Catalog;
  /** Counters the handler updates; make them with {@link newMetrics}. */
  readonly metrics: Metrics;
  /** Access and security log (JSON lines). */
  readonly logger: Logger;
  /** Start time, for the uptime shown by `GET /`. */
  readonly startedAt: Date;
  /** Clock; default the system clock. */
  readonly now?: () => Date;
  /** False while the provider stops: `/health` then answers 503. Default: always serving. */
  readonly serving?: () => boolean;
  /** False until the first catalog is loaded: `/health` then answers 503 `starting`. Default: ready. */
  readonly ready?: () => boolean;
  /**
   * What the status page shows besides the catalog: the provider keyid (to
   * everyone), and the trust file and root paths (to loopback clients only,
   * finding 18: remote clients never see absolute paths).
   */
  readonly page?: {
    /** Keyid of the key that signs generated manifests; absent with `--no-sign`. */
    readonly keyid?: string;
    /** The trust file clients should pass to `deno task fetch --trust`. */
    readonly trustPath?: string;
    /** The root directory, as the operator named it. */
    readonly root?: string;
  };
  /** State of the advertisement layers, shown by `GET /` and `/status`. */
  readonly advert?: () => AdvertState;
  /** Channel of the release `GET /manifest.json` answers; default `stable`. */
  readonly defaultChannel?: string;
  /** Architecture of the release `GET /manifest.json` answers; default the host's. */
  readonly defaultArch?: string;
  /** Most requests in flight before 503 (TM-18); default {@link MAX_INFLIGHT}. */
  readonly maxInflight?: number;
  /**
   * Most requests in flight from one client address (TM-18); default
   * {@link MAX_INFLIGHT_PER_CLIENT}.
   */
  readonly maxInflightPerClient?: number;
  /**
   * Most artifact downloads sent at once before `503` + `Retry-After`
   * (TM-18); default {@link MAX_DOWNLOADS}. Manifests and other documents
   * are never refused by it.
   */
  readonly maxDownloads?: number;
  /**
   * An artifact response whose client reads nothing for this long is
   * aborted, in ms (TM-18); default {@link SEND_STALL_TIMEOUT_MS}.
   */
  readonly stallTimeoutMs?: number;
  /** Called when a file no longer matches its hash (rescan it). */
  readonly onStale?: (artifact: Artifact) => void;
  /** Access log sink; default `logger.info("access", entry)`. */
  readonly accessLog?: (entry: AccessEntry) => void;
  /** Open artifact streams; calling an entry cuts that response (bounded stop). */
  readonly streams?: Set<() => void>;
  /** Verified artifact bytes held in memory (issue 17); none when absent. */
  readonly memory?: ArtifactMemory;
  /** Answer `/status` and the counters to every client, not only loopback. */
  readonly unsafePublicStatus?: boolean;
}

/** One access-log entry (one JSON line per request). */
export interface AccessEntry {
  /** HTTP method. */
  readonly method: string;
  /** Raw request path, cut to 256 characters. */
  readonly path: string;
  /** HTTP status answered. */
  readonly status: number;
  /** Body length, in bytes. */
  readonly length: number;
  /** The request's `Range` header, if any. */
  readonly range?: string;
  /** Client address, when the server passed one. */
  readonly remote?: string;
  /** Time until the response was ready (its head, not the whole body), in ms. */
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
  return accessFormatter(component)(e, now);
}

/**
 * {@link formatAccess} for one component, with the constant part of the
 * line built once (the formatter runs once per request).
 */
export function accessFormatter(component: string): (e: AccessEntry, now?: Date) => string {
  const head = `","level":"info","component":${jsonString(component)},"event":"access","method":`;
  return (e, now) =>
    `{"ts":"${now ? now.toISOString() : isoNow()}${head}${
      e.method === "GET" ? '"GET"' : jsonString(e.method)
    },"path":${jsonString(e.path)},"status":${e.status},"length":${e.length}${
      e.range === undefined ? "" : `,"range":${jsonString(e.range)}`
    }${e.remote === undefined ? "" : `,"remote":${jsonString(e.remote)}`},"ms":${e.ms}}\n`;
}

/** Connection info Deno.serve passes; optional so tests may omit it. */
export interface RequestInfo {
  /** The client's address; loopback clients see `/status` and the counters. */
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
  /** The same handler, answering in-memory documents without a Promise. */
  readonly direct: (
    req: Request,
    info?: RequestInfo,
    client?: string,
  ) => Response | Promise<Response>;
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

/**
 * {@link safeSegments} with a bounded memory of the paths it accepted
 * (the same few manifest paths are asked again and again): the same
 * answer, without splitting and matching the path per request. The
 * remembered arrays are frozen: no route may change them.
 */
export function cachedSafeSegments(
  decode: (path: string) => string[] | undefined = safeSegments,
  maxEntries = PATH_CACHE_ENTRIES,
): (path: string) => string[] | undefined {
  const known = new Map<string, string[]>();
  return (path) => {
    const hit = known.get(path);
    if (hit !== undefined) return hit;
    const segs = decode(path);
    if (segs === undefined || path.length > MAX_CACHED_PATH) return segs;
    if (known.size >= maxEntries) known.clear();
    known.set(path, Object.freeze(segs) as string[]);
    return segs;
  };
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

/** A refused release as shown over HTTP: its name under the root and an error code (finding 15). */
function refusalInfo(r: Catalog["refused"][number]) {
  // The absolute path and the error text stay in the log (release_refused).
  const parts = r.dir.split("/");
  return {
    dir: parts.slice(-2).join("/"),
    code: r.code ?? "E_REFUSED",
    ...(r.item ? { item: r.item } : {}),
  };
}

/**
 * What `GET /` answers as JSON (also the data of the HTML page). Counters
 * and advertisement state only with `counters` (loopback clients, or
 * `unsafePublicStatus`).
 */
export function providerInfo(
  opts: HandlerOptions,
  show: { counters: boolean } = { counters: true },
) {
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
    refused: catalog.refused.map(refusalInfo),
    advert: show.counters ? opts.advert?.() ?? null : null,
    metrics: show.counters ? opts.metrics : null,
  };
}

/** Builds the provider's request handler: access log, admission, path check, route table. */
export function createHandler(opts: HandlerOptions): ProviderHandler {
  const m = opts.metrics;
  const log = opts.logger;
  const defaults = {
    channel: opts.defaultChannel ?? "stable",
    arch: canonicalArch(opts.defaultArch ?? Deno.build.arch) ?? "amd64",
  };
  const artifacts = {
    metrics: m,
    logger: log,
    stallMs: opts.stallTimeoutMs ?? SEND_STALL_TIMEOUT_MS,
    onStale: opts.onStale,
    streams: opts.streams,
    memory: opts.memory,
  };
  const pipeline = compose([
    accessLog(m, log, opts.accessLog),
    admission(
      m,
      opts.maxInflight ?? MAX_INFLIGHT,
      opts.maxInflightPerClient ?? MAX_INFLIGHT_PER_CLIENT,
    ),
    safePath(m, log, cachedSafeSegments()),
  ], router(routes(opts, artifacts, defaults), opts.catalog));

  function direct(
    req: Request,
    info?: RequestInfo,
    client?: string,
  ): Response | Promise<Response> {
    const t0 = performance.now();
    const { path, query } = rawTarget(req.url);
    // The accept loop passes the connection's peer (listen.ts); otherwise
    // read it once: each read of remoteAddr is a call into the runtime.
    const remote = client ?? info?.remoteAddr?.hostname;
    const ctx: RequestContext = {
      t0,
      remote,
      client: remote ?? "local",
      path,
      query,
      shownPath: path.length > MAX_LOGGED_PATH ? path.slice(0, MAX_LOGGED_PATH) + "..." : path,
      info,
      method: req.method,
      segs: NO_SEGMENTS,
      length: -1,
    };
    return pipeline(req, ctx);
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
