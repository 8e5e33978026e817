import { memoryLogger } from "../core/mod.ts";
import { loadSigningKey } from "../sign/mod.ts";
import { encodeBase64, rawCid, signEd25519, signedBytes, VerifyError } from "../verify/mod.ts";
import {
  type Candidate,
  dhtCandidates,
  discover,
  discoverProviders,
  type MdnsAnswer,
  mdnsCandidates,
  probeHealth,
  spread,
  stepOrder,
} from "./discover.ts";
import { fetchFromCandidates } from "./fetch.ts";
import { applyCmdline, DEFAULT_POLICY, parsePolicy } from "./policy.ts";
import { assert, assertEquals, makeRelease, serveRelease } from "../testing/mod.ts";

function serve(handler: (req: Request) => Response | Promise<Response>) {
  const ac = new AbortController();
  const s = Deno.serve(
    { hostname: "127.0.0.1", port: 0, signal: ac.signal, onListen() {} },
    handler,
  );
  return {
    origin: `http://127.0.0.1:${s.addr.port}`,
    async close() {
      ac.abort();
      await s.finished;
    },
  };
}

const provider = () =>
  serve((req) =>
    new URL(req.url).pathname === "/health"
      ? Response.json({ status: "serving" })
      : new Response("nope", { status: 404 })
  );
const redirectPortal = () =>
  serve(() =>
    new Response(null, { status: 302, headers: { location: "http://10.255.255.1/login?orig=x" } })
  );
const htmlPortal = () =>
  serve(() =>
    new Response("<!DOCTYPE html><html><body><form>Accept the terms</form></body></html>", {
      headers: { "content-type": "text/html" },
    })
  );

Deno.test("TM-15 captive portal and redirects: a /health answered by a redirect or an HTML login page is reported, never used", async () => {
  const good = provider();
  const redir = redirectPortal();
  const html = htmlPortal();
  const logger = memoryLogger();
  try {
    assertEquals(await probeHealth(`${good.origin}/stable/amd64/manifest.json`), { ok: true });
    const r1 = await probeHealth(`${redir.origin}/m.json`);
    assertEquals(r1.ok === false && r1.captivePortal, true);
    const r2 = await probeHealth(`${html.origin}/m.json`);
    assertEquals(r2.ok === false && r2.captivePortal, true);
    // Through discovery: the command-line manual URL is a portal, the policy
    // order then finds nothing else: the portal is reported with a hint and not a candidate.
    const policy =
      applyCmdline(DEFAULT_POLICY, `phase.provider=${redir.origin}/stable/amd64/manifest.json`)
        .policy;
    const res = await discover({
      policy,
      trust: (await makeTrust()).trust,
      arch: "amd64",
      mdns: () =>
        Promise.resolve([
          {
            instance: "a",
            host: "a.local",
            port: 1,
            addresses: ["127.0.0.1"],
            from: "127.0.0.1",
            txt: {
              mirror: `${html.origin}/stable/amd64/manifest.json`,
              channel: "stable",
              arch: "amd64",
            },
          },
          {
            instance: "b",
            host: "b.local",
            port: 1,
            addresses: ["127.0.0.1"],
            from: "127.0.0.1",
            txt: {
              mirror: `${good.origin}/stable/amd64/manifest.json`,
              channel: "stable",
              arch: "amd64",
            },
          },
        ]),
      logger,
    });
    assertEquals(res.candidates.map((c) => c.manifestUrl), [
      `${good.origin}/stable/amd64/manifest.json`,
    ]);
    assertEquals(res.rejected.map((r) => [r.source, r.captivePortal]), [["cmdline", true], [
      "mdns",
      true,
    ]]);
    assert(res.rejected.every((r) => r.hint?.includes("manual URL")));
    assert(logger.entries.some((e) => e.event === "captive_portal" && e.fields.threat === "TM-15"));
    assertEquals(res.steps.map((s) => s.step), ["manual", "lan", "wan"]);
  } finally {
    await good.close();
    await redir.close();
    await html.close();
  }
});

