import { rawBody, rawHttpFetch } from "./raw_http.ts";
import { openRequest, readGuarded } from "./http.ts";
import { assert, assertEquals } from "./_testing.ts";
import { pseudoRandom } from "./_fixtures.ts";

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

Deno.test("raw http: a truncated body, a huge head and a bad status line are errors", async () => {
  const short = rawServer(te.encode("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this"));
  const huge = rawServer(te.encode("HTTP/1.1 200 OK\r\nX: " + "a".repeat(20_000) + "\r\n\r\n"));
  const bad = rawServer(te.encode("SSH-2.0-OpenSSH\r\n\r\n"));
  try {
    const r = await rawHttpFetch(short.url);
    let failed = false;
    await r.arrayBuffer().catch(() => (failed = true));
    assert(failed, "truncated body must fail");
    for (const u of [huge.url, bad.url]) {
      let threw = false;
      await rawHttpFetch(u).catch(() => (threw = true));
      assert(threw, u);
    }
  } finally {
    await short.close();
    await huge.close();
    await bad.close();
  }
});

/** Reads a body through readGuarded into one reused buffer, as the downloader does. */
async function readDirect(url: string, into: Uint8Array, max = 10_000_000) {
  const open = await openRequest({ url }, { fetchFn: rawHttpFetch });
  assert(rawBody(open.response.body) !== undefined, "the raw client exposes a direct reader");
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
