/**
 * The provider's request pipeline, Hono-style: small wrappers
 * `(req, ctx, next) => Response | Promise<Response>` composed once at
 * start-up around the route table. Private to provider/.
 *
 * @module
 */
import type { Logger } from "../core/mod.ts";
import type { AccessEntry, Metrics, RequestInfo } from "./http.ts";
import { text } from "./_respond.ts";

/** Per-request state, one object per request (no state shared across requests). */
export interface RequestContext {
  readonly t0: number;
  /** Client address; undefined when called without a socket (tests). */
  readonly remote: string | undefined;
  /** Key of the per-client caps. */
  readonly client: string;
  /** Raw path (not normalised) and query of the target. */
  readonly path: string;
  readonly query: string;
  /** The path as logged (cut at MAX_LOGGED_PATH). */
  readonly shownPath: string;
  readonly info: RequestInfo | undefined;
  /** `req.method`, read once (each read of it is a branded getter). */
  readonly method: string;
  /** Decoded safe segments, set by {@link safePath}. */
  segs: string[];
  /** Body length when the route knows it (memory documents), else -1. */
  length: number;
}

/** A handler inside the pipeline. */
export type Next = (req: Request, ctx: RequestContext) => Response | Promise<Response>;
/** A wrapper around the rest of the pipeline. */
export type Middleware = (
  req: Request,
  ctx: RequestContext,
  next: Next,
) => Response | Promise<Response>;

/** Composes `middlewares` (outermost first) around `last`, once. */
export function compose(middlewares: readonly Middleware[], last: Next): Next {
  return middlewares.reduceRight<Next>((next, mw) => (req, ctx) => mw(req, ctx, next), last);
}

/** Writes one access-log line per request and turns a thrown error into a 500 (logged). */
export function accessLog(
  metrics: Metrics,
  logger: Logger,
  sink: ((e: AccessEntry) => void) | undefined,
): Middleware {
  const failed = (ctx: RequestContext, err: unknown): Response => {
    logger.error("handler_error", {
      path: ctx.shownPath,
      error: err instanceof Error ? err.message : String(err),
    });
    return text(500, "internal error");
  };
  const done = (req: Request, ctx: RequestContext, res: Response): Response => {
    // Each getter below is a branded-object check (and the first one a
    // call into the runtime): read once.
    const status = res.status;
    const method = ctx.method;
    if (status >= 500) metrics.errors++;
    metrics.byStatus[status] = (metrics.byStatus[status] ?? 0) + 1;
    // The body bytes sent: none for HEAD or 304; else what the route noted
    // or the content-length every body carries. Never `res.body`: reading
    // it turns a bytes body into a stream and Deno then leaves its fast
    // path (the manifest rate fell by a quarter; bench/README.md, serve).
    const length = method === "HEAD" || status === 304
      ? 0
      : ctx.length >= 0 && status === 200
      ? ctx.length
      : Number(res.headers.get("content-length") ?? 0);
    const range = req.headers.get("range");
    const ms = Math.round((performance.now() - ctx.t0) * 1000) / 1000;
    // Absent fields are left out, not written as `undefined` (a TTY log
    // printed `range=undefined` on every request without a Range).
    const entry: { -readonly [K in keyof AccessEntry]: AccessEntry[K] } = {
      method,
      path: ctx.shownPath,
      status,
      length,
      ms,
    };
    if (range !== null) entry.range = range;
    if (ctx.remote !== undefined) entry.remote = ctx.remote;
    if (sink) sink(entry);
    else logger.info("access", entry as unknown as Record<string, unknown>);
    return res;
  };
  return (req, ctx, next) => {
    metrics.requests++;
    let res: Response | Promise<Response>;
    try {
      res = next(req, ctx);
    } catch (err) {
      res = failed(ctx, err);
    }
    // Documents from memory are answered synchronously; only artifact
    // streams (and a record's first digest) wait for I/O.
    if (res instanceof Promise) {
      return res.then((r) => done(req, ctx, r), (err) => done(req, ctx, failed(ctx, err)));
    }
    return done(req, ctx, res);
  };
}

/**
 * Refuses what a provider never takes (methods other than GET/HEAD, request
 * bodies) and what exceeds the in-flight caps, in total and per client
 * (TM-18). A request holds its slot until its response is delivered or the
 * client leaves, so slow downloads count against the caps.
 */
