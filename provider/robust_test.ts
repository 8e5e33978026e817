import { memoryLogger } from "../cli/log.ts";
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
  opts: { kernel?: number; maxInflight?: number; stallTimeoutMs?: number; watch?: boolean } = {},
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
    stallTimeoutMs: opts.stallTimeoutMs,
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

Deno.test("TM-18 provider exhaustion: 500 concurrent clients each get a complete, correct artifact", async () => {
  await using s = await provider({ kernel: 1 << 20 });
  const want = await sha256Hex(s.files.kernel);
  const url = `${s.p.url}/stable/amd64/kernel`;
  const results = await Promise.all(Array.from({ length: 500 }, async (_, i) => {
    const range = i % 5 === 0 ? { range: `bytes=${i}-${i + 999}` } : undefined;
    const res = await fetch(url, { headers: range, signal: AbortSignal.timeout(60_000) });
    const body = new Uint8Array(await res.arrayBuffer());
    if (range) {
      return res.status === 206 &&
        (await sha256Hex(body)) === (await sha256Hex(s.files.kernel.slice(i, i + 1000)));
    }
    return res.status === 200 && (await sha256Hex(body)) === want;
  }));
  assertEquals(results.filter((ok) => !ok).length, 0);
  assertEquals(s.p.metrics.inflight, 0, "every stream closed");
  assertEquals(s.p.metrics.errors, 0);
});

Deno.test("TM-18 provider exhaustion: beyond the in-flight cap requests get 503 at once, and a client that stops reading is cut after the stall timeout", async () => {
  await using s = await provider({ kernel: 32 << 20, maxInflight: 4, stallTimeoutMs: 500 });
  // Four readers that never read: they hold streams open.
  const held = await Promise.all(
    Array.from({ length: 4 }, () => fetch(`${s.p.url}/stable/amd64/kernel`)),
  );
  const busy = await fetch(`${s.p.url}/stable/amd64/manifest.json`);
  assertEquals(busy.status, 503);
  assertEquals(busy.headers.get("retry-after"), "1");
  await busy.body?.cancel();
  await waitFor(
    () => s.logger.entries.filter((e) => e.event === "client_stalled").length === 4,
    10_000,
    "stalled streams cut",
  );
  assertEquals(s.p.metrics.inflight, 0);
  for (const h of held) await h.body?.cancel().catch(() => {});
  const ok = await fetch(`${s.p.url}/stable/amd64/manifest.json`);
  assertEquals(ok.status, 200);
  await ok.body?.cancel();
});

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

Deno.test("TM-19 torn artifact reads: a file rewritten in place while it streams is cut, never completed with mixed bytes", async () => {
  await using s = await provider({ kernel: 16 << 20 });
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
  const total = chunks.reduce((n, c) => n + c.length, 0);
  assert(failed, "the response must be cut, not completed");
  assert(s.p.metrics.tornAborts >= 1);
  assert(total < s.files.kernel.length, "fewer bytes than Content-Length");
  // The changed file is refused until it is re-hashed.
  const again = await fetch(`${s.p.url}/stable/amd64/kernel`);
  assertEquals(again.status, 503);
  await again.body?.cancel();
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
