/**
 * Bounded HTTP for the client: every request has a header timeout, every
 * body a stall timeout and a minimum rate (TM-06), every read a byte cap
 * (TM-05), and redirects are followed only within the same origin (TM-15:
 * a captive portal or hostile network answering with a redirect elsewhere
 * is refused and reported, never followed).
 *
 * @module
 */
import { type Logger, PhaseError } from "../core/mod.ts";
import { NetError } from "./errors.ts";
import type { DirectReader, DirectResponse, FetchFn } from "./types.ts";

/** Time allowed from request to response headers, in milliseconds. */
export const HEADERS_TIMEOUT_MS = 10_000;
/** Longest wait for the next body bytes, in milliseconds (TM-06). */
export const STALL_TIMEOUT_MS = 15_000;
/** Lowest average rate accepted over a window, in bytes per second (TM-06). */
export const MIN_RATE_BYTES_PER_S = 16 * 1024;
/** Window over which the minimum rate is measured, in milliseconds. */
export const MIN_RATE_WINDOW_MS = 30_000;
/** Most same-origin redirects followed. */
export const MAX_REDIRECTS = 3;

/** Timeouts of one transfer; tests and slow links inject their own. */
export interface TransferLimits {
  /** Time allowed from sending the request to the response headers, in milliseconds. */
  readonly headersTimeoutMs: number;
  /** Longest wait for the next body bytes, in milliseconds. */
  readonly stallTimeoutMs: number;
  /** Lowest average body rate accepted over a window, in bytes per second (0: no minimum). */
  readonly minRateBytesPerS: number;
  /** Window over which the minimum rate is measured, in milliseconds. */
  readonly minRateWindowMs: number;
}

/**
 * The default limits: 10 s to the headers, 15 s stall, at least 16 KiB/s
 * over every 30 s window.
 */
export const DEFAULT_LIMITS: TransferLimits = Object.freeze({
  headersTimeoutMs: HEADERS_TIMEOUT_MS,
  stallTimeoutMs: STALL_TIMEOUT_MS,
  minRateBytesPerS: MIN_RATE_BYTES_PER_S,
  minRateWindowMs: MIN_RATE_WINDOW_MS,
});

/** An open response whose body is read through {@link readGuarded}. */
export interface OpenResponse {
  /** The response, headers received; its body is not read yet. */
  readonly response: Response;
  /** The URL that answered (after same-origin redirects). */
  readonly url: string;
  /** Aborts the request (and closes its connection). */
  readonly abort: AbortController;
  /**
   * The raw client's direct body reader, when the response came from it:
   * readGuarded reads through it into the caller's buffers.
   */
  readonly direct?: DirectReader;
}

/** A request: url, optional Range, accepted content types. */
export interface RequestSpec {
  /** The URL (http or https). */
  readonly url: string;
  /** First byte wanted; a Range header is sent when > 0 or `end` is set. */
  readonly start?: number;
  /** Last byte wanted, inclusive. */
  readonly end?: number;
  /** The `Accept` header (default: none). */
  readonly accept?: string;
}

/**
 * What a user can do about text that should be an http(s) URL and is not.
 * A missing scheme (`127.0.0.1:8080/x`, `localhost:8080/x`) is the usual
 * slip: the hint spells out the URL it probably meant.
 *
 * @example
 * ```ts
 * import { httpUrlHint } from "@phase/phase/net";
 * httpUrlHint("127.0.0.1:8080/stable/amd64/manifest.json");
 * // "did you mean http://127.0.0.1:8080/stable/amd64/manifest.json? ..."
 * ```
 */
export function httpUrlHint(text: string): string {
  const t = text.trim();
  if (t !== "" && !/^[a-z][a-z0-9+.-]*:\/\//i.test(t)) {
    return `did you mean http://${t}? a URL starts with http:// or https://`;
  }
  return "give an http:// or https:// URL, e.g. http://127.0.0.1:8080/stable/amd64/manifest.json";
}

/**
 * Why a request failed before any response, in words, and what to try.
 * `fetch` says only "fetch failed"; the reason is in its cause.
 */
