/**
 * A small HTTP/1.1 client for bulk artifact transfers over plain `http:`
 * (loopback, LAN providers). Deno's `fetch` hands the body over in ~64 KiB
 * chunks, one promise each, which caps a single stream well below what
 * curl reaches on the same machine; this client reads the socket into
 * large buffers. It speaks only what a download needs: one GET per
 * connection (`Connection: close`), Content-Length, chunked or
 * close-delimited bodies. Everything else (https, other methods) goes to
 * the global `fetch`, unless a dialer is given (then https runs over it
 * too, and nothing goes to the global `fetch`). It returns a standard `Response`, so the callers'
 * caps, timeouts and redirect rules (http.ts) apply unchanged.
 *
 * @module
 */
import type { FetchFn } from "./http.ts";

/** Largest response head (status line + headers) accepted, in bytes. */
export const MAX_HEAD_BYTES = 16 * 1024;
/** Size of one socket read, in bytes. */
export const READ_BYTES = 512 * 1024;
/** Largest chunk-size line in a chunked body, in bytes. */
const MAX_CHUNK_LINE_BYTES = 1024;

const enc = new TextEncoder();
const dec = new TextDecoder();

class Conn {
  #conn: Deno.Conn;
  #buf = new Uint8Array(0);
  constructor(conn: Deno.Conn) {
    this.#conn = conn;
  }
  // One scratch buffer for socket reads; what is kept is copied out at the
  // read size (a fresh 512 KiB buffer per read costs more in zeroing than
  // the copy of the bytes actually received).
  #scratch = new Uint8Array(READ_BYTES);
  /** Reads more bytes into the look-ahead buffer; false at EOF. */
  async fill(): Promise<boolean> {
    const b = this.#scratch;
    const n = await this.#conn.read(b);
    if (n === null) return false;
    if (this.#buf.length === 0) this.#buf = b.slice(0, n);
    else {
      const c = new Uint8Array(this.#buf.length + n);
      c.set(this.#buf);
      c.set(b.subarray(0, n), this.#buf.length);
      this.#buf = c;
    }
    return true;
  }
  get buffered(): Uint8Array {
    return this.#buf;
  }
  take(n: number): Uint8Array {
    const out = this.#buf.subarray(0, n);
    this.#buf = this.#buf.subarray(n);
    return out;
  }
  /** Buffered bytes first, else one socket read straight into `view`. */
  async readInto(view: Uint8Array): Promise<number | null> {
    if (this.#buf.length > 0) {
      const b = this.take(Math.min(view.length, this.#buf.length));
      view.set(b);
      return b.length;
    }
    return await this.#conn.read(view);
  }
  /** A CRLF-terminated line of at most `max` bytes. */
  async line(max: number): Promise<string> {
    for (;;) {
      const i = indexOfCrlf(this.#buf);
      if (i >= 0) {
        const l = dec.decode(this.take(i));
        this.take(2);
        return l;
      }
      if (this.#buf.length > max) throw new Error("line too long");
      if (!(await this.fill())) throw new Error("connection closed in a line");
    }
  }
  close() {
    try {
      this.#conn.close();
    } catch { /* closed */ }
  }
  write(b: Uint8Array) {
    return this.#conn.write(b);
  }
}

function indexOfCrlf(b: Uint8Array, from = 0): number {
  for (let i = from; i + 1 < b.length; i++) if (b[i] === 13 && b[i + 1] === 10) return i;
  return -1;
}

function indexOfHeadEnd(b: Uint8Array): number {
  for (let i = 0; i + 3 < b.length; i++) {
    if (b[i] === 13 && b[i + 1] === 10 && b[i + 2] === 13 && b[i + 3] === 10) return i;
  }
  return -1;
}

async function writeAll(c: Conn, b: Uint8Array) {
  let off = 0;
  while (off < b.length) off += await c.write(b.subarray(off));
}

/**
 * Direct access to a raw-client body: `read(view)` reads socket bytes into
 * the caller's view (no transfer, no copy) and returns how many, or null at
 * the end; it throws when the body is cut short. Used by http.ts
 * readGuarded, which applies the same caps and timeouts as on a stream.
 * The body stream must then not be read (cancelling it still closes the
 * connection).
 */
export interface RawBody {
  read(view: Uint8Array): Promise<number | null>;
}

const direct = new WeakMap<ReadableStream<Uint8Array>, RawBody>();

/** The direct reader of a body from {@link rawHttpFetch}, if it is one. */
export function rawBody(body: ReadableStream<Uint8Array> | null): RawBody | undefined {
  return body ? direct.get(body) : undefined;
}

/** Reads a Content-Length, chunked or close-delimited body. */
class BodyReader {
  #conn: Conn;
  #chunked: boolean;
  #remaining: number;
  #chunkLeft = 0;
  finished = false;
  constructor(conn: Conn, chunked: boolean, remaining: number) {
    this.#conn = conn;
    this.#chunked = chunked;
    this.#remaining = remaining;
    this.finished = !chunked && remaining === 0;
  }
  async read(view: Uint8Array): Promise<number | null> {
    if (this.finished) return null;
    const conn = this.#conn;
    if (this.#chunked) {
      if (this.#chunkLeft === 0) {
        const sizeLine = await conn.line(MAX_CHUNK_LINE_BYTES);
        const size = parseInt(sizeLine.split(";")[0].trim(), 16);
        if (!Number.isSafeInteger(size) || size < 0) throw new TypeError("bad chunk size");
        if (size === 0) {
          // Trailers (ignored) up to the empty line.
          while ((await conn.line(MAX_CHUNK_LINE_BYTES)) !== "");
          conn.close();
          this.finished = true;
          return null;
        }
        this.#chunkLeft = size;
      }
      const n = await conn.readInto(view.subarray(0, Math.min(view.length, this.#chunkLeft)));
      if (n === null) throw new TypeError("connection closed inside a chunk");
      this.#chunkLeft -= n;
      if (this.#chunkLeft === 0) {
        const crlf = await conn.line(2);
        if (crlf !== "") throw new TypeError("missing CRLF after a chunk");
      }
      return n;
    }
    const max = this.#remaining >= 0 ? this.#remaining : view.length;
    const n = await conn.readInto(view.subarray(0, Math.min(view.length, max)));
    if (n === null) {
      conn.close();
      if (this.#remaining > 0) {
        throw new TypeError(`connection closed with ${this.#remaining} bytes missing`);
      }
      this.finished = true;
      return null;
    }
    if (this.#remaining >= 0) {
      this.#remaining -= n;
      if (this.#remaining === 0) {
        conn.close();
        this.finished = true;
      }
    }
    return n;
  }
}

/**
 * Opens the byte stream for one request: a TCP connection, or a tunnel
 * through a proxy (client/socks.ts), with TLS already started for https.
 */
export type Dialer = (
  url: URL,
  signal?: AbortSignal,
) => Promise<Deno.Conn>;

/** How `makeRawHttpFetch` reaches a host. */
export interface RawHttpOptions {
  /**
   * Opens every connection. When set, the client never falls back to the
   * global `fetch`: every request, https included, goes through it, and
   * anything it cannot carry (a method other than GET, a body, a scheme
   * other than http/https) is refused. This is what keeps a private-mode
   * fetch on Tor (TM-13): nothing may leave by another path.
   */
  readonly dial?: Dialer;
}

/** The raw client as a FetchFn; see `RawHttpOptions.dial`. */
export function makeRawHttpFetch(o: RawHttpOptions = {}): FetchFn {
  const dial = o.dial;
  return (input, init = {}) => rawRequest(dial, input, init);
}

/** The raw client as a FetchFn (GET over http:; anything else: global fetch). */
export const rawHttpFetch: FetchFn = makeRawHttpFetch();

async function rawRequest(
  dial: Dialer | undefined,
  input: string | URL,
  init: RequestInit,
): Promise<Response> {
  const url = new URL(input);
  const method = (init.method ?? "GET").toUpperCase();
  const plain = url.protocol === "http:" && method === "GET" && !init.body;
  if (!dial && !plain) return await fetch(input, init);
  if (dial && !((url.protocol === "http:" || url.protocol === "https:") && method === "GET")) {
    throw new TypeError(
      `refused: only GET over http(s) goes through this dialer (${url.protocol})`,
    );
  }
  if (dial && init.body) throw new TypeError("refused: a request body through this dialer");
  const signal = init.signal ?? undefined;
  signal?.throwIfAborted();
  const port = Number(url.port || 80);
  const host = url.hostname.replace(/^\[|\]$/g, "");
  const conn = new Conn(
    dial ? await dial(url, signal) : await Deno.connect({ hostname: host, port }),
  );
  const onAbort = () => conn.close();
  signal?.addEventListener("abort", onAbort, { once: true });
  try {
    const headers = new Headers(init.headers);
    headers.set("host", url.host);
    headers.set("connection", "close");
    if (!headers.has("user-agent")) headers.set("user-agent", "phase-fetch");
    let head = `GET ${url.pathname}${url.search} HTTP/1.1\r\n`;
    for (const [k, v] of headers) {
      if (/[\r\n]/.test(k + v)) throw new TypeError("header with CR/LF");
      head += `${k}: ${v}\r\n`;
    }
    await writeAll(conn, enc.encode(head + "\r\n"));
    let end: number;
    for (;;) {
      end = indexOfHeadEnd(conn.buffered);
      if (end >= 0) break;
      if (conn.buffered.length > MAX_HEAD_BYTES) {
        throw new TypeError(`response head above ${MAX_HEAD_BYTES} bytes`);
      }
      if (!(await conn.fill())) throw new TypeError("connection closed before the response head");
    }
    if (end > MAX_HEAD_BYTES) throw new TypeError(`response head above ${MAX_HEAD_BYTES} bytes`);
    const lines = dec.decode(conn.take(end)).split("\r\n");
    conn.take(4);
    const m = /^HTTP\/1\.[01] (\d{3})(?: (.*))?$/.exec(lines[0]);
    if (!m) throw new TypeError(`bad status line '${lines[0].slice(0, 80)}'`);
    const status = Number(m[1]);
    if (status < 200) throw new TypeError(`unexpected interim status ${status}`);
    const resHeaders = new Headers();
    for (const l of lines.slice(1)) {
      const i = l.indexOf(":");
      if (i <= 0) throw new TypeError("bad header line");
      resHeaders.append(l.slice(0, i).trim(), l.slice(i + 1).trim());
    }
    const chunked = /(^|,)\s*chunked\s*$/i.test(resHeaders.get("transfer-encoding") ?? "");
    const lengthHeader = resHeaders.get("content-length");
    const remaining = chunked || lengthHeader === null ? -1 : Number(lengthHeader);
    if (!chunked && lengthHeader !== null && !(Number.isSafeInteger(remaining) && remaining >= 0)) {
      throw new TypeError("bad content-length");
    }
    const noBody = status === 204 || status === 304;
    const done = noBody || remaining === 0;
    const reader = new BodyReader(conn, chunked, remaining);
    let scratch: Uint8Array | undefined;
    // A byte stream: a BYOB reader gets socket bytes read straight into its
    // buffer; a default reader gets a copy per read.
    const body = done ? null : new ReadableStream({
      type: "bytes",
      async pull(ctl) {
        try {
          const req = ctl.byobRequest;
          const view = req?.view
            ? new Uint8Array(req.view.buffer, req.view.byteOffset, req.view.byteLength)
            : (scratch ??= new Uint8Array(READ_BYTES));
          const n = await reader.read(view);
          if (n === null) {
            ctl.close();
            req?.respond(0);
            return;
          }
          if (req) req.respond(n);
          else ctl.enqueue(view.slice(0, n));
          if (reader.finished) ctl.close();
        } catch (err) {
          conn.close();
          ctl.error(signal?.aborted ? signal.reason : err);
        }
      },
      cancel() {
        conn.close();
      },
    });
    if (body) {
      const abortable: RawBody = {
        read: async (view) => {
          try {
            return await reader.read(view);
          } catch (err) {
            conn.close();
            throw signal?.aborted ? signal.reason : err;
          }
        },
      };
      direct.set(body, abortable);
    }
    if (done) conn.close();
    return new Response(body, { status, statusText: m[2] ?? "", headers: resHeaders });
  } catch (err) {
    conn.close();
    if (signal?.aborted) throw signal.reason;
    throw err;
  }
}