export function admission(metrics: Metrics, maxInflight: number, maxPerClient: number): Middleware {
  const perClient = new Map<string, number>();
  const release = (client: string) => {
    metrics.inflight--;
    const n = (perClient.get(client) ?? 1) - 1;
    if (n <= 0) perClient.delete(client);
    else perClient.set(client, n);
  };
  return (req, ctx, next) => {
    const client = ctx.client;
    const method = ctx.method;
    // This request counts against both caps from here on. The per-client
    // map is only written for a response that outlives this call (an
    // artifact stream): a document from memory is answered before any
    // other request can run, so entering and leaving the map around it
    // would change nothing but the cost (TM-18 caps unchanged).
    metrics.inflight++;
    let res: Response | Promise<Response>;
    try {
      if (method !== "GET" && method !== "HEAD") {
        res = text(405, "method not allowed", { allow: "GET, HEAD" });
      } else if (
        req.body !== null ||
        (req.headers.get("content-length") ?? "0") !== "0" ||
        req.headers.get("transfer-encoding") !== null
      ) {
        // Nothing a provider serves takes input: bodies are refused unread.
        res = text(413, "request bodies are refused", { connection: "close" });
      } else if (
        metrics.inflight > maxInflight || (perClient.get(client) ?? 0) + 1 > maxPerClient
      ) {
        metrics.refusedBusy++;
        res = text(503, "busy; retry", { "retry-after": "1" });
      } else {
        res = next(req, ctx);
      }
    } catch (err) {
      metrics.inflight--;
      throw err;
    }
    // A document from memory holds nothing once it is returned: its slot
    // is free at once (no completion promise per manifest request). An
    // artifact holds its slot until delivered or abandoned (TM-18).
    if (!(res instanceof Promise)) {
      metrics.inflight--;
      return res;
    }
    perClient.set(client, (perClient.get(client) ?? 0) + 1);
    return holdUntilDelivered(ctx, res, () => release(client), () => true);
  };
}

/**
 * Resolves with `res`; calls `release` exactly once: when the response's
 * body is delivered or abandoned (`ctx.info.completed`) if `holds(res)`
 * says it holds its place until then, else as soon as it is known, and
 * when it fails. What the admission caps and the download cap hold a
 * place with (TM-18).
 */
function holdUntilDelivered(
  ctx: RequestContext,
  res: Promise<Response>,
  release: () => void,
  holds: (res: Response) => boolean,
): Promise<Response> {
  let released = false;
  const once = () => {
    if (released) return;
    released = true;
    release();
  };
  return res.then((r) => {
    const completed = ctx.info?.completed;
    if (completed && holds(r)) completed.then(once, once);
    else once();
    return r;
  }, (err) => {
    once();
    throw err;
  });
}

/** Decodes the path into safe segments or answers 404, logged (TM-10). */
export function safePath(
  metrics: Metrics,
  logger: Logger,
  decode: (path: string) => string[] | undefined,
): Middleware {
  return (req, ctx, next) => {
    const segs = decode(ctx.path);
    if (!segs) {
      metrics.rejectedPaths++;
      // TM-10: every traversal attempt is logged, and answered like any miss.
      logger.warn("path_rejected", { path: ctx.shownPath, remote: ctx.remote });
      return text(404, "not found");
    }
    ctx.segs = segs;
    return next(req, ctx);
  };
}

/** Admits or refuses one artifact download; see {@link downloadCap}. */
export type DownloadGate = (
  req: Request,
  ctx: RequestContext,
  serve: () => Promise<Response>,
) => Response | Promise<Response>;

/**
 * The download cap: at most `max` artifact bodies (GET, not HEAD) are sent
 * at once; one more is answered `503` with `Retry-After: retryAfterS` and
 * a short body, so a busy origin lets the first clients finish at full
 * rate and sends the others elsewhere (a peer, issue 12 §4) or back a
 * little later (TM-18). A download holds its place until delivered or
 * abandoned. Refusals are counted (`refusedDownloads`) and logged once per
 * burst (`downloads_capped`: the first refusal after `quietMs` without one).
 */
export function downloadCap(
  metrics: Metrics,
  logger: Logger,
  max: number,
  retryAfterS: number,
  quietMs: number,
): DownloadGate {
  let lastRefusal = -Infinity;
  let burst = 0;
  return (_req, ctx, serve) => {
    if (ctx.method !== "GET") return serve();
    if (metrics.downloads >= max) {
      metrics.refusedDownloads++;
      const t = performance.now();
      if (t - lastRefusal > quietMs) {
        logger.warn("downloads_capped", {
          max_downloads: max,
          retry_after_s: retryAfterS,
          ...(burst > 0 ? { previous_burst_refused: burst } : {}),
          threat: "TM-18",
        });
        burst = 0;
      }
      burst++;
      lastRefusal = t;
      return text(503, "busy: too many downloads; retry later or use another provider", {
        "retry-after": String(retryAfterS),
      });
    }
    metrics.downloads++;
    // Only a body holds a place (not a 304, 416 or a 503 of a changed file).
    return holdUntilDelivered(
      ctx,
      serve(),
      () => metrics.downloads--,
      (res) => res.status === 200 || res.status === 206,
    );
  };
}
