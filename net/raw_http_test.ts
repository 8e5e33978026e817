import {
  MAX_CHUNK_LINE_BYTES,
  MAX_HEAD_BYTES,
  MAX_TRAILER_BYTES,
  rawHttpFetch,
} from "./raw_http.ts";
import { openRequest, readGuarded } from "./http.ts";
import { assert, assertEquals, pseudoRandom } from "../testing/mod.ts";

/** A raw TCP server answering every connection with `answer` (then closing). */
function rawServer(answer: Uint8Array) {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const done = (async () => {
    for await (const c of l) {
      const buf = new Uint8Array(4096);
      await c.read(buf);
      let off = 0;
      while (off < answer.length) off += await c.write(answer.subarray(off));
      c.close();
    }
  })().catch(() => {});
  return {
    url: `http://127.0.0.1:${(l.addr as Deno.NetAddr).port}/x`,
    async close() {
      l.close();
      await done;
    },
  };
}

const te = new TextEncoder();

Deno.test("raw http: Content-Length, chunked and close-delimited bodies arrive byte-exact; Range is sent", async () => {
  const data = pseudoRandom(3_000_000, 3);
  const ac = new AbortController();
  let seenRange: string | null = null;
  const s = Deno.serve(
    { hostname: "127.0.0.1", port: 0, signal: ac.signal, onListen() {} },
    (req) => {
      seenRange = req.headers.get("range");
      if (new URL(req.url).pathname === "/chunked") {
        let off = 0;
        return new Response(
          new ReadableStream({
            pull(ctl) {
              if (off >= data.length) return ctl.close();
              const n = 1000 + (off % 70_000);
              ctl.enqueue(data.slice(off, off + n));
              off += n;
            },
          }),
        );
      }
      return new Response(data as BodyInit);
    },
  );
  const raw = rawServer(te.encode("HTTP/1.0 200 OK\r\nX-A: b\r\n\r\nhello, close-delimited"));
  try {
    const base = `http://127.0.0.1:${s.addr.port}`;
    const a = await rawHttpFetch(`${base}/len`, { headers: { range: "bytes=5-" } });
    assertEquals(a.status, 200);
    assertEquals(new Uint8Array(await a.arrayBuffer()), data);
    assertEquals(seenRange, "bytes=5-");
    const b = await rawHttpFetch(`${base}/chunked`);
    assertEquals(b.headers.get("transfer-encoding"), "chunked");
    assertEquals(new Uint8Array(await b.arrayBuffer()), data);
    const c = await rawHttpFetch(raw.url);
    assertEquals(c.headers.get("x-a"), "b");
    assertEquals(await c.text(), "hello, close-delimited");
  } finally {
    ac.abort();
    await s.finished;
    await raw.close();
  }
});

/** What reading `answer` through the raw client gives: the body text, or the error's message. */
async function outcome(answer: string): Promise<{ body?: string; error?: string }> {
  const srv = rawServer(te.encode(answer));
  try {
    const r = await rawHttpFetch(srv.url);
    return { body: await r.text() };
  } catch (err) {
    return { error: (err as Error).message };
  } finally {
    await srv.close();
  }
}

/** Asserts that `answer` is refused with a message matching `re`. */
async function assertRefused(answer: string, re: RegExp): Promise<void> {
  const got = await outcome(answer);
  assert(got.error !== undefined, `accepted: ${JSON.stringify(got.body)}`);
  assert(re.test(got.error), `'${got.error}' does not match ${re}`);
}

Deno.test("raw http: a truncated body, a huge head and a bad status line are refused, each with its reason", async () => {
  await assertRefused(
    "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this",
    /^connection closed with 91 bytes missing$/,
  );
  await assertRefused(
    "HTTP/1.1 200 OK\r\nX: " + "a".repeat(MAX_HEAD_BYTES + 10) + "\r\n\r\n",
    new RegExp(`^response head above ${MAX_HEAD_BYTES} bytes$`),
  );
  await assertRefused("SSH-2.0-OpenSSH\r\n\r\n", /^bad status line 'SSH-2\.0-OpenSSH'$/);
  await assertRefused("HTTP/1.1 200 OK\r\nContent", /^connection closed before the response head$/);
});

