/**
 * The provider's accept loop (TM-18): connections are accepted here, one
 * by one, and each is handed to Deno's HTTP server for that connection
 * alone, so that the provider, not the runtime, decides how long a
 * connection may sit without a request and how many may be open.
 *
 * `Deno.serve` 2.9.6 has no header-read or keep-alive deadline and no
 * connection cap, and its accept loop dies on EMFILE (an uncaught
 * rejection ends the process). `node:http` has the knobs but not the
 * zero-copy file bodies nor the native fast path of the manifest loop.
 * Deno's own per-connection entry point (`serveHttpOnConnection`, the
 * function `Deno.serve` runs per listener) keeps both: same HTTP engine,
 * same hot path, and an AbortSignal per connection that closes it (idle
 * and partial-header connections at once, busy ones after the response).
 *
 * @module
 */
import type { Logger } from "../core/mod.ts";
import { ProviderError } from "./errors.ts";

/** A connection must deliver its first request's headers within this, in ms (TM-18). */
export const HEADER_TIMEOUT_MS = 10_000;
/** A keep-alive connection with nothing in flight is closed after this, in ms (TM-18). */
export const IDLE_TIMEOUT_MS = 15_000;
/** Most open connections in total; at the cap the oldest idle one is shed (TM-18). */
export const MAX_CONNECTIONS = 2048;
/** Most open connections from one client address (TM-18). */
export const MAX_CONNECTIONS_PER_CLIENT = 256;
/** First pause of the accept loop after EMFILE/ENFILE or another accept error, in ms. */
export const ACCEPT_BACKOFF_MS = 10;
/** Longest pause of the accept loop after repeated accept errors, in ms. */
export const MAX_ACCEPT_BACKOFF_MS = 1_000;
/** Idle connections shed per EMFILE/ENFILE, to make room for the backlog. */
export const SHED_ON_EMFILE = 8;

/**
 * The request callback a connection's HTTP server calls (`Deno.serve`'s
 * handler), plus the connection's client address: every request of a
 * connection comes from its peer, so the handler need not ask the runtime
 * for it per request (a call into the runtime and two allocations).
 */
export type ConnHandler = (
  req: Request,
  info: Deno.ServeHandlerInfo<Deno.NetAddr>,
  client?: string,
) => Response | Promise<Response>;

/** Limits of {@link listenHttp}; tests shorten the deadlines. */
export interface ListenOptions {
  readonly hostname: string;
  readonly port: number;
  readonly logger: Logger;
  readonly headerTimeoutMs?: number;
  readonly idleTimeoutMs?: number;
  readonly maxConnections?: number;
  readonly maxConnectionsPerClient?: number;
}

/** A listening provider socket. */
export interface HttpListener {
  readonly addr: Deno.NetAddr;
  /** Connections open now. */
  connections(): number;
  /** Connections closed by a deadline, the caps or EMFILE shedding, since start. */
  shed(): number;
  /** Stops accepting; asks every connection to finish (idle ones close now). */
  shutdown(): void;
  /** Settles when every connection's server has finished. */
  finished(): Promise<void>;
}

interface Conn {
  readonly client: string;
  readonly abort: AbortController;
  readonly acceptedAt: number;
  /** Set by each request (one store on the hot path); read and cleared by the sweep. */
  seen: boolean;
  requests: number;
  /** Responses not yet delivered (artifact streams, first record digest). */
  busy: number;
  /** Since when nothing happened on the connection, in ms (performance.now()). */
  quietSince: number;
  finished: Promise<void>;
  /** Graceful stop: idle now, a response in flight after it is delivered. */
  shutdown: () => void;
}

type ServeOnConnection = (
  conn: Deno.Conn,
  signal: AbortSignal,
  handler: ConnHandler,
  onError: (err: unknown) => Response,
  onListen: () => void,
) => { finished: Promise<void>; shutdown(): Promise<void> };

function serveOnConnection(): ServeOnConnection {
  const internal = (Deno as unknown as Record<symbol | string, unknown>)[
    (Deno as unknown as { internal: symbol | string }).internal
  ] as { serveHttpOnConnection?: ServeOnConnection } | undefined;
  const fn = internal?.serveHttpOnConnection;
  if (typeof fn !== "function") {
    // Without it the TM-18 deadlines and caps cannot hold: refuse to run
    // rather than serve without them.
    throw new ProviderError(
      "E_BIND",
      `this Deno (${Deno.version.deno}) has no per-connection HTTP serving`,
      { hint: "run the provider on Deno 2.9.6 (deno.json), whose connection limits it relies on" },
    );
  }
  return fn;
}

function isFdExhaustion(err: unknown): boolean {
  const msg = err instanceof Error ? err.message : String(err);
  return /os error 2[34]\b|Too many open files/i.test(msg);
}

