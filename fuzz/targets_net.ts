/**
 * Fuzz targets for the network parsers: HTTP response framing (net/raw_http.ts),
 * SOCKS5 replies (net/socks.ts), Range headers (provider/range.ts).
 *
 * @module
 */
import fc from "fast-check";
import http from "node:http";
import rangeParser from "range-parser";
import { makeRawHttpFetch, MAX_HEAD_BYTES } from "../net/raw_http.ts";
import { NetError } from "../net/errors.ts";
import { socksHandshake } from "../net/socks.ts";
import { parseRange } from "../provider/range.ts";
import { check, codeOf, type FuzzTarget, only, onlyAsync } from "./harness.ts";
import { mutatedFrom } from "./mutate.ts";

const enc = new TextEncoder();

/** An in-memory connection: `data` handed out in reads of the sizes `cuts` gives. */
class ScriptedConn {
  readonly #data: Uint8Array;
  readonly #cuts: readonly number[];
  #at = 0;
  #read = 0;
  written = 0;
  constructor(data: Uint8Array, cuts: readonly number[] = []) {
    this.#data = data;
    this.#cuts = cuts;
  }
  /** Bytes handed out so far. */
  get consumed(): number {
    return this.#at;
  }
  read(p: Uint8Array): Promise<number | null> {
    if (this.#at >= this.#data.length) return Promise.resolve(null);
    const cut = this.#cuts.length ? this.#cuts[this.#read++ % this.#cuts.length] : p.length;
    const n = Math.min(p.length, Math.max(1, cut), this.#data.length - this.#at);
    p.set(this.#data.subarray(this.#at, this.#at + n));
    this.#at += n;
    return Promise.resolve(n);
  }
  write(b: Uint8Array): Promise<number> {
    this.written += b.length;
    return Promise.resolve(b.length);
  }
  close(): void {}
}

const TOKEN_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-!#$%&'*+.^_`|~";

/** Chunked encoding of `body` cut into `sizes` (the rest in one chunk). */
function chunked(body: Uint8Array, sizes: number[], ext: boolean): Uint8Array {
  const parts: Uint8Array[] = [];
  let at = 0;
  for (const s of [...sizes, body.length]) {
    const part = body.subarray(at, Math.min(body.length, at + s));
    at += part.length;
    if (part.length === 0) continue;
    parts.push(
      enc.encode(`${part.length.toString(16)}${ext ? ";x=y" : ""}\r\n`),
      part,
      enc.encode("\r\n"),
    );
  }
  parts.push(enc.encode("0\r\n\r\n"));
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** HTTP/1.1 responses: mostly well-formed, with framing headers in every combination. */
export const httpResponse: fc.Arbitrary<Uint8Array> = fc.record({
  version: fc.constantFrom("HTTP/1.1", "HTTP/1.0", "HTTP/1.1", "HTTP/1.1", "HTTP/2", "http/1.1"),
  status: fc.oneof(
    { weight: 4, arbitrary: fc.constantFrom(200, 206, 204, 304, 404, 101, 100) },
    { weight: 1, arbitrary: fc.integer({ min: 0, max: 999 }) },
  ),
  reason: fc.constantFrom("", " OK", " Partial Content", " \u00e9", "  "),
  headers: fc.array(
    fc.oneof(
      fc.constantFrom(
        "content-type: application/octet-stream",
        "Transfer-Encoding: chunked",
        "transfer-encoding: gzip, chunked",
        "Content-Length: 0",
        "content-length: 5",
        "content-length: 5, 5",
        "Content-Length: +5",
        "Content-Length: 99999999999999999",
        " folded: value",
        "bad header",
        "x: \u0000",
        'ETag: "x"',
      ),
      fc.tuple(
        fc.string({ unit: fc.constantFrom(...TOKEN_CHARS), minLength: 1, maxLength: 12 }),
        fc.string({ maxLength: 20 }),
      )
        .map(([k, v]) => `${k}: ${v}`),
    ),
    { maxLength: 5 },
  ),
  framing: fc.constantFrom("length", "chunked", "close", "none"),
  body: fc.uint8Array({ maxLength: 300 }),
  sizes: fc.array(fc.integer({ min: 1, max: 100 }), { maxLength: 4 }),
  ext: fc.boolean(),
}).map((r) => {
  const headers = [...r.headers];
  let body: Uint8Array = r.body;
  if (r.framing === "length") headers.push(`Content-Length: ${body.length}`);
  if (r.framing === "chunked") {
    headers.push("Transfer-Encoding: chunked");
    body = chunked(body, r.sizes, r.ext);
  }
  if (r.framing === "none") body = new Uint8Array(0);
  const head = enc.encode(
    `${r.version} ${String(r.status).padStart(3, "0")}${r.reason}\r\n${
      headers.map((h) => h + "\r\n").join("")
    }\r\n`,
  );
  const out = new Uint8Array(head.length + body.length);
  out.set(head);
  out.set(body, head.length);
  return out;
});

const responses = fc.oneof(
  { weight: 3, arbitrary: mutatedFrom(httpResponse) },
  { weight: 2, arbitrary: httpResponse },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 256 }) },
);

const cuts = fc.array(fc.integer({ min: 1, max: 64 }), { maxLength: 4 });

/** Reads a response as `fetch` callers do: status, then the whole body. */
async function readAll(fetchFn: typeof fetch, url: string) {
  const res = await fetchFn(url);
  const body = new Uint8Array(await res.arrayBuffer());
  return { status: res.status, body };
}

const httpFraming: FuzzTarget = {
  name: "http-response",
  parser:
    "net/raw_http.ts: makeRawHttpFetch (status line, headers, Content-Length / chunked / close framing)",
  properties: [
    "any response bytes, in any read sizes: a Response and its whole body, or TypeError (fetch's documented error), nothing else",
    `no answer within the per-input deadline is a hang; a head above MAX_HEAD_BYTES (${MAX_HEAD_BYTES}) is refused`,
    "an accepted body is never longer than the bytes received after the head",
    "the same bytes give the same answer whatever the read sizes (framing does not depend on packet boundaries)",
  ],
  build() {
    return Promise.resolve(fc.asyncProperty(responses, cuts, async (bytes, cut) => {
      const run = (c: readonly number[]) => {
        const conn = new ScriptedConn(bytes, c);
        const f = makeRawHttpFetch({ dial: () => Promise.resolve(conn as unknown as Deno.Conn) });
        return onlyAsync(
          (e) => e instanceof TypeError,
          () => readAll(f as typeof fetch, "http://fuzz.invalid/x"),
        );
      };
      const a = await run(cut);
      const b = await run([]);
      check((a === undefined) === (b === undefined), "accepted in one read pattern only");
      if (a && b) {
        check(
          a.status === b.status && a.body.join() === b.body.join(),
          "read pattern changed the body",
        );
        check(a.body.length <= bytes.length, "body longer than the input");
      }
    }));
  },
};

/**
 * Deadline of one loopback exchange in the differential target, in
 * milliseconds: longer than INPUT_DEADLINE_MS, since two real connections
 * on a loaded machine can stall for seconds (a hang of the parser itself is
 * what `http-response` checks, in memory).
 */
export const LOOPBACK_DEADLINE_MS = 15_000;

/** What node:http reads from the same bytes: status and body, or undefined on an error. */
function nodeRead(port: number): Promise<{ status: number; body: Uint8Array } | undefined> {
  return new Promise((done) => {
    const timer = setTimeout(() => done(undefined), LOOPBACK_DEADLINE_MS);
    const resolve = (v: { status: number; body: Uint8Array } | undefined) => {
      clearTimeout(timer);
      done(v);
    };
    const req = http.get({ host: "127.0.0.1", port, path: "/x", agent: false }, (res) => {
      const parts: Uint8Array[] = [];
      res.on("data", (d: Uint8Array) => parts.push(d));
      res.on("end", () => {
        const body = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
        let o = 0;
        for (const p of parts) {
          body.set(p, o);
          o += p.length;
        }
        resolve({ status: res.statusCode ?? 0, body });
      });
      res.on("error", () => resolve(undefined));
      res.on("aborted", () => resolve(undefined));
    });
    req.on("error", () => resolve(undefined));
  });
}

/** Outcomes of the differential run, by kind (printed with the run's figures). */
export const httpDifferences: Record<string, number> = {};
/** Up to three example inputs per kind of disagreement. */
export const httpExamples: Record<string, string[]> = {};

/** Loopback server that answers each connection with the current bytes and closes. */
function scriptedServer() {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  let current: Uint8Array = new Uint8Array(0);
  const conns = new Set<Deno.Conn>();
  const serve = async (c: Deno.Conn) => {
    conns.add(c);
    try {
      const buf = new Uint8Array(8192);
      let got = "";
      // Read the request head (bounded) so the client never sees a reset.
      while (!got.includes("\r\n\r\n") && got.length < 8192) {
        const n = await c.read(buf);
        if (n === null) break;
        got += new TextDecoder().decode(buf.subarray(0, n));
      }
      let off = 0;
      while (off < current.length) off += await c.write(current.subarray(off));
    } catch {
      /* the client gave up */
    } finally {
      conns.delete(c);
      try {
        c.close();
      } catch { /* closed */ }
    }
  };
  (async () => {
    try {
      for await (const c of listener) void serve(c);
    } catch { /* closed */ }
  })();
  return {
    port: (listener.addr as Deno.NetAddr).port,
    set(b: Uint8Array) {
      current = b;
    },
    close() {
      listener.close();
      for (const c of conns) c.close();
    },
  };
}

let server: ReturnType<typeof scriptedServer> | undefined;

const httpDifferential: FuzzTarget = {
  name: "http-differential",
  parser: "net/raw_http.ts: rawHttpFetch over a loopback socket",
  partner:
    "node:http's client (Deno's implementation), fed the same bytes from the same loopback server",
  properties: [
    "when both clients accept a response, they agree on its status and its body, byte for byte",
    "every disagreement on acceptance is counted by kind (Phase is deliberately stricter; docs/fuzzing.md)",
  ],
  build() {
    server = scriptedServer();
    const s = server;
    const raw = makeRawHttpFetch();
    const input = fc.oneof(
      { weight: 3, arbitrary: httpResponse },
      { weight: 2, arbitrary: mutatedFrom(httpResponse) },
    );
    return Promise.resolve(fc.asyncProperty(input, async (bytes) => {
      s.set(bytes);
      const mine = await onlyAsync(
        (e) => e instanceof TypeError,
        () => readAll(raw as typeof fetch, `http://127.0.0.1:${s.port}/x`),
        LOOPBACK_DEADLINE_MS,
      );
      const theirs = await nodeRead(s.port);
      const kind = mine && theirs
        ? "both accept"
        : mine
        ? "only Phase accepts"
        : theirs
        ? "only node:http accepts"
        : "both refuse";
      httpDifferences[kind] = (httpDifferences[kind] ?? 0) + 1;
      if (kind.startsWith("only") && (httpExamples[kind] ??= []).length < 3) {
        httpExamples[kind].push(JSON.stringify(new TextDecoder().decode(bytes.subarray(0, 160))));
      }
      if (mine && theirs) {
        check(mine.status === theirs.status, `status ${mine.status} vs node:http ${theirs.status}`);
        check(
          mine.body.join() === theirs.body.join(),
          `body of ${mine.body.length} bytes vs node:http ${theirs.body.length}`,
        );
      }
    }));
  },
  close() {
    server?.close();
    server = undefined;
    return Promise.resolve();
  },
};

/** SOCKS5 replies: method choice, optional auth reply, CONNECT reply with a bound address. */
const socksReply = fc.record({
  version: fc.constantFrom(5, 5, 5, 4),
  method: fc.constantFrom(0, 2, 0xff, 1),
  authStatus: fc.constantFrom(0, 0, 1),
  rep: fc.constantFrom(0, 0, 0, 1, 5, 9),
  atyp: fc.constantFrom(1, 3, 4, 2),
  name: fc.uint8Array({ maxLength: 255 }),
  port: fc.integer({ min: 0, max: 65535 }),
  isolated: fc.boolean(),
}).map((r) => {
  const addr = r.atyp === 1
    ? [1, 2, 3, 4]
    : r.atyp === 4
    ? new Array(16).fill(0)
    : r.atyp === 3
    ? [r.name.length, ...r.name]
    : [];
  return {
    isolation: r.isolated ? "phase-boot-1" : undefined,
    bytes: new Uint8Array([
      5,
      r.isolated ? 2 : r.method,
      ...(r.isolated ? [1, r.authStatus] : []),
      r.version,
      r.rep,
      0,
      r.atyp,
      ...addr,
      r.port >> 8,
      r.port & 0xff,
    ]),
  };
});

const socks: FuzzTarget = {
  name: "socks",
  parser: "net/socks.ts: socksHandshake (method choice, RFC 1929 auth reply, CONNECT reply)",
  properties: [
    "any reply bytes, in any read sizes, any target host: success or NetError, nothing else, never a hang",
    "a handshake reads at most the longest valid reply (2 + 2 + 4 + 1 + 255 + 2 bytes) and never past its end",
  ],
  build() {
    const host = fc.oneof(
      fc.constantFrom("127.0.0.1", "::1", "example.onion", "[::1]", "a".repeat(256), ""),
      fc.string({ maxLength: 40 }),
    );
    const input = fc.oneof(
      socksReply,
      fc.tuple(
        mutatedFrom(socksReply.map((r) => r.bytes)),
        fc.option(fc.string({ maxLength: 300 }), { nil: undefined }),
      )
        .map(([bytes, isolation]) => ({ bytes, isolation })),
    );
    return Promise.resolve(
      fc.asyncProperty(
        input,
        host,
        fc.integer({ min: 0, max: 65535 }),
        cuts,
        async (r, h, port, cut) => {
          const trailing = new Uint8Array([...r.bytes, 0xde, 0xad]);
          const conn = new ScriptedConn(trailing, cut);
          const ok = await onlyAsync(codeOf(NetError), async () => {
            await socksHandshake(conn, h, port, r.isolation);
            return true;
          });
          check(conn.consumed <= 266, `read ${conn.consumed} bytes`);
          if (ok) check(conn.consumed <= r.bytes.length, "read past the end of the reply");
        },
      ),
    );
  },
};

const range: FuzzTarget = {
  name: "range",
  parser: "provider/range.ts: parseRange",
  partner: "npm range-parser (what Express serves with)",
  properties: [
    "any header, any size: a range inside the representation, 'unsatisfiable' or undefined; never throws",
    "a single range both accept is the same range; documented differences only (docs/fuzzing.md)",
  ],
  build() {
    const num = fc.oneof(
      fc.constant(""),
      fc.nat({ max: 2000 }).map(String),
      fc.constantFrom("00", "0", "18446744073709551616", "99999999999999999", " 1", "-1", "1.5"),
    );
    const header = fc.oneof(
      {
        weight: 4,
        arbitrary: fc.tuple(
          fc.constantFrom("bytes=", "Bytes=", "bytes =", "items=", "bytes=,"),
          fc.array(fc.tuple(num, num), { minLength: 1, maxLength: 3 }),
          fc.constantFrom("", " ", ",", "\t"),
        )
          .map(([unit, rs, tail]) => unit + rs.map(([a, b]) => `${a}-${b}`).join(",") + tail),
      },
      { weight: 1, arbitrary: fc.string({ maxLength: 40 }) },
    );
    const size = fc.oneof(fc.constantFrom(0, 1, 1000), fc.nat({ max: 1_000_000 }));
    return Promise.resolve(fc.property(header, size, (h, n) => {
      const mine = only(() => false, () => parseRange(h, n));
      if (mine && mine !== "unsatisfiable") {
        check(0 <= mine.start && mine.start <= mine.end && mine.end < n, "range outside the body");
      }
      const theirs = rangeParser(n, h, { combine: false }) as
        | number
        | ({ start: number; end: number }[] & { type: string });
      if (Array.isArray(theirs) && theirs.type === "bytes" && theirs.length === 1) {
        // Deliberate: Phase trims the header and refuses 16+ digit numbers;
        // otherwise a single satisfiable range must be the same.
        if (mine && mine !== "unsatisfiable") {
          check(
            mine.start === theirs[0].start && mine.end === theirs[0].end,
            `'${h}' size ${n}: [${mine.start},${mine.end}] vs [${theirs[0].start},${
              theirs[0].end
            }]`,
          );
        }
      }
      // Deliberate: a suffix longer than the representation is the whole
      // representation (RFC 9110 §14.1.3); range-parser 1.3 calls it unsatisfiable.
      const longSuffix = /^bytes=-\d+$/.test(h.trim()) && Number(h.trim().slice(7)) > n;
      if (mine && mine !== "unsatisfiable" && !longSuffix) {
        check(
          Array.isArray(theirs),
          `'${h}' size ${n}: Phase serves a range range-parser refuses (${theirs})`,
        );
      }
    }));
  },
};

/** The network parsers' targets. */
export const NET_TARGETS: readonly FuzzTarget[] = [httpFraming, httpDifferential, socks, range];
