/**
 * The fetcher against the real provider (provider/mod.ts startProvider)
 * on loopback: plain fetch, parallel ranges from two providers, and the
 * IPFS path (`/ipfs/<cid>?format=raw`) by manifest CID.
 */
import { memoryLogger } from "../core/mod.ts";
import { startProvider } from "../provider/mod.ts";
import { assert, assertEquals, tempDir, writeRelease } from "../testing/mod.ts";
import { parseTrust, rawCid } from "../verify/mod.ts";
import { auditCache, cacheLayout } from "./cache.ts";
import { fetchRelease } from "./fetch.ts";

Deno.test({
  name:
    "fetch against the real provider: direct, parallel from two providers, and by CID over /ipfs/",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const dir = await tempDir();
    const logger = memoryLogger();
    const files = await writeRelease(`${dir}/root`, "stable", "amd64", {
      kernel: 3_000_000,
      initramfs: 500_000,
    });
    const a = await startProvider({
      root: `${dir}/root`,
      state: `${dir}/sa`,
      port: 0,
      mdns: false,
      dht: false,
      logger,
    });
    const b = await startProvider({
      root: `${dir}/root`,
      state: `${dir}/sb`,
      port: 0,
      mdns: false,
      dht: false,
      keyPath: `${dir}/sa/provider.pem`,
      trustPath: `${dir}/sa/trust.json`,
      logger,
    });
    try {
      const trust = parseTrust(await Deno.readFile(a.trustPath));
      const one = await fetchRelease({
        manifestUrl: `${a.url}/stable/amd64/manifest.json`,
        trust,
        cacheDir: `${dir}/c1`,
      });
      assertEquals(await Deno.readFile(one.artifacts.kernel.path), files.kernel);
      const two = await fetchRelease({
        manifestUrl: `${a.url}/stable/amd64/manifest.json`,
        mirrors: [`${b.url}/stable/amd64/manifest.json`],
        trust,
        cacheDir: `${dir}/c2`,
        segmentBytes: 256 * 1024,
        parallelMinBytes: 1024 * 1024,
      });
      assertEquals(await Deno.readFile(two.artifacts.kernel.path), files.kernel);
      assertEquals([...two.artifacts.kernel.sources].sort(), [a.url, b.url].sort());
      // By CID only, through the provider acting as a trustless gateway.
      const manifestBytes = new Uint8Array(
        await (await fetch(`${a.url}/stable/amd64/manifest.json`)).arrayBuffer(),
      );
      const three = await fetchRelease({
        manifestCid: rawCid(manifestBytes),
        gateways: [a.url],
        trust,
        cacheDir: `${dir}/c3`,
      });
      assert(three.manifestSource.includes("/ipfs/"));
      assertEquals(await Deno.readFile(three.artifacts.initramfs.path), files.initramfs);
      for (const c of ["c1", "c2", "c3"]) {
        assertEquals(await auditCache(cacheLayout(`${dir}/${c}`)), []);
      }
    } finally {
      await a.close();
      await b.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
