/**
 * The self-hosting loop on loopback, with real parts: an origin provider,
 * a real libp2p DHT, two re-serving providers (`--from-cache`) that
 * announce themselves as providers of the manifest CID with their HTTP
 * URL, a client that finds them by DHT provider records only (the origin
 * is gone) and spreads its ranged requests over both; and `--mirror`
 * end to end (the real `serve` entrypoint under its permission set).
 */
import { startTestProvider, withDhtPeer } from "../testing/provider.ts";
import { memoryLogger } from "../core/mod.ts";
import { DEFAULT_POLICY, discover, fetchFromCandidates, fetchRelease } from "./mod.ts";
import { dhtLookup, dhtProviderLookup } from "./_dht.ts";
import {
  createPhaseNode,
  findManifestProviders,
  httpUrlOfMultiaddr,
  type PhaseNode,
} from "../p2p/mod.ts";
import {
  assert,
  assertEquals,
  releaseKey,
  signFixture,
  spawnServe,
  stopLeftovers,
  stopServe,
  tempDir,
  waitFor,
  writeRelease,
} from "../testing/mod.ts";
import { loadTrust, rawCid } from "../verify/mod.ts";
import { dhtAdvertiser, type RunningProvider, startProvider } from "../provider/mod.ts";

const opts = { sanitizeResources: false, sanitizeOps: false };

Deno.test("p2p: an /http multiaddr names an HTTP base URL; anything else names none", () => {
  assertEquals(httpUrlOfMultiaddr("/ip4/10.0.0.5/tcp/8080/http"), "http://10.0.0.5:8080");
  assertEquals(
    httpUrlOfMultiaddr("/ip4/10.0.0.5/tcp/8080/http/p2p/12D3KooWabc"),
    "http://10.0.0.5:8080",
  );
  assertEquals(httpUrlOfMultiaddr("/ip6/::1/tcp/80/http"), "http://[::1]:80");
  assertEquals(httpUrlOfMultiaddr("/ip4/10.0.0.5/tcp/4001"), undefined);
  assertEquals(httpUrlOfMultiaddr("/ip4/10.0.0.5/tcp/0/http"), undefined);
  assertEquals(httpUrlOfMultiaddr("/dns4/evil/tcp/80/http"), undefined);
});

