/**
 * Busy sources (issue 12 §4, TM-18): a provider at its download cap
 * (`serve --max-downloads`) answers `503` + `Retry-After`. The client waits
 * that out (bounded) or uses another source meanwhile, and never counts it
 * as a lie (TM-07). Real providers on loopback.
 */
import { startTestProvider } from "../testing/provider.ts";
import { memoryLogger } from "../core/mod.ts";
import { busyWaitMs, fetchRelease, MAX_BUSY_WAIT_MS, MIN_BUSY_WAIT_MS } from "./mod.ts";
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

/** Large enough that a download nobody reads holds its place (socket buffers fill). */
const SIZES = { kernel: 24 * 1024 * 1024, initramfs: 1024 * 1024 };
const MANIFEST = "/stable/amd64/manifest.json";
const events = (l: ReturnType<typeof memoryLogger>) => l.entries.map((r) => r.event);

interface Lab {
  dir: string;
  trust: Trust;
  files: Record<string, Uint8Array>;
  start: (name: string, maxDownloads?: number) => Promise<RunningProvider>;
}

async function withLab(fn: (lab: Lab) => Promise<void>): Promise<void> {
  const dir = await tempDir("busy");
  const { key, trustPath } = await releaseKey(`${dir}/keys`);
  const files = await writeRelease(`${dir}/root`, "stable", "amd64", SIZES);
  await signFixture(`${dir}/root`, key);
  const running: RunningProvider[] = [];
  const start = async (name: string, maxDownloads?: number) => {
    const p = await startTestProvider({
      root: `${dir}/root`,
      state: `${dir}/${name}`,
      trustPath,
      watch: false,
      maxDownloads,
    });
    running.push(p);
    return p;
  };
  try {
    await fn({ dir, trust: await loadTrust(trustPath), files, start });
  } finally {
    for (const p of running) await p.close();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

/** Takes the provider's only download place with a reader that never reads. */
async function holdPlace(p: RunningProvider): Promise<() => Promise<void>> {
  const held = await fetch(`${p.url}/stable/amd64/kernel`);
  assertEquals(held.status, 200);
  return async () => void await held.body?.cancel();
}

Deno.test("fetch: a busy answer's wait is Retry-After within MIN_BUSY_WAIT_MS..MAX_BUSY_WAIT_MS; a 503 without it is not busy", () => {
  assertEquals(busyWaitMs(503, "2"), 2000);
  // A provider cannot park the client for an hour, nor make it spin.
  assertEquals(busyWaitMs(503, "3600"), MAX_BUSY_WAIT_MS);
  assertEquals(busyWaitMs(503, "0"), MIN_BUSY_WAIT_MS);
  const now = Date.parse("2026-12-01T00:00:00Z");
  assertEquals(busyWaitMs(503, "Tue, 01 Dec 2026 00:00:03 GMT", now), 3000);
  assertEquals(busyWaitMs(503, null), undefined);
  assertEquals(busyWaitMs(503, "soon"), undefined);
  assertEquals(busyWaitMs(502, "1"), undefined);
});

Deno.test({
  name:
    "TM-18 provider exhaustion (client side): the only source at its download cap answers 503 + Retry-After; the fetch waits it out and completes",
  ...opts,
  fn: () =>
    withLab(async ({ dir, trust, files, start }) => {
      const origin = await start("origin", 1);
      const release = await holdPlace(origin);
      // The place frees after 1.5 s: a client that took the 503 as a
      // failure would have given up by then.
      const free = setTimeout(() => void release(), 1_500);
      const logger = memoryLogger();
      try {
        const r = await fetchRelease({
          manifestUrl: origin.url + MANIFEST,
          trust,
          cacheDir: `${dir}/client`,
          logger,
        });
        for (const [name, a] of Object.entries(r.artifacts)) {
          assertEquals(await Deno.readFile(a.path), files[name]);
        }
        assert(origin.metrics.refusedDownloads >= 1, "the origin refused at its cap");
        assert(events(logger).includes("source_busy"));
        assert(!events(logger).includes("source_dropped"));
      } finally {
        clearTimeout(free);
        await release();
      }
    }),
});

Deno.test({
  name:
    "TM-07 rogue candidate vs busy: a source at its download cap is not blamed; the other source serves meanwhile and the busy one is asked again and contributes",
  ...opts,
  fn: () =>
    withLab(async ({ dir, trust, files, start }) => {
      const a = await start("a", 1);
      const b = await start("b");
      // B is slow (2 MB/s: ~13 s alone), so A has time to come back.
      const slowB = throttlingProxy(Number(new URL(b.url).port), 2_000_000, {
        burstMs: 50,
        bufferBytes: 64 * 1024,
      });
      const release = await holdPlace(a);
      const free = setTimeout(() => void release(), 300);
      const logger = memoryLogger();
      try {
        const r = await fetchRelease({
          manifestUrl: a.url + MANIFEST,
          mirrors: [slowB.url + MANIFEST],
          trust,
          cacheDir: `${dir}/client`,
          logger,
          segmentBytes: 1024 * 1024,
          parallelMinBytes: 2 * 1024 * 1024,
        });
        assertEquals(await Deno.readFile(r.artifacts.kernel.path), files.kernel);
        assert(a.metrics.refusedDownloads >= 1, "A refused at its cap");
        // Busy is neither a failure that ends A's part nor a lie.
        assert(r.artifacts.kernel.sources.includes(new URL(a.url).origin), "A contributed");
        assert(!events(logger).includes("source_dropped"));
        assert(events(logger).includes("source_busy"));
      } finally {
        clearTimeout(free);
        await release();
        slowB.close();
      }
    }),
});