Deno.test("discover: a command-line URL that answers as a provider ends discovery: no LAN window, no DHT lookup (issue 17)", async () => {
  const good = provider();
  const logger = memoryLogger();
  const asked: string[] = [];
  try {
    const url = `${good.origin}/stable/amd64/manifest.json`;
    const res = await discover({
      policy: applyCmdline(DEFAULT_POLICY, `phase.provider=${url}`).policy,
      trust: (await makeTrust()).trust,
      arch: "amd64",
      mdns: (ms) => {
        asked.push(`mdns ${ms}`);
        return Promise.resolve([]);
      },
      dht: () => {
        asked.push("dht");
        return Promise.resolve([]);
      },
      logger,
    });
    assertEquals(asked, []);
    assertEquals(res.steps.map((s) => s.step), ["manual"]);
    assertEquals(res.candidates.map((c) => [c.manifestUrl, c.source]), [[url, "cmdline"]]);
    assert(logger.entries.some((e) => e.event === "discover_cmdline_first"));
    // The same URL from the policy file (not the command line) keeps the full order.
    await discover({
      policy: parsePolicy(`provider = "${url}"\n`),
      trust: (await makeTrust()).trust,
      arch: "amd64",
      mdns: (ms) => {
        asked.push(`mdns ${ms}`);
        return Promise.resolve([]);
      },
      mdnsTimeoutMs: 10,
    });
    assertEquals(asked, ["mdns 10"]);
  } finally {
    await good.close();
  }
});

Deno.test("discover: step order is LAN, WAN, manual; a command-line URL goes first; local mode asks only the LAN (and a command-line URL)", () => {
  assertEquals(stepOrder(DEFAULT_POLICY), ["lan", "wan", "manual"]);
  assertEquals(stepOrder(parsePolicy(`provider = "http://a/m.json"\n`)), ["lan", "wan", "manual"]);
  assertEquals(stepOrder(applyCmdline(DEFAULT_POLICY, "phase.provider=http://a/m.json").policy), [
    "manual",
    "lan",
    "wan",
  ]);
  assertEquals(stepOrder(parsePolicy(`mode = "local"\n`)), ["lan"]);
  assertEquals(
    stepOrder(
      applyCmdline(parsePolicy(`mode = "local"\n`), "phase.provider=http://a/m.json").policy,
    ),
    ["manual", "lan"],
  );
});

Deno.test("discover: a step that hangs is bounded by its timeout and reported", async () => {
  const t0 = performance.now();
  const res = await discover({
    policy: DEFAULT_POLICY,
    trust: (await makeTrust()).trust,
    arch: "amd64",
    mdns: () => new Promise(() => {}),
    dht: () => new Promise(() => {}),
    mdnsTimeoutMs: 100,
    dhtTimeoutMs: 100,
  });
  assert(performance.now() - t0 < 10_000, "bounded (an unbounded step would never return)");
  assertEquals(res.candidates, []);
  assert(res.steps[0].error?.includes("mDNS step took more than"));
  assert(res.steps[1].error?.includes("DHT step took more than"));
});

async function makeTrust() {
  const rel = await makeRelease({ sizes: { kernel: 10, initramfs: 10 } });
  await Deno.remove(rel.dir, { recursive: true }).catch(() => {});
  return rel;
}

/** Signs a discovery record with a key file's key. */
async function record(
  keyPath: string,
  fields: { version: string; mirror: string; expires?: string; cid?: string },
) {
  const key = await loadSigningKey(keyPath);
  const doc = {
    manifest_cid: fields.cid ?? rawCid(new TextEncoder().encode(fields.version + fields.mirror)),
    version: fields.version,
    expires_at: fields.expires ??
      new Date(Date.now() + 86_400_000).toISOString().replace(/\.\d+Z$/, "Z"),
    mirrors: [fields.mirror],
    providers: [],
  };
  const sig = encodeBase64(signEd25519(key.key, signedBytes(doc)));
  return new TextEncoder().encode(
    JSON.stringify({
      ...doc,
      signatures: [{ keyid: key.keyid, public: encodeBase64(key.publicRaw), sig }],
    }),
  );
}