Deno.test({
  name:
    "TM-07 mDNS poisoning: re-serving peers found by DHT provider records are hints; a client boots from two of them with the origin gone",
  ...opts,
  fn: async () => {
    const dir = await tempDir("selfhost");
    const { key, trustPath } = await releaseKey(`${dir}/keys`);
    const trust = await loadTrust(trustPath);
    const files = await writeRelease(`${dir}/root`, "stable", "amd64", {
      kernel: 3_000_000,
      initramfs: 200_000,
    });
    let boot: PhaseNode | undefined;
    const peers: RunningProvider[] = [];
    try {
      const origin = await startTestProvider({
        root: `${dir}/root`,
        state: `${dir}/origin`,
        trustPath,
      });
      // The signed record names the origin only: the re-serving nodes cannot add themselves.
      await signFixture(`${dir}/root`, key, {
        mirrors: [`${origin.url}/stable/amd64/manifest.json`],
      });
      await origin.rescan();
      boot = await createPhaseNode({ trust });
      const bootAddrs = boot.getMultiaddrs().map(String);
      // Machine A fetched from the origin; machine B from A. Both re-serve.
      await fetchRelease({
        manifestUrl: `${origin.url}/stable/amd64/manifest.json`,
        trust,
        cacheDir: `${dir}/cacheA`,
      });
      const reServe = (name: string) =>
        startProvider({
          root: `${dir}/${name}`,
          fromCache: `${dir}/${name}`,
          state: `${dir}/state-${name}`,
          port: 0,
          sign: false,
          trustPath,
          mdns: false,
          dht: dhtAdvertiser({ bootstrap: bootAddrs }),
          watch: false,
          logger: memoryLogger(),
        });
      peers.push(await reServe("cacheA"));
      await fetchRelease({
        manifestUrl: `${peers[0].url}/stable/amd64/manifest.json`,
        trust,
        cacheDir: `${dir}/cacheB`,
      });
      peers.push(await reServe("cacheB"));
      await origin.close();
      const manifestCid = rawCid(await Deno.readFile(`${dir}/root/stable/amd64/manifest.json`));
      // Both announced themselves as providers of the manifest CID, with their HTTP URL.
      const urls = peers.map((p) => p.url).sort();
      await waitFor(async () => {
        const found = await findManifestProviders(boot!, manifestCid, { timeoutMs: 2_000 });
        return found.map((f) => f.url).sort().join() === urls.join();
      }, 20_000);
      const logger = memoryLogger();
      const found = await discover({
        policy: { ...DEFAULT_POLICY, bootstrap: bootAddrs },
        trust,
        arch: "amd64",
        order: ["wan"],
        dht: dhtLookup(bootAddrs),
        dhtProviders: dhtProviderLookup(bootAddrs),
        probe: false,
        logger,
      });
      assertEquals(found.candidates.length, 1);
      const c = found.candidates[0];
      assertEquals(c.manifestCid, manifestCid);
      assertEquals([...c.providers].sort(), urls.map((u) => `${u}/`));
      const r = await fetchFromCandidates(
        [{ ...c, mirrors: [...c.mirrors], providers: [...c.providers] }],
        {
          trust,
          cacheDir: `${dir}/cacheC`,
          segmentBytes: 256 * 1024,
          parallelMinBytes: 1024 * 1024,
        },
      );
      assertEquals(await Deno.readFile(r.artifacts.kernel.path), files.kernel);
      // The origin is down: the manifest came from a peer by CID, the kernel from both peers.
      assert(r.manifestSource.includes(`/ipfs/${manifestCid}`), r.manifestSource);
      assertEquals([...r.artifacts.kernel.sources].sort(), urls);
    } finally {
      for (const p of peers) await p.close();
      await boot?.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "serve --mirror: a pull-through cache fetches from the upstream through the verified fetcher and re-serves, then follows a new release",
  ...opts,
  fn: async () => {
    const dir = await tempDir("mirror");
    const { key, trustPath } = await releaseKey(`${dir}/keys`);
    const files = await writeRelease(`${dir}/root`, "stable", "amd64");
    await signFixture(`${dir}/root`, key, { version: "2026.11.20" });
    const upstream = await startTestProvider({
      root: `${dir}/root`,
      state: `${dir}/up`,
      trustPath,
    });
    try {
      const mirror = await spawnServe([
        "--mirror",
        upstream.url,
        "--from-cache",
        `${dir}/cache`,
        "--mirror-interval",
        "1s",
        "--trust",
        trustPath,
        "--state",
        `${dir}/mstate`,
        "--port",
        "0",
        "--no-mdns",
        "--no-dht",
      ]);
      assert(mirror.out.includes(`mirror of ${upstream.url}`), mirror.out);
      const manifestAt = async () => {
        const res = await fetch(`${mirror.url}/stable/amd64/manifest.json`);
        return res.ok
          ? new Uint8Array(await res.arrayBuffer())
          : (await res.body?.cancel(), undefined);
      };
      await waitFor(async () => (await manifestAt()) !== undefined, 15_000);
      assertEquals(
        await manifestAt(),
        await Deno.readFile(`${dir}/root/stable/amd64/manifest.json`),
      );
      const trust = await loadTrust(trustPath);
      const got = await fetchRelease({
        manifestUrl: `${mirror.url}/stable/amd64/manifest.json`,
        trust,
        cacheDir: `${dir}/client`,
      });
      assertEquals(await Deno.readFile(got.artifacts.kernel.path), files.kernel);
      // A new release upstream is mirrored at the next refresh.
      await signFixture(`${dir}/root`, key, { version: "2026.11.21" });
      await upstream.rescan();
      const newer = await Deno.readFile(`${dir}/root/stable/amd64/manifest.json`);
      await waitFor(async () => {
        const m = await manifestAt();
        return m !== undefined && m.length === newer.length && m.every((b, i) => b === newer[i]);
      }, 15_000);
      const { err } = await stopServe(mirror.child);
      assert(err.includes("mirror_fetched"), err);
    } finally {
      await upstream.close();
      await stopLeftovers();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

/**
 * The origin-gone loop of `[vm self-host-dht]` on loopback: an origin
 * provider, a DHT bootstrap node, machine A re-serving its cache and
 * providing the manifest CID; the origin stops. `mirrors` is what the
 * signed record names: the origin, or nothing (as `deno task images`
 * signs it).
 */
async function dhtStandIn(mirrors: "origin" | "none") {
  await withDhtPeer("selfhost-dht", { mirrors, kernelBytes: 600_000 }, async (lab) => {
    const { trust, bootAddrs, peer, manifestCid, originManifest } = lab;
    await lab.origin.close();
    const logger = memoryLogger();
    const found = await discover({
      policy: { ...DEFAULT_POLICY, bootstrap: bootAddrs },
      trust,
      arch: "amd64",
      order: ["wan"],
      dht: dhtLookup(bootAddrs),
      dhtProviders: dhtProviderLookup(bootAddrs),
      logger,
    });
    // A, found by its provider record and probed like an mDNS hint, is the one candidate.
    assertEquals(found.candidates.map((c) => [c.manifestUrl, c.source, c.manifestCid]), [
      [`${peer.url}/stable/amd64/manifest.json`, "dht", manifestCid],
    ]);
    if (mirrors === "origin") {
      assertEquals(found.rejected.map((r) => r.url), [originManifest]);
    }
    // Still a hint: fetch verifies the manifest under the trust file and each digest.
    const r = await fetchFromCandidates(found.candidates, {
      trust,
      cacheDir: `${lab.dir}/cacheB`,
    });
    assertEquals(await Deno.readFile(r.artifacts.kernel.path), lab.files.kernel);
    assertEquals(r.manifestSource, `${peer.url}/stable/amd64/manifest.json`);
  });
}

Deno.test({
  name:
    "TM-08 DHT poisoning: a trusted record whose mirror is gone: the peers providing its manifest CID stand in, probed, and fetch verifies what they serve",
  ...opts,
  fn: () => dhtStandIn("origin"),
});

Deno.test({
  name:
    "TM-08 DHT poisoning: a trusted record that names no mirror: the peers providing its manifest CID are its candidates, and fetch verifies what they serve",
  ...opts,
  fn: () => dhtStandIn("none"),
});
