/**
 * Re-discovery during a long download (issue 12 §4), with real providers
 * on loopback: a slow origin behind the bench's throttling proxy, and a
 * peer that appears while the client downloads. The client moves the
 * segments not yet fetched to the peer; a peer that lies is dropped for
 * the rest of the run and its bytes are fetched again elsewhere.
 */
import { startTestProvider } from "../testing/provider.ts";
import { memoryLogger } from "../core/mod.ts";
import { fetchRelease } from "./mod.ts";
import { cacheLayout } from "./cache.ts";
import { auditCache } from "./cache.ts";
import type { RunningProvider } from "../provider/mod.ts";
import {
  assert,
  assertEquals,
  releaseKey,
  signFixture,
  tempDir,
  writeRelease,
} from "../testing/mod.ts";
import { loadTrust, type Trust } from "../verify/mod.ts";
import { throttlingProxy } from "../bench/throttle.ts";

const opts = { sanitizeResources: false, sanitizeOps: false };

/** The slow origin's downstream rate, in bytes/s (the release takes ~4.5 s from it alone). */
const ORIGIN_RATE = 3_000_000;
/** When the peer appears after the download started, in ms. */
const PEER_AFTER_MS = 600;
const SIZES = { kernel: 12 * 1024 * 1024, initramfs: 1024 * 1024 };
const TOTAL = SIZES.kernel + SIZES.initramfs;
const SEG = { segmentBytes: 512 * 1024, parallelMinBytes: 2 * 1024 * 1024 };

const events = (l: ReturnType<typeof memoryLogger>) => l.entries.map((r) => r.event);

interface Lab {
  dir: string;
  trust: Trust;
  trustPath: string;
  files: Record<string, Uint8Array>;
  origin: RunningProvider;
  manifest: string;
}

async function withOrigin(fn: (lab: Lab) => Promise<void>): Promise<void> {
  const dir = await tempDir("rediscover");
  const { key, trustPath } = await releaseKey(`${dir}/keys`);
  const files = await writeRelease(`${dir}/root`, "stable", "amd64", SIZES);
  await signFixture(`${dir}/root`, key);
  const origin = await startTestProvider({
    root: `${dir}/root`,
    state: `${dir}/origin`,
    trustPath,
    watch: false,
  });
  try {
    await fn({
      dir,
      trust: await loadTrust(trustPath),
      trustPath,
      files,
      origin,
      manifest: "/stable/amd64/manifest.json",
    });
  } finally {
    await origin.close();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

Deno.test({
  name:
    "fetch: re-discovery during a long download from a slow origin moves the rest to a re-serving peer that appears mid-download",
  ...opts,
  fn: () =>
    withOrigin(async ({ dir, trust, trustPath, files, origin, manifest }) => {
      // The peer: a machine that fetched the release (unthrottled) and
      // re-serves its verified cache (`serve --from-cache`).
      await fetchRelease({ manifestUrl: origin.url + manifest, trust, cacheDir: `${dir}/peer` });
      const proxy = throttlingProxy(Number(new URL(origin.url).port), ORIGIN_RATE, {
        burstMs: 50,
        bufferBytes: 64 * 1024,
      });
      let peer: RunningProvider | undefined;
      const appear = setTimeout(async () => {
        peer = await startTestProvider({
          root: `${dir}/peer`,
          fromCache: `${dir}/peer`,
          state: `${dir}/peer-state`,
          trustPath,
          watch: false,
          snapshot: false,
        }).catch(() => undefined);
      }, PEER_AFTER_MS);
      const logger = memoryLogger();
      let asked = 0;
      try {
        const t0 = performance.now();
        const r = await fetchRelease({
          manifestUrl: proxy.url + manifest,
          trust,
          cacheDir: `${dir}/client`,
          logger,
          ...SEG,
          rediscover: {
            find: (cid) => {
              asked++;
              assert(cid.startsWith("bafkrei"), cid);
              return Promise.resolve(peer ? [peer.url] : []);
            },
            intervalMs: 100,
          },
        });
        const ms = performance.now() - t0;
        for (const [name, a] of Object.entries(r.artifacts)) {
          assertEquals(await Deno.readFile(a.path), files[name]);
        }
        assert(peer, "the peer started");
        assert(asked > 1, "re-discovery ran on its interval");
        // The origin alone would have sent all TOTAL bytes (~4.5 s at 3 MB/s).
        const share = proxy.bytes() / TOTAL;
        assert(share < 0.5, `origin sent ${proxy.bytes()} of ${TOTAL} bytes (${ms.toFixed(0)} ms)`);
        assert(r.artifacts.kernel.sources.includes(new URL(peer.url).origin));
        assert(events(logger).includes("provider_rediscovered"));
        assertEquals(await auditCache(cacheLayout(`${dir}/client`)), []);
      } finally {
        clearTimeout(appear);
        proxy.close();
        await peer?.close();
      }
    }),
});

/** A peer that advertises the release and serves every range with one byte flipped. */
function lyingPeer(root: string, byHex: Map<string, string>) {
  const ac = new AbortController();
  const requests: string[] = [];
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, signal: ac.signal, onListen() {} },
    async (req) => {
      const path = new URL(req.url).pathname;
      requests.push(path);
      const m = /^\/cas\/sha256\/([0-9a-f]{64})$/.exec(path);
      const name = m ? byHex.get(m[1]) : undefined;
      if (!name) return new Response("not found\n", { status: 404 });
      const body = await Deno.readFile(`${root}/stable/amd64/${name}`);
      const rm = /^bytes=(\d+)-(\d*)$/.exec(req.headers.get("range") ?? "");
      const start = rm ? Number(rm[1]) : 0;
      const end = rm && rm[2] ? Math.min(Number(rm[2]), body.length - 1) : body.length - 1;
      const slice = body.slice(start, end + 1);
      slice[Math.floor(slice.length / 2)] ^= 0xff;
      return new Response(slice, {
        status: rm ? 206 : 200,
        headers: rm ? { "content-range": `bytes ${start}-${end}/${body.length}` } : {},
      });
    },
  );
  return {
    url: `http://127.0.0.1:${server.addr.port}`,
    requests,
    close: async () => {
      ac.abort();
      await server.finished;
    },
  };
}

