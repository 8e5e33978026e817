import { memoryLogger } from "../core/mod.ts";
import { rawCid } from "../verify/mod.ts";
import { assert, assertEquals, tempDir, writeRelease } from "../testing/mod.ts";
import { runProviderCli } from "./cli.ts";
import { createHandler, newMetrics } from "./http.ts";
import { startProvider } from "./server.ts";

const BASE32 = "abcdefghijklmnopqrstuvwxyz234567";

async function withRefusal() {
  const dir = await tempDir("exposure");
  const files = await writeRelease(`${dir}/root`, "stable", "amd64", { kernel: 4096 });
  // A release directory the catalog refuses: its manifest is not JSON.
  await Deno.mkdir(`${dir}/root/testing/arm64`, { recursive: true });
  await Deno.writeTextFile(`${dir}/root/testing/arm64/manifest.json`, "{not json");
  const logger = memoryLogger();
  const p = await startProvider({
    root: `${dir}/root`,
    state: `${dir}/state`,
    port: 0,
    logger,
    watch: false,
    name: "prov",
  });
  return {
    dir,
    files,
    logger,
    p,
    [Symbol.asyncDispose]: async () => {
      await p.close();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

Deno.test("TM-20 information disclosure: a remote client sees refused releases as relative names and codes, no counters, and no /status; loopback sees counters", async () => {
  await using s = await withRefusal();
  assertEquals(s.p.catalog().refused.length, 1);
  const handler = createHandler({
    name: "prov",
    catalog: () => s.p.catalog(),
    metrics: newMetrics(),
    logger: memoryLogger(),
    startedAt: new Date(),
  });
  const remote = { remoteAddr: { hostname: "192.0.2.7", port: 4000 } };
  const info = await (await handler(new Request("http://x/"), remote)).json();
  assertEquals(info.refused, [{ dir: "testing/arm64", code: info.refused[0].code }]);
  assert(/^E_[A-Z_]+$/.test(info.refused[0].code), info.refused[0].code);
  assertEquals(info.metrics, null);
  assertEquals(info.advert, null);
  const page = await (await handler(
    new Request("http://x/", { headers: { accept: "text/html" } }),
    remote,
  )).text();
  assert(!page.includes(s.dir), "absolute root path on the page");
  assert(!page.includes('id="counters"'), "counters on the page for a remote client");
  assert(page.includes("testing/arm64"));
  const st = await handler(new Request("http://x/status"), remote);
  assertEquals(st.status, 403);
  await st.body?.cancel();
  // The details stay in the log.
  assert(
    s.logger.entries.some((l) =>
      l.event === "release_refused" && String(l.fields.dir).startsWith("/")
    ),
  );
  // Loopback (the operator) still gets the counters.
  const local = { remoteAddr: { hostname: "127.0.0.1", port: 4000 } };
  const ok = await handler(new Request("http://x/status"), local);
  assertEquals(ok.status, 200);
  assertEquals(typeof (await ok.json()).requests, "number");
  const open = createHandler({
    name: "prov",
    catalog: () => s.p.catalog(),
    metrics: newMetrics(),
    logger: memoryLogger(),
    startedAt: new Date(),
    unsafePublicStatus: true,
  });
  const pub = await open(new Request("http://x/status"), remote);
  assertEquals(pub.status, 200);
  await pub.body?.cancel();
});

Deno.test("TM-10 path traversal (CID spelling): /ipfs/ serves only the canonical spelling of a CID", async () => {
  await using s = await withRefusal();
  const cid = rawCid(s.files.kernel);
  const ok = await fetch(`${s.p.url}/ipfs/${cid}`);
  assertEquals(ok.status, 200);
  await ok.body?.cancel();
  // 36 bytes in 58 base32 characters leave 2 padding bits: three other
  // spellings decode to the same digest.
  const last = BASE32.indexOf(cid.at(-1)!);
  for (let pad = 1; pad < 4; pad++) {
    const other = cid.slice(0, -1) + BASE32[(last & ~3) | ((last + pad) & 3)];
    assert(other !== cid);
    const res = await fetch(`${s.p.url}/ipfs/${other}`);
    assertEquals(res.status, 404, other);
    await res.body?.cancel();
  }
});

Deno.test("TM-07 rogue provider: 'provider status' and 'provider list' escape control characters from the network", async () => {
  const evil = "\x1b]0;owned\x07\x1b[2J\r\nforged line\x9b31m\u202e";
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (req) => {
    const path = new URL(req.url).pathname;
    if (path === "/status") {
      return Response.json({
        requests: 1,
        releases: 1,
        advert: { mdns: { state: evil }, dht: { state: evil, peers: 0 } },
      });
    }
    return Response.json({
      name: evil,
      version: evil,
      uptime_s: 1,
      channels: [{
        channel: evil,
        arch: evil,
        version: evil,
        expires_at: evil,
        origin: evil,
        artifacts: [{ name: evil, size: 1, digest: evil }],
      }],
    });
  });
  try {
    const url = `http://127.0.0.1:${server.addr.port}`;
    for (
      const args of [["status", url], ["list", url], ["status", url, "--json"], [
        "list",
        url,
        "--json",
      ]]
    ) {
      let out = "";
      assertEquals(await runProviderCli(args, (t) => out += t), 0);
      // deno-lint-ignore no-control-regex
      const bad = /[\x00-\x09\x0b-\x1f\x7f-\x9f\u202e]/.exec(out);
      assertEquals(bad, null, `${args.join(" ")}: raw control character in ${JSON.stringify(out)}`);
      // Only the table's own line ends: the hostile CR/LF did not start a line.
      assert(!/\nforged line/.test(out), args.join(" "));
      assert(out.includes("owned"), "the text itself is still shown");
    }
  } finally {
    await server.shutdown();
  }
});