/** Listens on `hostname:port` and serves each accepted connection with `handler` within the TM-18 limits. */
export function listenHttp(opts: ListenOptions, handler: ConnHandler): HttpListener {
  const serveOn = serveOnConnection();
  const log = opts.logger;
  const headerMs = opts.headerTimeoutMs ?? HEADER_TIMEOUT_MS;
  const idleMs = opts.idleTimeoutMs ?? IDLE_TIMEOUT_MS;
  const maxConns = opts.maxConnections ?? MAX_CONNECTIONS;
  const maxPerClient = opts.maxConnectionsPerClient ?? MAX_CONNECTIONS_PER_CLIENT;
  const listener = Deno.listen({ hostname: opts.hostname, port: opts.port, transport: "tcp" });
  // Insertion order is accept order: the first idle entry is the oldest.
  const open = new Set<Conn>();
  const perClient = new Map<string, number>();
  let shedCount = 0;
  let stopping = false;

  const close = (c: Conn, why: string) => {
    if (c.abort.signal.aborted) return;
    shedCount++;
    log.info("connection_closed", { reason: why, remote: c.client, requests: c.requests });
    c.abort.abort();
  };
  const idle = (c: Conn) => c.busy === 0 && !c.seen;
  const shedOldestIdle = (client: string | undefined, n: number, why: string): number => {
    let done = 0;
    for (const c of open) {
      if (done >= n) break;
      if ((client === undefined || c.client === client) && idle(c) && !c.abort.signal.aborted) {
        close(c, why);
        done++;
      }
    }
    return done;
  };

  // One sweep for all connections instead of a timer per connection or
  // per request: the request path only sets `seen` (TM-18 deadlines).
  const sweepMs = Math.max(10, Math.min(1000, Math.floor(Math.min(headerMs, idleMs) / 4)));
  const sweep = setInterval(() => {
    const now = performance.now();
    for (const c of open) {
      if (c.seen) {
        c.seen = false;
        c.quietSince = now;
      } else if (c.busy === 0) {
        const limit = c.requests === 0 ? headerMs : idleMs;
        if (now - c.quietSince >= limit) {
          close(c, c.requests === 0 ? "header_timeout" : "idle_timeout");
        }
      }
    }
  }, sweepMs);

  const serve = (raw: Deno.Conn) => {
    const client = (raw.remoteAddr as Deno.NetAddr).hostname ?? "unknown";
    const fromClient = perClient.get(client) ?? 0;
    if (stopping) {
      raw.close();
      return;
    }
    // TM-18: at a cap, an idle connection makes room; if none is idle the
    // new one is closed unserved.
    if (
      (fromClient >= maxPerClient && shedOldestIdle(client, 1, "client_connection_cap") === 0) ||
      (open.size >= maxConns && shedOldestIdle(undefined, 1, "connection_cap") === 0)
    ) {
      shedCount++;
      log.warn("connection_refused", {
        remote: client,
        open: open.size,
        from_client: fromClient,
      });
      raw.close();
      return;
    }
    const now = performance.now();
    const c: Conn = {
      client,
      abort: new AbortController(),
      acceptedAt: now,
      seen: false,
      requests: 0,
      busy: 0,
      quietSince: now,
      finished: Promise.resolve(),
      shutdown: () => c.abort.abort(),
    };
    open.add(c);
    perClient.set(client, fromClient + 1);
    const settle = () => {
      c.busy--;
      c.quietSince = performance.now();
    };
    // One closure per connection, none per request.
    const onRequest: ConnHandler = (req, info) => {
      c.seen = true;
      c.requests++;
      const res = handler(req, info, client);
      if (res instanceof Promise) {
        // A streamed response holds the connection busy until delivered:
        // the idle deadline never cuts a download (the stall cut does).
        c.busy++;
        info.completed.then(settle, settle);
      }
      return res;
    };
    try {
      const server = serveOn(raw, c.abort.signal, onRequest, (err) => {
        log.error("handler_error", { error: err instanceof Error ? err.message : String(err) });
        return new Response("internal error\n", { status: 500 });
      }, () => {});
      c.shutdown = () => void server.shutdown().catch(() => {});
      c.finished = server.finished.catch(() => {}).finally(() => {
        open.delete(c);
        const n = (perClient.get(client) ?? 1) - 1;
        if (n <= 0) perClient.delete(client);
        else perClient.set(client, n);
      });
    } catch (err) {
      open.delete(c);
      perClient.set(client, fromClient);
      if (fromClient === 0) perClient.delete(client);
      log.warn("connection_setup_failed", { remote: client, error: String(err) });
      try {
        raw.close();
      } catch { /* already closed */ }
    }
  };

  const accepting = (async () => {
    let backoff = ACCEPT_BACKOFF_MS;
    while (!stopping) {
      let conn: Deno.Conn;
      try {
        conn = await listener.accept();
      } catch (err) {
        if (stopping || err instanceof Deno.errors.BadResource) break;
        // TM-18: running out of descriptors is logged and survived: shed
        // the oldest idle connections so the backlog can be accepted,
        // pause, and try again. Never fatal.
        const fds = isFdExhaustion(err);
        const shed = fds ? shedOldestIdle(undefined, SHED_ON_EMFILE, "fd_exhaustion") : 0;
        log.warn("accept_failed", {
          error: err instanceof Error ? err.message : String(err),
          open: open.size,
          shed,
          backoff_ms: backoff,
        });
        await new Promise((r) => setTimeout(r, backoff));
        backoff = Math.min(backoff * 2, MAX_ACCEPT_BACKOFF_MS);
        continue;
      }
      backoff = ACCEPT_BACKOFF_MS;
      serve(conn);
    }
  })();

  return {
    addr: listener.addr as Deno.NetAddr,
    connections: () => open.size,
    shed: () => shedCount,
    shutdown() {
      if (stopping) return;
      stopping = true;
      clearInterval(sweep);
      try {
        listener.close();
      } catch { /* already closed */ }
      // Graceful per connection: idle ones close now, busy ones after
      // their response (the shutdown grace cuts streams that outlast it).
      // The abort signal is the deadlines' cut, for idle connections only.
      for (const c of open) c.shutdown();
    },
    async finished() {
      await accepting;
      await Promise.all([...open].map((c) => c.finished));
    },
  };
}