Deno.test("TM-08 DHT poisoning (client side): only records signed by the trust file are kept, highest version first; a forged higher version does not hide the genuine one", async () => {
  const rel = await makeRelease({ sizes: { kernel: 10, initramfs: 10 } });
  const rogue = await makeRelease({ sizes: { kernel: 10, initramfs: 10 } });
  try {
    const v1 = await record(rel.keyPath, {
      version: "2026.11.01",
      mirror: "http://a/1/manifest.json",
    });
    const v2 = await record(rel.keyPath, {
      version: "2026.11.20",
      mirror: "http://a/2/manifest.json",
    });
    const forged = await record(rogue.keyPath, {
      version: "2099.1.1",
      mirror: "http://evil/manifest.json",
    });
    const expired = await record(rel.keyPath, {
      version: "2026.12.1",
      mirror: "http://a/old/manifest.json",
      expires: "2026-01-01T00:00:00Z",
    });
    const tampered = new TextDecoder().decode(v2).replace("2026.11.20", "2026.11.30");
    const logger = memoryLogger();
    const got = dhtCandidates(
      [
        forged,
        v1,
        expired,
        new TextEncoder().encode(tampered),
        new TextEncoder().encode("garbage"),
        v2,
      ],
      rel.trust,
      new Date(),
      "/phase/stable/amd64/manifest",
      logger,
    );
    assertEquals(got.map((c) => [c.version, c.manifestUrl, c.source]), [
      ["2026.11.20", "http://a/2/manifest.json", "dht"],
      ["2026.11.01", "http://a/1/manifest.json", "dht"],
    ]);
    assertEquals(logger.entries.filter((e) => e.event === "dht_record_rejected").length, 4);
    // Through discover() with an injected lookup: same outcome, after the LAN step.
    const res = await discover({
      policy: DEFAULT_POLICY,
      trust: rel.trust,
      arch: "amd64",
      mdns: () => Promise.resolve([]),
      dht: (key) => Promise.resolve(key === "/phase/stable/amd64/manifest" ? [forged, v1, v2] : []),
      probe: false,
    });
    assertEquals(res.candidates.map((c) => c.version), ["2026.11.20", "2026.11.01"]);
  } finally {
    await Deno.remove(rel.dir, { recursive: true });
    await Deno.remove(rogue.dir, { recursive: true });
  }
});

Deno.test("TM-07 mDNS poisoning (client side): answers are hints; a rogue answer claiming a higher version costs one bounded attempt and the genuine release is fetched", async () => {
  const rel = await makeRelease();
  const rogueRel = await makeRelease({ version: "2099.1.1" });
  const genuine = serveRelease(rel);
  const rogue = serveRelease(rogueRel);
  const logger = memoryLogger();
  try {
    const answers: MdnsAnswer[] = [
      {
        instance: "rogue",
        host: "r.local",
        port: 1,
        addresses: ["127.0.0.1"],
        from: "127.0.0.1",
        txt: { mirror: rogue.url, version: "2099.1.1", channel: "stable", arch: "amd64" },
      },
      {
        instance: "wrongarch",
        host: "w.local",
        port: 1,
        addresses: ["127.0.0.1"],
        from: "127.0.0.1",
        txt: { mirror: "http://127.0.0.1:9/x", channel: "stable", arch: "arm64" },
      },
      {
        instance: "genuine",
        host: "g.local",
        port: 1,
        addresses: ["127.0.0.1"],
        from: "127.0.0.1",
        txt: { mirror: genuine.url, version: "2026.11.20", channel: "stable", arch: "amd64" },
      },
      {
        instance: "elsewhere",
        host: "e.local",
        port: 1,
        addresses: ["10.9.9.9"],
        from: "10.9.9.9",
        txt: { mirror: "http://127.0.0.1:9/m.json", version: "3000.1" },
      },
    ];
    const cands: Candidate[] = mdnsCandidates(answers, "stable", "amd64");
    // Wrong arch dropped; an answer naming a host other than its sender ranks last.
    assertEquals(cands.map((c) => c.name), ["rogue", "genuine", "elsewhere"]);
    const r = await fetchFromCandidates(cands, {
      trust: rel.trust,
      cacheDir: `${rel.dir}/cache`,
      logger,
    });
    assertEquals(r.candidate.manifestUrl, genuine.url);
    assertEquals(r.verified.value.version, "2026.11.20");
    const failed = logger.entries.filter((e) => e.event === "candidate_failed");
    assertEquals(failed.map((e) => e.fields.code), ["E_SIGNATURE"]);
    // Nothing from the rogue reached the cache: it only served its manifest.
    assertEquals(rogue.requests.map((q) => q.path), ["/stable/amd64/manifest.json"]);
    // With only rogue candidates, the verification error is what the caller sees.
    try {
      await fetchFromCandidates([cands[0]], { trust: rel.trust, cacheDir: `${rel.dir}/cache2` });
      throw new Error("expected a failure");
    } catch (err) {
      assert(err instanceof VerifyError && err.code === "E_SIGNATURE", String(err));
    }
  } finally {
    await genuine.close();
    await rogue.close();
    await Deno.remove(rel.dir, { recursive: true });
    await Deno.remove(rogueRel.dir, { recursive: true });
  }
});

