import { startTestSocks } from "../testing/socks5.ts";
import { ClientError, fetchRelease } from "../client/mod.ts";
import { NetError } from "./errors.ts";
import { makeRawHttpFetch } from "./raw_http.ts";
import { connectRequest, parseSocksAddress, socksDialer } from "./socks.ts";
import {
  assert,
  assertEquals,
  assertRejects,
  assertRejectsCode,
  makeRelease,
  serveRelease,
} from "../testing/mod.ts";

/** A name that no resolver answers (RFC 6761): only the proxy can map it. */
const PROVIDER_NAME = "provider.phase.invalid";

Deno.test("TM-13 private-mode privacy: through SOCKS the provider's name goes to the proxy and is never resolved locally", async () => {
  const rel = await makeRelease();
  const srv = serveRelease(rel);
  const port = Number(new URL(srv.origin).port);
  const socks = startTestSocks({ names: { [PROVIDER_NAME]: port } });
  try {
    const fetchFn = makeRawHttpFetch({
      dial: socksDialer({
        proxy: { hostname: "127.0.0.1", port: socks.port },
        isolation: "boot-1",
      }),
    });
    const manifestUrl = `http://${PROVIDER_NAME}:${port}/stable/amd64/manifest.json`;
    const got = await fetchRelease({
      manifestUrl,
      trust: rel.trust,
      cacheDir: `${rel.dir}/cache`,
      fetchFn,
      parallel: false,
    });
    // The release verified, every artifact came through the tunnel ...
    assertEquals(got.verified.value.channel, "stable");
    for (const [name, a] of Object.entries(got.artifacts)) {
      assertEquals(new Uint8Array(await Deno.readFile(a.path)), rel.files.get(name));
    }
    // ... and every connection asked the proxy for the name (address type 3),
    // which this machine cannot resolve: no local lookup happened.
    assert(socks.requests.length >= 1 + rel.files.size, JSON.stringify(socks.requests));
    for (const r of socks.requests) {
      assertEquals([r.atyp, r.host, r.port, r.user], [3, PROVIDER_NAME, port, "boot-1"]);
    }
    assertEquals(srv.requests.length, socks.requests.length);
  } finally {
    await socks.close();
    await srv.close();
    await Deno.remove(rel.dir, { recursive: true });
  }
});

Deno.test("TM-13 private-mode privacy: with the proxy down nothing is sent around it (no direct fallback)", async () => {
  const rel = await makeRelease();
  const srv = serveRelease(rel);
  const socks = startTestSocks();
  const deadPort = socks.port;
  await socks.close(); // the proxy is gone; the provider is up and reachable directly
  try {
    const fetchFn = makeRawHttpFetch({
      dial: socksDialer({ proxy: { hostname: "127.0.0.1", port: deadPort } }),
    });
    // For contrast, the direct path works: the provider is up.
    const direct = await fetchRelease({
      manifestUrl: srv.url,
      trust: rel.trust,
      cacheDir: `${rel.dir}/cache`,
    });
    assertEquals(direct.verified.value.channel, "stable");
    const before = srv.requests.length;
    assert(before > 0);
    const e = await assertRejectsCode(
      fetchRelease({ manifestUrl: srv.url, trust: rel.trust, cacheDir: `${rel.dir}/c2`, fetchFn }),
      ClientError,
      "E_FETCH",
    );
    assert(e.message.includes("SOCKS proxy"), e.message);
    assertEquals(srv.requests.length, before, "the provider saw a request that bypassed the proxy");
    // Nor does anything else leave through the global fetch: other methods
    // and schemes are refused outright.
    await assertRejects(fetchFn(srv.url, { method: "POST", body: "x" }), TypeError);
    await assertRejects(fetchFn("ftp://127.0.0.1/x"), TypeError);
    assertEquals(srv.requests.length, before);
  } finally {
    await srv.close();
    await Deno.remove(rel.dir, { recursive: true });
  }
});