function explainFetchFailure(url: URL, err: unknown): { message: string; hint: string } {
  const cause = (err as { cause?: unknown })?.cause;
  const text = [err, cause]
    .map((e) => (e instanceof Error ? e.message : e === undefined ? "" : String(e)))
    .join(" ");
  const where = `${url.hostname}:${url.port || (url.protocol === "https:" ? "443" : "80")}`;
  // An error Phase's own dialers raised (SOCKS, raw HTTP) already says what
  // failed and where, with its hint: keep it. Guessing from its text would
  // blame the URL's host for what may be the proxy's refusal (TM-13).
  const own = [err, cause].find((e): e is PhaseError => e instanceof PhaseError);
  if (own) {
    return { message: own.message, hint: own.hint ?? "the message says which connection failed" };
  }
  if (/connection refused/i.test(text)) {
    return {
      message: `connection refused: nothing listens on ${where}`,
      hint: `is the provider running? check with 'deno task provider status ${url.origin}'`,
    };
  }
  if (/dns error|failed to lookup|name or service not known|no such host/i.test(text)) {
    return {
      message: `cannot resolve the host name '${url.hostname}'`,
      hint: "check the host name in the URL, or use the provider's IP address",
    };
  }
  if (/unreachable|no route to host/i.test(text)) {
    return {
      message: `${where} is unreachable (${text.trim()})`,
      hint: "check the network connection and the address in the URL",
    };
  }
  if (/certificate|tls|handshake/i.test(text)) {
    return {
      message: `TLS failed (${text.trim()})`,
      hint: "check that the URL's scheme and port match the server (http:// for a Phase provider)",
    };
  }
  return {
    message: text.trim() || "the request failed",
    hint: `check the URL and that ${where} answers HTTP`,
  };
}

/** How {@link openRequest} sends a request. */
export interface OpenRequestOptions {
  /** Deadline to the response headers (default {@link DEFAULT_LIMITS}). */
  limits?: TransferLimits;
  /** The fetch used (default: the global `fetch`). */
  fetchFn?: FetchFn;
  /** Logs a refused redirect. */
  logger?: Logger;
  /** Aborts the request from outside. */
  signal?: AbortSignal;
}

/** How {@link readGuarded} reads a body. */
export interface ReadGuardedOptions {
  /** Stall and minimum-rate limits (default {@link DEFAULT_LIMITS}). */
  limits?: TransferLimits;
  /** Monotonic clock in milliseconds (default `performance.now`). */
  now?: () => number;
  /**
   * Returns the buffer the next read fills: the body is then read into the
   * caller's buffers (no copy per chunk), and `onChunk` gets a view of it.
   */
  into?: () => Uint8Array;
  /**
   * With `into` on a byte stream: each read transfers the buffer, and this
   * receives the new one before `onChunk` sees the bytes.
   */
  adopt?: (buffer: ArrayBuffer) => void;
}

/** What {@link readGuarded} read. */
export interface ReadResult {
  /** Bytes passed to `onChunk`. */
  bytes: number;
  /** True when the sender had more than `maxBytes`. */
  overflow: boolean;
}

/** How {@link fetchCapped} fetches. */
export interface FetchCappedOptions {
  /** Header, stall and minimum-rate limits (default {@link DEFAULT_LIMITS}). */
  limits?: TransferLimits;
  /** The fetch used (default: the global `fetch`). */
  fetchFn?: FetchFn;
  /** Logs a refused redirect. */
  logger?: Logger;
  /** The `Accept` header. */
  accept?: string;
  /** Aborts the request, and the body's read, from outside. */
  signal?: AbortSignal;
}

/** A document {@link fetchCapped} read whole. */
export interface FetchedDocument {
  /** The body. */
  bytes: Uint8Array;
  /** The response (its body already consumed). */
  response: Response;
  /** The URL that answered (after same-origin redirects). */
  url: string;
}

/**
 * Sends a GET and returns once headers arrive. Follows same-origin
 * redirects only; a redirect to another origin throws E_REDIRECT (TM-15).
 */