Deno.test({
  name:
    "TM-07 mDNS poisoning: a peer re-discovered mid-download that serves wrong bytes is found, dropped for the rest of the run, and the file still verifies",
  ...opts,
  fn: () =>
    withOrigin(async ({ dir, trust, files, origin, manifest }) => {
      const m = JSON.parse(await Deno.readTextFile(`${dir}/root/stable/amd64/manifest.json`));
      const byHex = new Map<string, string>();
      for (const [name, a] of Object.entries(m.artifacts as Record<string, { digest: string }>)) {
        byHex.set(a.digest.slice("sha256:".length), name);
      }
      const proxy = throttlingProxy(Number(new URL(origin.url).port), ORIGIN_RATE, {
        burstMs: 50,
        bufferBytes: 64 * 1024,
      });
      const liar = lyingPeer(`${dir}/root`, byHex);
      let found = false;
      const appear = setTimeout(() => (found = true), PEER_AFTER_MS);
      const logger = memoryLogger();
      try {
        const r = await fetchRelease({
          manifestUrl: proxy.url + manifest,
          trust,
          cacheDir: `${dir}/client`,
          logger,
          ...SEG,
          rediscover: { find: () => Promise.resolve(found ? [liar.url] : []), intervalMs: 100 },
        });
        for (const [name, a] of Object.entries(r.artifacts)) {
          assertEquals(await Deno.readFile(a.path), files[name]);
          assert(!a.sources.includes(liar.url), `${name} names the liar as a source`);
        }
        assertEquals(r.dropped.includes(liar.url), true, JSON.stringify(r.dropped));
        const ev = events(logger);
        assert(ev.includes("source_added") || ev.includes("sequential_cut"), ev.join(","));
        assert(ev.includes("liar_found"), ev.join(","));
        assert(ev.includes("source_dropped"));
        // Dropped for the rest of the run: never asked for a later artifact.
        const names = Object.keys(r.artifacts);
        const later = names.slice(names.indexOf(names.find((n) => n === "kernel")!) + 1);
        for (const n of later) {
          const hex = r.artifacts[n].digest.slice("sha256:".length);
          assertEquals(liar.requests.filter((p) => p.includes(hex)).length, 0, n);
        }
        assertEquals(await auditCache(cacheLayout(`${dir}/client`)), []);
      } finally {
        clearTimeout(appear);
        proxy.close();
        await liar.close();
      }
    }),
});

Deno.test({
  name:
    "fetch: a slow origin that two peers outpace takes no more segments of a parallel download (it is left to clients without peers)",
  ...opts,
  fn: () =>
    withOrigin(async ({ dir, trust, trustPath, files, origin, manifest }) => {
      const proxy = throttlingProxy(Number(new URL(origin.url).port), ORIGIN_RATE, {
        burstMs: 50,
        bufferBytes: 64 * 1024,
      });
      const peers: RunningProvider[] = [];
      const logger = memoryLogger();
      try {
        for (const k of [1, 2]) {
          peers.push(
            await startTestProvider({
              root: `${dir}/root`,
              state: `${dir}/peer${k}`,
              trustPath,
              watch: false,
            }),
          );
        }
        const r = await fetchRelease({
          manifestUrl: proxy.url + manifest,
          mirrors: peers.map((p) => p.url + manifest),
          trust,
          cacheDir: `${dir}/client`,
          logger,
          ...SEG,
        });
        for (const [name, a] of Object.entries(r.artifacts)) {
          assertEquals(await Deno.readFile(a.path), files[name]);
        }
        const retired = logger.entries.filter((e) => e.event === "source_retired");
        assert(
          retired.some((e) => e.fields.source === new URL(proxy.url).origin),
          JSON.stringify(retired),
        );
        assert(!retired.some((e) => peers.some((p) => e.fields.source === p.url)));
      } finally {
        proxy.close();
        for (const p of peers) await p.close();
      }
    }),
});