Deno.test("TM-07 mDNS poisoning: re-serving peers that claim one manifest CID are spread as mirrors of each other (hints only)", () => {
  const answer = (host: string) => ({
    instance: `n-${host}`,
    host: `${host}.local`,
    port: 8080,
    addresses: [host],
    txt: {
      channel: "stable",
      arch: "amd64",
      version: "2026.11.20",
      manifest_cid: "bafkreiexample",
      mirror: `http://${host}:8080/stable/amd64/manifest.json`,
    },
    from: host,
  });
  const c = spread(mdnsCandidates([answer("10.0.0.2"), answer("10.0.0.3")], "stable", "amd64"));
  assertEquals(c.length, 2);
  assertEquals(c[0].mirrors, [c[1].manifestUrl]);
  assertEquals(c[1].mirrors, [c[0].manifestUrl]);
  // Another CID is another release: not merged.
  const other = {
    ...answer("10.0.0.4"),
    txt: { ...answer("10.0.0.4").txt, manifest_cid: "bafkreiother" },
  };
  const d = spread(mdnsCandidates([answer("10.0.0.2"), other], "stable", "amd64"));
  assertEquals(d.map((x) => x.mirrors.length), [0, 0]);
});

Deno.test("discover: re-discovery during a fetch returns the origins of the peers that claim the verified manifest CID, and no others", async () => {
  const answer = (host: string, cid: string): MdnsAnswer => ({
    instance: `n-${host}`,
    host: `${host}.local`,
    port: 8080,
    addresses: [host],
    txt: {
      channel: "stable",
      arch: "amd64",
      version: "2026.11.20",
      manifest_cid: cid,
      mirror: `http://${host}:8080/stable/amd64/manifest.json`,
    },
    from: host,
  });
  let asked = 0;
  const find = discoverProviders({
    policy: { ...DEFAULT_POLICY, channel: "stable" },
    trust: { version: 1, threshold: 1, keys: [] } as never,
    arch: "amd64",
    order: ["lan"],
    probe: false,
    mdns: () => {
      asked++;
      return Promise.resolve([
        answer("10.0.0.2", "bafkreiwanted"),
        answer("10.0.0.3", "bafkreiother"),
        answer("10.0.0.4", "bafkreiwanted"),
      ]);
    },
  });
  const got = await find("bafkreiwanted", new AbortController().signal);
  assertEquals(asked, 1);
  assertEquals([...got].sort(), ["http://10.0.0.2:8080", "http://10.0.0.4:8080"]);
  assertEquals(await find("bafkreinone", new AbortController().signal), []);
});