Deno.test("TM-06 slow retrieval: a SOCKS proxy that never opens the tunnel is cut at the handshake deadline", async () => {
  const socks = startTestSocks({ mode: "stall" });
  try {
    const dial = socksDialer({
      proxy: { hostname: "127.0.0.1", port: socks.port },
      handshakeTimeoutMs: 300,
    });
    const t0 = performance.now();
    const e = await assertRejectsCode(
      dial(new URL("http://x.phase.invalid/")),
      NetError,
      "E_STALL",
    );
    const took = performance.now() - t0;
    assert(took >= 250 && took < 5000, `took ${took} ms`);
    assert(e.message.includes("within 300 ms"), e.message);
  } finally {
    await socks.close();
  }
});

Deno.test("TM-06 slow retrieval: a SOCKS handshake cancelled just as its deadline passes closes the connection once and throws nothing out of band", async () => {
  const socks = startTestSocks({ mode: "stall" });
  try {
    const TIMEOUT_MS = 50;
    const dial = socksDialer({
      proxy: { hostname: "127.0.0.1", port: socks.port },
      handshakeTimeoutMs: TIMEOUT_MS,
    });
    const ac = new AbortController();
    const pending = dial(new URL("http://x.phase.invalid/"), ac.signal);
    // Connected, the handshake waits on the stalled proxy.
    await new Promise((r) => setTimeout(r, 20));
    ac.abort(new Error("caller gave up"));
    // The abort closed the connection; block past the handshake deadline so
    // its timer is due in the same turn as the failed read (a loaded machine).
    const until = performance.now() + 3 * TIMEOUT_MS;
    while (performance.now() < until) { /* busy */ }
    await assertRejects(() => pending, Error, "caller gave up");
    // A stray close of the closed connection would surface here, after the dial settled.
    await new Promise((r) => setTimeout(r, 2 * TIMEOUT_MS));
  } finally {
    await socks.close();
  }
});

Deno.test("socks: refusals and non-SOCKS answers are reported with their reason", async () => {
  for (
    const [mode, text] of [
      ["refuse", "connection refused by the destination"],
      ["not-socks", "does not speak SOCKS5"],
    ] as const
  ) {
    const socks = startTestSocks({ mode });
    try {
      const dial = socksDialer({ proxy: { hostname: "127.0.0.1", port: socks.port } });
      const e = await assertRejects(dial(new URL("http://x.phase.invalid/")), NetError);
      assert(e.message.includes(text), `${mode}: ${e.message}`);
    } finally {
      await socks.close();
    }
  }
  // A name the proxy cannot resolve: reply 4.
  const socks = startTestSocks({ names: {} });
  try {
    const dial = socksDialer({ proxy: { hostname: "127.0.0.1", port: socks.port } });
    const e = await assertRejects(dial(new URL("http://nowhere.phase.invalid:81/")), NetError);
    assert(e.message.includes("nowhere.phase.invalid:81: host unreachable"), e.message);
  } finally {
    await socks.close();
  }
});

Deno.test("socks: CONNECT requests encode names, IPv4 and IPv6 as RFC 1928 says", () => {
  assertEquals([...connectRequest("10.1.2.3", 8080)], [5, 1, 0, 1, 10, 1, 2, 3, 0x1f, 0x90]);
  assertEquals(
    [...connectRequest("ab.c", 80)],
    [5, 1, 0, 3, 4, 0x61, 0x62, 0x2e, 0x63, 0, 80],
  );
  assertEquals(
    [...connectRequest("fe80::1", 443)],
    [5, 1, 0, 4, 0xfe, 0x80, ...new Array(13).fill(0), 1, 1, 0xbb],
  );
  assertEquals(parseSocksAddress("127.0.0.1:9050"), { hostname: "127.0.0.1", port: 9050 });
  assertEquals(parseSocksAddress("[::1]:9050"), { hostname: "::1", port: 9050 });
  for (const bad of ["127.0.0.1", "127.0.0.1:0", "host:99999", ":9050", "a b:1"]) {
    let threw = false;
    try {
      parseSocksAddress(bad);
    } catch (err) {
      threw = err instanceof NetError && err.code === "E_POLICY";
    }
    assert(threw, `accepted '${bad}'`);
  }
  let tooLong = false;
  try {
    connectRequest("a".repeat(256), 80);
  } catch (err) {
    tooLong = err instanceof NetError;
  }
  assert(tooLong, "a 256-byte name was encoded");
});
