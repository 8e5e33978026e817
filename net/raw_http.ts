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
import { connectUntil } from "./_connect.ts";
import type { Dialer, DirectReader, DirectResponse, FetchFn } from "./types.ts";

/** Largest response head (status line + headers) accepted, in bytes. */
export const MAX_HEAD_BYTES = 16 * 1024;
/** Size of one socket read, in bytes. */
export const READ_BYTES = 512 * 1024;
/** Largest chunk-size line (size and extensions) in a chunked body, in bytes. */
export const MAX_CHUNK_LINE_BYTES = 1024;
/**
 * Largest trailer section after the last chunk, in bytes: an endless
 * trailer is refused at this cap instead of running into the stall
 * timeout (TM-06).
 */
export const MAX_TRAILER_BYTES = 16 * 1024;

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
  /** A CRLF-terminated line of at most `max` bytes; `what` names it in errors. */
  async line(max: number, what: string): Promise<string> {
    for (;;) {
      const i = indexOfCrlf(this.#buf);
      if (i > max || (i < 0 && this.#buf.length > max)) {
        throw new TypeError(`${what} above ${max} bytes`);
      }
      if (i >= 0) {
        const l = dec.decode(this.take(i));
        this.take(2);
        return l;
      }
      if (!(await this.fill())) throw new TypeError(`connection closed in a ${what}`);
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

/**
 * The size of a chunk-size line (RFC 9112 §7.1: `1*HEXDIG [ chunk-ext ]`):
 * hex digits only (no `0x`, sign or space: parseInt would accept them and
 * two parsers would disagree on the framing), at most 13 of them (a safe
 * integer).
 */
function chunkSize(line: string): number {
  const m = /^([0-9A-Fa-f]{1,13})[ \t]*(;.*)?$/.exec(line);
  if (!m) throw new TypeError(`bad chunk size '${line.slice(0, 40)}'`);
  return parseInt(m[1], 16);
}

/** A field name (RFC 9110 §5.6.2 token). */
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/**
 * The framing of a response body from its headers (RFC 9112 §6.3), strict:
 * a response that two parsers could frame differently is refused, never
 * guessed at (response splitting, cache poisoning of a resumable prefix).
 * Returns -1 for chunked or close-delimited bodies.
 */
function framing(lines: readonly string[], headers: Headers): { chunked: boolean; length: number } {
  let lengths = 0;
  for (const l of lines) if (/^content-length:/i.test(l)) lengths++;
  const te = headers.get("transfer-encoding");
  const cl = headers.get("content-length");
  if (te !== null && cl !== null) {
    throw new TypeError("both Transfer-Encoding and Content-Length: refused");
  }
  if (te !== null) {
    if (!/^chunked$/i.test(te)) throw new TypeError(`unsupported Transfer-Encoding '${te}'`);
    return { chunked: true, length: -1 };
  }
  if (lengths > 1) throw new TypeError("duplicate Content-Length: refused");
  if (cl === null) return { chunked: false, length: -1 };
  if (!/^\d{1,15}$/.test(cl)) throw new TypeError(`bad Content-Length '${cl.slice(0, 40)}'`);
  return { chunked: false, length: Number(cl) };
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
        const size = chunkSize(await conn.line(MAX_CHUNK_LINE_BYTES, "chunk-size line"));
        if (size === 0) {
          // Trailers (ignored) up to the empty line, all of them within
          // MAX_TRAILER_BYTES (TM-06).
          let trailerBytes = 0;
          for (;;) {
            const t = await conn.line(MAX_TRAILER_BYTES, "chunked trailer line");
            if (t === "") break;
            trailerBytes += t.length + 2;
            if (trailerBytes > MAX_TRAILER_BYTES) {
              throw new TypeError(`chunked trailer section above ${MAX_TRAILER_BYTES} bytes`);
            }
          }
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
        const crlf = await conn.line(2, "chunk end");
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
  // TM-06: the connect is inside the caller's deadline (the signal), not
  // only the request and the response head.
  const conn = new Conn(
    dial
      ? await connectUntil(dial(url, signal), signal)
      : await connectUntil(Deno.connect({ hostname: host, port }), signal),
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
    // `new Response` throws a RangeError above 599 (found by fuzzing,
    // docs/fuzzing.md): refused here as fetch refuses it, with a TypeError.
    if (status > 599) throw new TypeError(`status ${status} is above 599`);
    const resHeaders = new Headers();
    for (const l of lines.slice(1)) {
      // RFC 9112 §5.2: obsolete line folding is refused, never unfolded.
      if (/^[ \t]/.test(l)) throw new TypeError("obsolete header line folding: refused");
      const i = l.indexOf(":");
      if (i <= 0 || !TOKEN.test(l.slice(0, i))) {
        throw new TypeError(`bad header line '${l.slice(0, 40)}'`);
      }
      resHeaders.append(l.slice(0, i), l.slice(i + 1).trim());
    }
    const { chunked, length: remaining } = framing(lines.slice(1), resHeaders);
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
    let direct: DirectReader | undefined;
    if (body) {
      direct = {
        read: async (view) => {
          try {
            return await reader.read(view);
          } catch (err) {
            conn.close();
            throw signal?.aborted ? signal.reason : err;
          }
        },
      };
    }
    if (done) conn.close();
    const response: DirectResponse = new Response(body, {
      status,
      statusText: m[2] ?? "",
      headers: resHeaders,
    });
    // The direct reader travels with its own response (no side table):
    // readGuarded takes it from there when it reads into its own buffers.
    if (direct) Object.defineProperty(response, "direct", { value: direct, enumerable: false });
    return response;
  } catch (err) {
    conn.close();
    if (signal?.aborted) throw signal.reason;
    throw err;
  }
}
