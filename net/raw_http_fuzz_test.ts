import { assertEquals, assertRejects } from "../testing/mod.ts";
import { makeRawHttpFetch } from "./raw_http.ts";

// Regressions found by `deno task fuzz --target http-response` (docs/fuzzing.md).

/** A connection that hands out `bytes`, then EOF. */
function scripted(bytes: string): Deno.Conn {
  const data = new TextEncoder().encode(bytes);
  let at = 0;
  return {
    read(p: Uint8Array) {
      if (at >= data.length) return Promise.resolve(null);
      const n = Math.min(p.length, data.length - at);
      p.set(data.subarray(at, at + n));
      at += n;
      return Promise.resolve(n);
    },
    write: (b: Uint8Array) => Promise.resolve(b.length),
    close() {},
  } as unknown as Deno.Conn;
}

Deno.test("fuzz: http-response: a status above 599 is a TypeError (fetch's error), not the Response constructor's RangeError", async () => {
  const f = makeRawHttpFetch({
    dial: () => Promise.resolve(scripted("HTTP/1.1 600\r\nContent-Length: 0\r\n\r\n")),
  });
  await assertRejects(() => f("http://fuzz.invalid/x"), TypeError, "above 599");
});

Deno.test("fuzz: http-response: status 599 is still a response", async () => {
  const f = makeRawHttpFetch({
    dial: () => Promise.resolve(scripted("HTTP/1.1 599\r\nContent-Length: 0\r\n\r\n")),
  });
  assertEquals((await f("http://fuzz.invalid/x")).status, 599);
});