// The raw parser reads untrusted bytes (TM-01, TM-05): a response that two
// parsers could frame differently is refused, never guessed at.
Deno.test("TM-05 response framing: Content-Length together with Transfer-Encoding is refused", async () => {
  await assertRefused(
    "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    /^both Transfer-Encoding and Content-Length: refused$/,
  );
  await assertRefused(
    "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
    /^unsupported Transfer-Encoding 'gzip, chunked'$/,
  );
});

Deno.test("TM-05 response framing: duplicate, negative or non-decimal Content-Length is refused", async () => {
  await assertRefused(
    "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
    /^duplicate Content-Length: refused$/,
  );
  await assertRefused(
    "HTTP/1.1 200 OK\r\nContent-Length: 5\r\ncontent-length: 7\r\n\r\nhello",
    /^duplicate Content-Length: refused$/,
  );
  await assertRefused(
    "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\nhello",
    /^bad Content-Length '-1'$/,
  );
  await assertRefused(
    "HTTP/1.1 200 OK\r\nContent-Length: 0x5\r\n\r\nhello",
    /^bad Content-Length '0x5'$/,
  );
  await assertRefused(
    "HTTP/1.1 200 OK\r\nContent-Length: 5e0\r\n\r\nhello",
    /^bad Content-Length '5e0'$/,
  );
});

Deno.test("TM-05 response framing: obsolete header folding and malformed field names are refused", async () => {
  // Unfolded naively, the second line would become a Content-Length.
  await assertRefused(
    "HTTP/1.1 200 OK\r\nX-A: 1\r\n Content-Length: 2\r\n\r\nhello",
    /^obsolete header line folding: refused$/,
  );
  await assertRefused(
    "HTTP/1.1 200 OK\r\nX-A: 1\r\n\tmore\r\n\r\nhello",
    /^obsolete header line folding: refused$/,
  );
  await assertRefused(
    "HTTP/1.1 200 OK\r\nContent-Length : 5\r\n\r\nhello",
    /^bad header line 'Content-Length : 5'$/,
  );
});

Deno.test("raw http: a status line without a reason phrase parses (RFC 9112 §4)", async () => {
  assertEquals(await outcome("HTTP/1.1 200\r\nContent-Length: 5\r\n\r\nhello"), { body: "hello" });
  assertEquals(await outcome("HTTP/1.1 200 \r\nContent-Length: 2\r\n\r\nhi"), { body: "hi" });
});

Deno.test("TM-05 chunked framing: 0x, signed or oversized chunk sizes are refused", async () => {
  const chunked = (body: string) => `HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n${body}`;
  // For contrast: a plain chunked body with an extension is read.
  assertEquals(await outcome(chunked("5;ext=1\r\nhello\r\n0\r\n\r\n")), { body: "hello" });
  await assertRefused(chunked("0x5\r\nhello\r\n0\r\n\r\n"), /^bad chunk size '0x5'$/);
  await assertRefused(chunked("+5\r\nhello\r\n0\r\n\r\n"), /^bad chunk size '\+5'$/);
  await assertRefused(chunked(" 5\r\nhello\r\n0\r\n\r\n"), /^bad chunk size ' 5'$/);
  await assertRefused(chunked("12345678901234\r\nhello"), /^bad chunk size '12345678901234'$/);
  await assertRefused(
    chunked("5;" + "x".repeat(MAX_CHUNK_LINE_BYTES) + "\r\nhello\r\n0\r\n\r\n"),
    new RegExp(`^chunk-size line above ${MAX_CHUNK_LINE_BYTES} bytes$`),
  );
});