export async function openRequest(
  spec: RequestSpec,
  opts: OpenRequestOptions = {},
): Promise<OpenResponse> {
  const limits = opts.limits ?? DEFAULT_LIMITS;
  const fetchFn = opts.fetchFn ?? fetch;
  let url = new URL(spec.url);
  const origin = url.origin;
  for (let hop = 0;; hop++) {
    const abort = new AbortController();
    const onOuter = () => abort.abort(opts.signal?.reason);
    opts.signal?.addEventListener("abort", onOuter, { once: true });
    const headers: Record<string, string> = { "accept-encoding": "identity" };
    if (spec.accept) headers.accept = spec.accept;
    if ((spec.start ?? 0) > 0 || spec.end !== undefined) {
      headers.range = `bytes=${spec.start ?? 0}-${spec.end ?? ""}`;
    }
    const timer = setTimeout(
      () =>
        abort.abort(
          new NetError(
            "E_STALL",
            `no response headers from ${url.origin} within ${limits.headersTimeoutMs} ms (TM-06)`,
          ),
        ),
      limits.headersTimeoutMs,
    );
    let response: Response;
    try {
      response = await fetchFn(url, { headers, redirect: "manual", signal: abort.signal });
    } catch (err) {
      if (abort.signal.reason instanceof NetError) throw abort.signal.reason;
      const why = explainFetchFailure(url, err);
      throw new NetError("E_FETCH", `${url.href}: ${why.message}`, { cause: err, hint: why.hint });
    } finally {
      clearTimeout(timer);
      opts.signal?.removeEventListener("abort", onOuter);
    }
    if (response.status >= 300 && response.status < 400) {
      await response.body?.cancel().catch(() => {});
      const location = response.headers.get("location");
      let next: URL | undefined;
      try {
        next = location ? new URL(location, url) : undefined;
      } catch { /* unparsable: refused below */ }
      if (!next || next.origin !== origin) {
        // TM-15: a redirect to another origin is how captive portals and
        // hostile networks steer clients; never follow it.
        opts.logger?.warn("redirect_refused", {
          url: url.href,
          location: location ?? "",
          threat: "TM-15",
        });
        throw new NetError(
          "E_REDIRECT",
          `${url.href} redirected to ${
            location ?? "(no location)"
          }: another origin, refused (TM-15)`,
          {
            hint:
              "a captive portal or a hostile network may be answering; give a provider URL you trust with --manifest",
          },
        );
      }
      if (hop >= MAX_REDIRECTS) {
        throw new NetError("E_REDIRECT", `${spec.url}: more than ${MAX_REDIRECTS} redirects`);
      }
      url = next;
      continue;
    }
    return { response, url: url.href, abort, direct: (response as DirectResponse).direct };
  }
}

/**
 * Reads a body chunk by chunk, aborting when no bytes arrive for
 * `stallTimeoutMs` or when the rate over `minRateWindowMs` falls below
 * `minRateBytesPerS` (TM-06). `maxBytes` bounds what is accepted: reading
 * stops there and `overflow` reports whether the sender had more (TM-05).
 */
