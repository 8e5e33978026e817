import { memoryLogger } from "../core/mod.ts";
import {
  bestTrusted,
  createPhaseNode,
  findProviders,
  loadPeerKey,
  lookupRecords,
} from "../p2p/mod.ts";
import { parseTrust, rawCid } from "../verify/mod.ts";
import {
  assert,
  assertEquals,
  releaseKey,
  type SpawnedServe,
  spawnServe,
  stopServe,
  tempDir,
  waitFor,
  writeRelease,
} from "../testing/mod.ts";
import { dhtAdvertiser } from "./advertise.ts";
import { type RunningProvider, startProvider } from "./server.ts";

/** Longest the providers' DHT may take to publish, in ms. */
const PUBLISH_WAIT_MS = 15_000;
/** A short republish interval so the test sees records placed after the DHT formed, in ms. */
const REPUBLISH_MS = 1000;

Deno.test({
  name:
    "serve + DHT: five providers bootstrap into one DHT, publish their signed records and provider records; a client node finds them",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const dir = await tempDir("dht");
    const providers: RunningProvider[] = [];
    const logs = [] as ReturnType<typeof memoryLogger>[];
    try {
      await writeRelease(`${dir}/root`);
      const { trustPath } = await releaseKey(`${dir}/keys`);
      const trust = parseTrust(await Deno.readFile(trustPath));
      for (let i = 0; i < 5; i++) {
        const logger = memoryLogger();
        logs.push(logger);
        const boot = providers.length
          ? providers[0].advertisers[0].state() as { addresses?: readonly string[] }
          : undefined;
        providers.push(
          await startProvider({
            root: `${dir}/root`,
            state: `${dir}/state${i}`,
            port: 0,
            keyPath: `${dir}/keys/release.pem`,
            trustPath,
            logger,
            watch: false,
            dht: dhtAdvertiser({ bootstrap: boot?.addresses ?? [], republishMs: REPUBLISH_MS }),
          }),
        );
      }
      await waitFor(
        () => logs.every((l) => l.entries.some((e) => e.event === "dht_published")),
        PUBLISH_WAIT_MS,
        "every provider published",
      );
      const first = providers[0].advertisers[0].state() as { addresses: readonly string[] };
      const client = await createPhaseNode({ clientMode: true, bootstrap: first.addresses });
      try {
        const found = await lookupRecords(client, "stable", "amd64", { timeoutMs: 5000 });
        const best = bestTrusted(found, trust);
        assert(best, `no trusted record among ${found.length}`);
        const cids = providers.map((p) =>
          rawCid(p.catalog().releases.get("stable/amd64")!.manifestBytes)
        );
        assert(cids.includes(best.value.manifestCid));
        assertEquals(best.value.mirrors.length, 1);
        let provs: { id: string }[] = [];
        await waitFor(
          async () => {
            provs = await findProviders(client, "stable", "amd64", { timeoutMs: 2000 });
            return provs.length >= 3;
          },
          PUBLISH_WAIT_MS,
          "at least three providers in the DHT",
        );
        const ids = providers.map((p) => (p.advertisers[0].state() as { peerId: string }).peerId);
        assert(provs.every((p) => ids.includes(p.id)));
      } finally {
        await client.stop();
      }
    } finally {
      for (const p of providers) await p.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "serve + DHT end to end: 'deno task serve --bootstrap' joins another provider's DHT; a client node reads the record",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const dir = await tempDir("dht");
    const spawned: SpawnedServe[] = [];
    let client: Awaited<ReturnType<typeof createPhaseNode>> | undefined;
    try {
      await writeRelease(`${dir}/root`);
      const { trustPath } = await releaseKey(`${dir}/keys`);
      const common = [
        "--port",
        "0",
        "--root",
        `${dir}/root`,
        "--key",
        `${dir}/keys/release.pem`,
        "--trust",
        trustPath,
        "--no-mdns",
      ];
      spawned.push(await spawnServe([...common, "--state", `${dir}/s0`]));
      const first = (await (await fetch(`${spawned[0].url}/status`)).json()).advert.dht;
      assertEquals(first.state, "running");
      spawned.push(
        await spawnServe([...common, "--state", `${dir}/s1`, "--bootstrap", first.addresses[0]]),
      );
      await waitFor(
        async () => (await (await fetch(`${spawned[1].url}/status`)).json()).advert.dht.peers >= 1,
        10_000,
        "peers",
      );
      const second = (await (await fetch(`${spawned[1].url}/status`)).json()).advert.dht;
      client = await createPhaseNode({ clientMode: true, bootstrap: second.addresses });
      const trust = parseTrust(await Deno.readFile(trustPath));
      let best: ReturnType<typeof bestTrusted>;
      await waitFor(
        async () => {
          best = bestTrusted(
            await lookupRecords(client!, "stable", "amd64", { timeoutMs: 2000 }),
            trust,
          );
          return best !== undefined;
        },
        15_000,
        "a trusted record",
      );
      const manifests = await Promise.all(
        spawned.map(async (s) =>
          rawCid(
            new Uint8Array(
              await (await fetch(`${s.url}/stable/amd64/manifest.json`)).arrayBuffer(),
            ),
          )
        ),
      );
      assert(manifests.includes(best!.value.manifestCid));
    } finally {
      await client?.stop();
      for (const s of spawned) {
        const { status, err } = await stopServe(s.child);
        assertEquals(status.code, 0, err);
      }
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "serve + DHT: a provider whose bootstrap peer comes up late publishes again until its record and provider record reach it; with the provider gone, a client asking that peer finds both",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const dir = await tempDir("dht-late");
    const logger = memoryLogger();
    let provider: RunningProvider | undefined;
    let boot: Awaited<ReturnType<typeof createPhaseNode>> | undefined;
    let client: Awaited<ReturnType<typeof createPhaseNode>> | undefined;
    try {
      await writeRelease(`${dir}/root`);
      const { trustPath } = await releaseKey(`${dir}/keys`);
      const trust = parseTrust(await Deno.readFile(trustPath));
      // The bootstrap peer's address (stable peer id, fixed port), then it goes down.
      const bootKey = `${dir}/boot.key`;
      boot = await createPhaseNode({ privateKey: await loadPeerKey(bootKey) });
      const addr = boot.getMultiaddrs().map(String)[0];
      await boot.stop();
      boot = undefined;
      provider = await startProvider({
        root: `${dir}/root`,
        state: `${dir}/state`,
        port: 0,
        keyPath: `${dir}/keys/release.pem`,
        trustPath,
        logger,
        watch: false,
        dht: dhtAdvertiser({
          bootstrap: [addr],
          firstPublishWaitMs: 200,
          publishRetryFirstMs: 500,
        }),
      });
      const events = (name: string) => logger.entries.filter((e) => e.event === name);
      await waitFor(() => events("dht_publish_retry").length > 0, PUBLISH_WAIT_MS, "a retry");
      assertEquals(events("dht_published")[0]?.fields.accepted, 0, "the first reached no one");
      // The bootstrap peer comes up (same key, same port).
      const port = addr.split("/")[4];
      boot = await createPhaseNode({
        privateKey: await loadPeerKey(bootKey),
        listen: [`/ip4/127.0.0.1/tcp/${port}`],
      });
      await waitFor(
        () =>
          events("dht_published").some((e) =>
            Number(e.fields.accepted) > 0 && Number(e.fields.provided) > 0
          ),
        PUBLISH_WAIT_MS * 2,
        "a publication that reached the bootstrap peer",
      );
      const cid = provider.catalog().releases.get("stable/amd64")!.manifestCid;
      await provider.close();
      provider = undefined;
      // Only the bootstrap peer is left: what it answers, it stored.
      client = await createPhaseNode({ clientMode: true, bootstrap: [addr] });
      const best = bestTrusted(
        await lookupRecords(client, "stable", "amd64", { timeoutMs: 5000 }),
        trust,
      );
      assert(best, "the signed record is on the bootstrap peer");
      assertEquals(best.value.manifestCid, cid);
      await waitFor(
        async () =>
          (await findProviders(client!, "stable", "amd64", { timeoutMs: 2000 })).length > 0,
        PUBLISH_WAIT_MS,
        "the provider record is on the bootstrap peer",
      );
    } finally {
      await provider?.close();
      await client?.stop();
      await boot?.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
