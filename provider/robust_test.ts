import { memoryLogger } from "../core/mod.ts";
import {
  assert,
  assertEquals,
  patternBytes,
  sha256Hex,
  tempDir,
  waitFor,
  writeRelease,
} from "../testing/mod.ts";
import { startProvider } from "./server.ts";

/** Longest the watcher may take to pick up a change, in ms. */
const WATCH_WAIT_MS = 5_000;

async function provider(
  opts: {
    kernel?: number;
    maxInflight?: number;
    stallTimeoutMs?: number;
    watch?: boolean;
    snapshot?: boolean;
    perClient?: number;
    maxDownloads?: number;
  } = {},
) {
  const dir = await tempDir("robust");
  const files = await writeRelease(`${dir}/root`, "stable", "amd64", {
    kernel: opts.kernel ?? 1 << 20,
  });
  const logger = memoryLogger();
  const p = await startProvider({
    root: `${dir}/root`,
    state: `${dir}/state`,
    port: 0,
    logger,
    watch: opts.watch ?? false,
    maxInflight: opts.maxInflight,
    maxDownloads: opts.maxDownloads,
    stallTimeoutMs: opts.stallTimeoutMs,
    snapshot: opts.snapshot,
    maxInflightPerClient: opts.perClient,
    // Every test client is 127.0.0.1: the per-address connection cap follows the in-flight one.
    maxConnectionsPerClient: opts.perClient,
    shutdownGraceMs: 2000,
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

/**
 * Waits for each of `held` (responses nobody reads) to be cut by the
 * stall timeout: one `client_stalled` line each, a body shorter than
 * `size` at the client, and every slot free again.
 */
async function expectStallCuts(
  s: Awaited<ReturnType<typeof provider>>,
  held: Response[],
  size: number,
) {
  await waitFor(
    () => s.logger.entries.filter((e) => e.event === "client_stalled").length === held.length,
    10_000,
    "stalled streams cut",
  );
  for (const h of held) {
    // The cut shows to the client as a body shorter than Content-Length.
    const got = await h.arrayBuffer().then((b) => b.byteLength, () => -1);
    assert(got < size);
  }
  await waitFor(
    async () => (await (await fetch(`${s.p.url}/status`)).json()).inflight === 0,
    5000,
    "slots freed",
  );
}

Deno.test("TM-18 provider exhaustion: 500 concurrent clients each get a complete, correct artifact", async () => {
  // All 500 come from 127.0.0.1 here; on a LAN they have their own addresses.
  await using s = await provider({ kernel: 1 << 20, perClient: 1000 });
  const want = await sha256Hex(s.files.kernel);
  const url = `${s.p.url}/stable/amd64/kernel`;
  let busy = 0;
  const results = await Promise.all(Array.from({ length: 500 }, async (_, i) => {
    const range = i % 5 === 0 ? { range: `bytes=${i}-${i + 999}` } : undefined;
    let res = await fetch(url, { headers: range, signal: AbortSignal.timeout(60_000) });
    // Beyond the download cap (MAX_DOWNLOADS) a client is told to come
    // back; one that does gets its artifact (bounded: 60 tries).
    for (let tries = 0; res.status === 503 && tries < 60; tries++) {
      busy++;
      await res.body?.cancel();
      await new Promise((r) => setTimeout(r, Number(res.headers.get("retry-after")) * 1000));
      res = await fetch(url, { headers: range, signal: AbortSignal.timeout(60_000) });
    }
    const body = new Uint8Array(await res.arrayBuffer());
    if (range) {
      return res.status === 206 &&
        (await sha256Hex(body)) === (await sha256Hex(s.files.kernel.slice(i, i + 1000)));
    }
    return res.status === 200 && (await sha256Hex(body)) === want;
  }));
  assertEquals(results.filter((ok) => !ok).length, 0);
  await waitFor(() => s.p.metrics.inflight === 0, 5000, "every response delivered");
  // The only 5xx answers are the download cap's 503s.
  assertEquals(s.p.metrics.errors, s.p.metrics.refusedDownloads);
  assertEquals(s.p.metrics.refusedDownloads, busy);
});

Deno.test("TM-18 provider exhaustion: a client that stops reading a checked stream is cut after the stall timeout; slots free again", async () => {
  await using s = await provider({
    kernel: 32 << 20,
    maxInflight: 4,
    stallTimeoutMs: 500,
    snapshot: false,
  });
  // Four readers that never read: they hold streams open.
  const held = await Promise.all(
    Array.from({ length: 4 }, () => fetch(`${s.p.url}/stable/amd64/kernel`)),
  );
  const busy = await fetch(`${s.p.url}/stable/amd64/manifest.json`);
  assertEquals(busy.status, 503);
  assertEquals(busy.headers.get("retry-after"), "1");
  await busy.body?.cancel();
  await expectStallCuts(s, held, 32 << 20);
});

Deno.test("TM-18 provider exhaustion: a client that stops reading a body served from memory is cut after the stall timeout; slots free again", async () => {
  await using s = await provider({ kernel: 32 << 20, maxInflight: 4, stallTimeoutMs: 500 });
  const url = `${s.p.url}/stable/amd64/kernel`;
  // On a connection of its own: one that has carried 32 MiB has a receive
  // buffer grown large enough to take a whole body that nobody reads.
  const warm = Deno.createHttpClient({});
  await (await fetch(url, { client: warm })).arrayBuffer();
  warm.close();
  await waitFor(() => s.p.metrics.memory.loads === 1, 10_000, "the kernel held in memory");
  const held = await Promise.all(Array.from({ length: 4 }, () => fetch(url)));
  assertEquals(s.p.metrics.memory.hits, 4);
  const busy = await fetch(`${s.p.url}/stable/amd64/manifest.json`);
  assertEquals(busy.status, 503);
  await busy.body?.cancel();
  await expectStallCuts(s, held, 32 << 20);
});

Deno.test("TM-18 provider exhaustion: slow fast-path downloads hold slots within the global and per-client caps; leaving frees them", async () => {
  await using s = await provider({ kernel: 32 << 20, maxInflight: 8 });
  const held = await Promise.all(
    Array.from({ length: 8 }, () => fetch(`${s.p.url}/stable/amd64/kernel`)),
  );
  const busy = await fetch(`${s.p.url}/stable/amd64/manifest.json`);
  assertEquals(busy.status, 503);
  await busy.body?.cancel();
  for (const h of held) await h.body?.cancel();
  await waitFor(
    async () => {
      const r = await fetch(`${s.p.url}/status`);
      return r.status === 200 && (await r.json()).inflight === 0;
    },
    5000,
    "slots freed",
  );
  await using t = await provider({ kernel: 32 << 20 });
  const perClient = await startProviderWithClientCap(t.dir);
  try {
    const a = await fetch(`${perClient.url}/stable/amd64/kernel`);
    const b = await fetch(`${perClient.url}/stable/amd64/kernel`);
    const c = await fetch(`${perClient.url}/stable/amd64/kernel`);
    assertEquals([a.status, b.status, c.status], [200, 200, 503]);
    for (const r of [a, b, c]) await r.body?.cancel();
  } finally {
    await perClient.close();
  }
});

Deno.test("TM-18 provider exhaustion: beyond --max-downloads an artifact GET gets 503 + Retry-After; manifests and HEAD are answered; counted on /status and the page; logged once per burst", async () => {
  await using s = await provider({ kernel: 32 << 20, maxDownloads: 2 });
  const kernel = `${s.p.url}/stable/amd64/kernel`;
  // Two downloads whose readers never read: they hold both places.
  const held = [await fetch(kernel), await fetch(kernel)];
  assertEquals(held.map((h) => h.status), [200, 200]);
  const refused: Response[] = [];
  for (let i = 0; i < 5; i++) {
    refused.push(await fetch(i % 2 ? kernel : `${s.p.url}/stable/amd64/initramfs`));
  }
  for (const r of refused) {
    assertEquals(r.status, 503);
    assertEquals(r.headers.get("retry-after"), "1");
    assert((await r.text()).startsWith("busy: too many downloads"));
  }
  // Documents and HEAD are never refused by the download cap.
  const manifest = await fetch(`${s.p.url}/stable/amd64/manifest.json`);
  assertEquals(manifest.status, 200);
  await manifest.body?.cancel();
  const head = await fetch(kernel, { method: "HEAD" });
  assertEquals(head.status, 200);
  const status = await (await fetch(`${s.p.url}/status`)).json();
  assertEquals([status.downloads, status.refusedDownloads], [2, 5]);
  const page = await (await fetch(`${s.p.url}/`, { headers: { accept: "text/html" } })).text();
  assert(page.includes(`<td id="refused-downloads">5</td>`), "the status page counts them");
  // One burst, one log line (not one per refusal).
  assertEquals(s.logger.entries.filter((e) => e.event === "downloads_capped").length, 1);
  for (const h of held) await h.body?.cancel();
  await waitFor(() => s.p.metrics.downloads === 0, 5000, "places freed");
  const again = await fetch(kernel);
  assertEquals(again.status, 200);
  assertEquals((await again.arrayBuffer()).byteLength, 32 << 20);
});

async function startProviderWithClientCap(dir: string) {
  return await startProvider({
    root: `${dir}/root`,
    state: `${dir}/state2`,
    port: 0,
    logger: memoryLogger(),
    watch: false,
    maxInflightPerClient: 2,
  });
}

Deno.test("TM-19 torn artifact reads: a file replaced on disk is never served under the old ETag; the watcher re-hashes only it", async () => {
  await using s = await provider({ watch: true });
  const path = `${s.dir}/root/stable/amd64/kernel`;
  const before = s.p.hashedFiles();
  const oldEtag = `"sha256:${await sha256Hex(s.files.kernel)}"`;
  const fresh = patternBytes(300_000, 77);
  await Deno.writeFile(`${path}.tmp`, fresh);
  await Deno.rename(`${path}.tmp`, path);
  // Right after the swap (before or after the rescan), no answer pairs old ETag with new bytes.
  const res = await fetch(`${s.p.url}/stable/amd64/kernel`);
  const body = new Uint8Array(await res.arrayBuffer());
  if (res.status === 200) {
    assertEquals(res.headers.get("etag"), `"sha256:${await sha256Hex(body)}"`);
  } else assertEquals(res.status, 503);
  const newDigest = `sha256:${await sha256Hex(fresh)}`;
  await waitFor(
    () =>
      s.p.catalog().releases.get("stable/amd64")?.manifest.artifacts.kernel.digest === newDigest,
    WATCH_WAIT_MS,
    "the watcher to pick up the new kernel",
  );
  assertEquals(s.p.hashedFiles() - before, 1, "only the changed file was re-hashed");
  const after = await fetch(`${s.p.url}/stable/amd64/kernel`);
  assertEquals(after.headers.get("etag"), `"${newDigest}"`);
  assertEquals(new Uint8Array(await after.arrayBuffer()), fresh);
  const stale = await fetch(`${s.p.url}/stable/amd64/kernel`, {
    headers: { "if-none-match": oldEtag },
  });
  assertEquals(stale.status, 200, "the old ETag no longer matches");
  await stale.body?.cancel();
});

Deno.test("TM-19 torn artifact reads: a file rewritten in place while it streams never yields mixed bytes (snapshot: the hashed bytes; checked stream: cut)", async (t) => {
  for (const snapshot of [true, false]) {
    await t.step(snapshot ? "snapshot" : "checked stream", async () => {
      await using s = await provider({ kernel: 16 << 20, snapshot });
      const path = `${s.dir}/root/stable/amd64/kernel`;
      const hex = await sha256Hex(s.files.kernel);
      const res = await fetch(`${s.p.url}/stable/amd64/kernel`);
      assertEquals(res.headers.get("etag"), `"sha256:${hex}"`);
      const reader = res.body!.getReader();
      const first = await reader.read();
      assert(!first.done);
      // Rewrite the tail in place (same inode), as a careless copy would.
      const f = await Deno.open(path, { write: true });
      await f.seek(8 << 20, Deno.SeekMode.Start);
      await f.write(new Uint8Array(1 << 20).fill(0xee));
      f.close();
      const chunks = [first.value!];
      let failed = false;
      try {
        for (;;) {
          const { done, value } = await reader.read();
          if (done) break;
          chunks.push(value);
        }
      } catch {
        failed = true;
      }
      const all = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
      let off = 0;
      for (const c of chunks) {
        all.set(c, off);
        off += c.length;
      }
      if (snapshot) {
        // The snapshot never changed: the whole body is exactly what the ETag names.
        assert(!failed);
        assertEquals(await sha256Hex(all), hex);
        await s.p.rescan();
        const fresh = await fetch(`${s.p.url}/stable/amd64/kernel`);
        const body = new Uint8Array(await fresh.arrayBuffer());
        assertEquals(fresh.headers.get("etag"), `"sha256:${await sha256Hex(body)}"`);
        assert(fresh.headers.get("etag") !== `"sha256:${hex}"`);
      } else {
        assert(failed, "the response must be cut, not completed");
        assert(s.p.metrics.tornAborts >= 1);
        assert(all.length < s.files.kernel.length, "fewer bytes than Content-Length");
        // The changed file is refused until it is re-hashed.
        const again = await fetch(`${s.p.url}/stable/amd64/kernel`);
        assertEquals(again.status, 503);
        await again.body?.cancel();
      }
    });
  }
});

Deno.test("serve: a stop lets an in-flight download finish within the grace, refuses new connections, and health says stopping", async () => {
  await using s = await provider({ kernel: 8 << 20 });
  const res = await fetch(`${s.p.url}/stable/amd64/kernel`);
  const reader = res.body!.getReader();
  const first = await reader.read();
  const closing = s.p.close();
  let total = first.value!.length;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.length;
  }
  await closing;
  assertEquals(total, 8 << 20);
  const refused = await fetch(`${s.p.url}/health`).then(() => false, () => true);
  assert(refused, "no new connection after the stop");
});
