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
import type { Artifact } from "./catalog.ts";
import { identityOf } from "./catalog.ts";
import { ArtifactMemory, MEMORY_IDLE_EVICT_MS, newMemoryCounters } from "./memory_cache.ts";
import { startProvider } from "./server.ts";

/** Longest a background read into memory may take in these tests, in ms. */
const LOAD_WAIT_MS = 5_000;

async function snapshotArtifact(path: string, bytes: Uint8Array, digest?: string) {
  await Deno.writeFile(path, bytes);
  return {
    name: "kernel",
    channel: "stable",
    arch: "amd64",
    path,
    source: path,
    immutable: true,
    digest: digest ?? await sha256Hex(bytes),
    size: bytes.length,
    identity: identityOf(await Deno.stat(path)),
  } satisfies Artifact;
}

Deno.test("TM-19 torn artifact reads: a snapshot whose bytes no longer hash to its digest is never held in memory", async () => {
  const dir = await tempDir("memory");
  try {
    const good = patternBytes(300_000, 3);
    const digest = await sha256Hex(good);
    // The snapshot's bytes were altered in a way its identity does not show
    // (a write under the file system, a bad disk): only the hash can tell.
    const altered = good.slice();
    altered[123_456] ^= 1;
    const a = await snapshotArtifact(`${dir}/${digest}`, altered, digest);
    const counters = newMemoryCounters();
    const logger = memoryLogger();
    const told: Artifact[] = [];
    const memory = new ArtifactMemory(1 << 20, logger, counters, () => true, (x) => told.push(x));
    await memory.want(a);
    assert(memory.get(digest) === undefined, "altered bytes are not held");
    assertEquals([counters.refused, counters.loads, counters.bytes], [1, 0, 0]);
    assertEquals(told, [a], "the provider is told to re-hash it");
    assert(
      logger.entries.some((e) => e.event === "artifact_changed" && e.fields.threat === "TM-19"),
    );
    // The same file with the bytes its digest names is held, exactly.
    const b = await snapshotArtifact(`${dir}/${digest}`, good, digest);
    await memory.want(b);
    assertEquals(memory.get(digest), good);
    assertEquals([counters.loads, counters.bytes, counters.artifacts], [1, good.length, 1]);
    // A file longer than the size it was hashed at is not held either.
    const longer = await snapshotArtifact(`${dir}/longer`, new Uint8Array([...good, 0]), digest);
    const other = new ArtifactMemory(1 << 20, logger, newMemoryCounters(), () => true);
    await other.want({ ...longer, size: good.length });
    assert(other.get(digest) === undefined, "a longer file is not held");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("serve: memory cache holds at most its budget; room comes from what the catalog dropped, then from entries idle for a minute, least recently used first", async () => {
  const dir = await tempDir("memory");
  try {
    const counters = newMemoryCounters();
    const live = new Set<string>();
    let clock = 0;
    const memory = new ArtifactMemory(
      250_000,
      memoryLogger(),
      counters,
      (d) => live.has(d),
      () => {},
      () => clock,
    );
    const arts: Artifact[] = [];
    for (const seed of [1, 2, 3]) {
      const bytes = patternBytes(100_000, seed);
      const a = await snapshotArtifact(`${dir}/${seed}`, bytes);
      arts.push(a);
      live.add(a.digest);
    }
    const [x, y, z] = arts;
    await memory.want(x);
    await memory.want(y);
    clock = 1000;
    assert(memory.get(x.digest), "x held, and now the most recently used");
    // Both in use within the minute: z waits, served from its file (no thrashing).
    await memory.want(z);
    assert(memory.get(z.digest) === undefined, "no room for z yet");
    assertEquals([counters.full, counters.loads, counters.bytes], [1, 2, 200_000]);
    clock = MEMORY_IDLE_EVICT_MS - 1;
    await memory.want(z);
    assertEquals(counters.full, 2, "y, the least recently used, was loaded less than a minute ago");
    clock = MEMORY_IDLE_EVICT_MS + 1;
    await memory.want(z);
    assert(memory.get(y.digest) === undefined, "y, least recently used and idle, made room");
    assert(memory.get(x.digest) && memory.get(z.digest));
    assertEquals(counters.bytes, 200_000);
    // Bigger than the budget: never read.
    const big = await snapshotArtifact(`${dir}/big`, patternBytes(250_001, 9));
    assertEquals(memory.want(big), undefined);
    // A digest the catalog dropped goes first, however recently used.
    live.delete(z.digest);
    live.add(y.digest);
    await memory.want(y);
    assert(memory.get(z.digest) === undefined, "z, no longer served, went first");
    assert(memory.get(x.digest) && memory.get(y.digest));
    assertEquals([counters.bytes, counters.artifacts, counters.loads], [200_000, 2, 4]);
    // A file served from the root, not a private snapshot, is never held (TM-19: it may be rewritten).
    const root = await snapshotArtifact(`${dir}/root`, patternBytes(1000, 5));
    assertEquals(memory.want({ ...root, immutable: false }), undefined);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("serve: an artifact asked for again is answered from memory, byte-identical, ranges and 304 too; --memory-cache-mib 0 reads the file each time", async (t) => {
  for (const memoryCacheBytes of [undefined, 0]) {
    await t.step(memoryCacheBytes === 0 ? "off" : "default", async () => {
      const dir = await tempDir("memory");
      const files = await writeRelease(`${dir}/root`, "stable", "amd64", { kernel: 3 << 20 });
      const p = await startProvider({
        root: `${dir}/root`,
        state: `${dir}/state`,
        port: 0,
        logger: memoryLogger(),
        watch: false,
        memoryCacheBytes,
      });
      try {
        const url = `${p.url}/stable/amd64/kernel`;
        const first = await fetch(url);
        assertEquals(new Uint8Array(await first.arrayBuffer()), files.kernel);
        if (memoryCacheBytes === 0) {
          const again = await fetch(url);
          assertEquals(new Uint8Array(await again.arrayBuffer()), files.kernel);
          assertEquals(p.metrics.memory.loads + p.metrics.memory.hits, 0);
          return;
        }
        await waitFor(() => p.metrics.memory.loads === 1, LOAD_WAIT_MS, "the kernel held");
        const etag = first.headers.get("etag")!;
        const again = await fetch(url);
        assertEquals(again.headers.get("etag"), etag);
        assertEquals(again.headers.get("content-length"), String(files.kernel.length));
        assertEquals(new Uint8Array(await again.arrayBuffer()), files.kernel);
        const part = await fetch(url, { headers: { range: "bytes=1048570-2097160" } });
        assertEquals(part.status, 206);
        assertEquals(
          part.headers.get("content-range"),
          `bytes 1048570-2097160/${files.kernel.length}`,
        );
        assertEquals(
          new Uint8Array(await part.arrayBuffer()),
          files.kernel.slice(1048570, 2097161),
        );
        const tail = await fetch(url, { headers: { range: "bytes=-5" } });
        assertEquals(new Uint8Array(await tail.arrayBuffer()), files.kernel.slice(-5));
        const same = await fetch(url, { headers: { "if-none-match": etag } });
        assertEquals(same.status, 304);
        await same.body?.cancel();
        const head = await fetch(url, { method: "HEAD" });
        assertEquals(head.headers.get("content-length"), String(files.kernel.length));
        assertEquals(p.metrics.memory.hits, 3, "the GET and the two ranges");
        assertEquals(p.metrics.memory.bytes, files.kernel.length);
        const status = await (await fetch(`${p.url}/status`)).json();
        assertEquals(status.memory, {
          bytes: files.kernel.length,
          artifacts: 1,
          hits: 3,
          loads: 1,
          refused: 0,
          full: 0,
        });
        assertEquals(
          p.metrics.perArtifact["stable/amd64/kernel"].bytes,
          2 * files.kernel.length + 1048591 + 5,
        );
      } finally {
        await p.close();
        await Deno.remove(dir, { recursive: true });
      }
    });
  }
});