Deno.test("TM-06 chunked framing: endless trailers are cut at MAX_TRAILER_BYTES, not by a timeout", async () => {
  // A server that sends trailer lines forever and never closes.
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const serving = (async () => {
    const c = await l.accept();
    await c.read(new Uint8Array(4096));
    const line = te.encode("X-Trailer: " + "t".repeat(100) + "\r\n");
    try {
      await c.write(
        te.encode("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n"),
      );
      for (;;) await c.write(line);
    } catch { /* the client hung up */ }
    c.close();
  })();
  try {
    const t0 = performance.now();
    const r = await rawHttpFetch(`http://127.0.0.1:${(l.addr as Deno.NetAddr).port}/`);
    let error = "";
    await r.text().catch((err) => (error = (err as Error).message));
    assertEquals(error, `chunked trailer section above ${MAX_TRAILER_BYTES} bytes`);
    assert(performance.now() - t0 < 5_000, "refused at the byte cap, long before any timeout");
  } finally {
    l.close();
    await serving;
  }
});

/** Reads a body through readGuarded into one reused buffer, as the downloader does. */
async function readDirect(url: string, into: Uint8Array, max = 10_000_000) {
  const open = await openRequest({ url }, { fetchFn: rawHttpFetch });
  assert(open.direct !== undefined, "the raw client's response carries its direct reader");
  const out: Uint8Array[] = [];
  let fill = 0;
  let error: unknown;
  let overflow = false;
  try {
    ({ overflow } = await readGuarded(open, max, (c) => {
      // In place: the chunk is the tail of `into`, never a transferred copy.
      assert(c.buffer === into.buffer && c.byteOffset === fill, "read in place");
      fill += c.length;
      if (fill === into.length) {
        out.push(into.slice());
        fill = 0;
      }
    }, { into: () => into.subarray(fill) }));
  } catch (err) {
    error = err;
  }
  // The bytes read before a failure are still in the buffer (nothing transferred).
  out.push(into.slice(0, fill));
  const all = new Uint8Array(out.reduce((n, b) => n + b.length, 0));
  let off = 0;
  for (const b of out) {
    all.set(b, off);
    off += b.length;
  }
  return { all, error, overflow };
}

Deno.test("raw http: the direct reader delivers Content-Length, chunked and close-delimited bodies in place, byte-exact", async () => {
  const data = pseudoRandom(2_500_000, 4);
  const ac = new AbortController();
  const s = Deno.serve(
    { hostname: "127.0.0.1", port: 0, signal: ac.signal, onListen() {} },
    (req) => {
      if (new URL(req.url).pathname === "/chunked") {
        let off = 0;
        return new Response(
          new ReadableStream({
            pull(ctl) {
              if (off >= data.length) return ctl.close();
              const n = 1000 + (off % 90_000);
              ctl.enqueue(data.slice(off, off + n));
              off += n;
            },
          }),
        );
      }
      return new Response(data as BodyInit);
    },
  );
  const raw = rawServer(te.encode("HTTP/1.0 200 OK\r\n\r\nhello, close-delimited"));
  try {
    const base = `http://127.0.0.1:${s.addr.port}`;
    const buf = new Uint8Array(1024 * 1024);
    assertEquals((await readDirect(`${base}/len`, buf)).all, data);
    assertEquals((await readDirect(`${base}/chunked`, buf)).all, data);
    const c = await readDirect(raw.url, buf);
    assertEquals(new TextDecoder().decode(c.all), "hello, close-delimited");
    // TM-05 through the direct reader: reading stops at the cap.
    const capped = await readDirect(`${base}/len`, buf, 1_000_000);
    assert(capped.overflow, "more than the cap is reported");
    assertEquals(capped.all, data.subarray(0, 1_000_000));
  } finally {
    ac.abort();
    await s.finished;
    await raw.close();
  }
});

Deno.test("raw http: a body cut short fails through the direct reader and keeps the bytes read before the cut", async () => {
  const short = rawServer(te.encode("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this"));
  try {
    const r = await readDirect(short.url, new Uint8Array(64 * 1024));
    assert(r.error !== undefined, "a truncated body must fail");
    assertEquals(new TextDecoder().decode(r.all), "only this");
  } finally {
    await short.close();
  }
});