export async function readGuarded(
  open: OpenResponse,
  maxBytes: number,
  onChunk: (chunk: Uint8Array) => void | Promise<void>,
  opts: ReadGuardedOptions = {},
): Promise<ReadResult> {
  const limits = opts.limits ?? DEFAULT_LIMITS;
  const now = opts.now ?? (() => performance.now());
  const body = open.response.body;
  if (!body) return { bytes: 0, overflow: false };
  // With `into`, read straight into the caller's buffer: through the raw
  // client's direct reader (no transfer: what the buffer held before a
  // failed read is still there), else BYOB on a byte stream (the buffer is
  // transferred by each read: `adopt` gets the new one after every read
  // that returns it, also the last, empty one, before onChunk sees the
  // bytes in place). No allocation and no copy per chunk, so a multi-GiB
  // transfer keeps a flat memory profile.
  const direct = opts.into ? open.direct : undefined;
  let byob: ReadableStreamBYOBReader | undefined;
  if (opts.into && !direct) {
    try {
      byob = body.getReader({ mode: "byob" });
    } catch { /* not a byte stream: default reader */ }
  }
  const reader: ReadableStreamBYOBReader | ReadableStreamDefaultReader<Uint8Array> | undefined =
    direct ? undefined : byob ?? body.getReader();
  let total = 0;
  let windowStart = now();
  let windowBytes = 0;
  let lastData = now();
  let stalled: NetError | undefined;
  // One watchdog per transfer rather than a timer per chunk: cheap at GB/s.
  const watchdog = setInterval(() => {
    if (now() - lastData >= limits.stallTimeoutMs) {
      stalled = new NetError(
        "E_STALL",
        `${open.url}: no data for ${limits.stallTimeoutMs} ms after ${total} bytes (TM-06)`,
        {
          hint: "the provider stalled; another mirror or provider is tried when known",
        },
      );
      open.abort.abort(stalled);
      (reader ?? body).cancel(stalled).catch(() => {});
    }
  }, Math.max(10, Math.min(1000, limits.stallTimeoutMs / 4)));
  try {
    while (true) {
      let r: ReadableStreamReadResult<Uint8Array>;
      try {
        if (direct && opts.into) {
          const view = opts.into();
          const n = await direct.read(view);
          r = n === null
            ? { done: true, value: undefined }
            : { done: false, value: view.subarray(0, n) };
        } else if (byob && opts.into) {
          r = await byob.read(opts.into()) as ReadableStreamReadResult<Uint8Array>;
          if (r.value) opts.adopt?.(r.value.buffer as ArrayBuffer);
        } else {
          r = await (reader as ReadableStreamDefaultReader<Uint8Array>).read();
        }
      } catch (err) {
        if (stalled) throw stalled;
        throw new NetError(
          "E_FETCH",
          `${open.url}: connection failed after ${total} bytes: ${(err as Error).message}`,
          { cause: err },
        );
      }
      if (stalled) throw stalled;
      if (r.done) return { bytes: total, overflow: false };
      lastData = now();
      let chunk = r.value;
      if (total + chunk.length > maxBytes) {
        chunk = chunk.subarray(0, maxBytes - total);
        if (chunk.length > 0) await onChunk(chunk);
        total += chunk.length;
        return { bytes: total, overflow: true };
      }
      total += chunk.length;
      windowBytes += chunk.length;
      await onChunk(chunk);
      const t = now();
      if (t - windowStart >= limits.minRateWindowMs) {
        const rate = windowBytes / ((t - windowStart) / 1000);
        if (rate < limits.minRateBytesPerS) {
          throw new NetError(
            "E_STALL",
            `${open.url}: ${Math.round(rate)} B/s over ${
              Math.round(t - windowStart)
            } ms, below the ${limits.minRateBytesPerS} B/s minimum (TM-06)`,
            {
              hint:
                "the provider is too slow (slow-retrieval attack or bad link); another source is tried when known",
            },
          );
        }
        windowStart = t;
        windowBytes = 0;
      }
    }
  } finally {
    clearInterval(watchdog);
    // Whatever happened, release the connection (an endless or stalled
    // sender must not keep a socket and a reader alive).
    open.abort.abort();
    reader?.releaseLock();
    await body.cancel().catch(() => {});
  }
}

/**
 * Fetches a small document whole (manifests, records, health), capped at
 * `maxBytes` (TM-05). Anything but a 200 is an `E_FETCH` error; a body
 * announced or sent above the cap is `E_TOO_LARGE`.
 */
export async function fetchCapped(
  url: string,
  maxBytes: number,
  opts: FetchCappedOptions = {},
): Promise<FetchedDocument> {
  const open = await openRequest({ url, accept: opts.accept }, opts);
  const { response } = open;
  if (response.status !== 200) {
    open.abort.abort();
    await response.body?.cancel().catch(() => {});
    throw new NetError("E_FETCH", `${url}: HTTP ${response.status}`, {
      hint: response.status === 404
        ? `nothing at that path: check the channel and arch in the URL ('deno task provider list ${
          new URL(url).origin
        }' shows what it serves)`
        : "the server refused the request; its log says why",
    });
  }
  const declared = Number(response.headers.get("content-length") ?? "NaN");
  if (declared > maxBytes) {
    open.abort.abort();
    await response.body?.cancel().catch(() => {});
    throw new NetError(
      "E_TOO_LARGE",
      `${url}: ${declared} bytes announced, above the ${maxBytes}-byte cap (TM-05)`,
    );
  }
  const parts: Uint8Array[] = [];
  const { bytes, overflow } = await readGuarded(open, maxBytes, (c) => {
    parts.push(c.slice());
  }, opts);
  if (overflow) {
    throw new NetError("E_TOO_LARGE", `${url}: more than ${maxBytes} bytes (TM-05)`, {
      hint: "the provider sends endless or oversized data; refused",
    });
  }
  const out = new Uint8Array(bytes);
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return { bytes: out, response, url: open.url };
}
