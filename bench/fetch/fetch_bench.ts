/**
 * Fetch benchmarks (issue #4). Run with the test set (it spawns curl,
 * openssl, sync, /usr/bin/time and the provider):
 *
 *   deno run -q --no-prompt -P=test bench/fetch/fetch_bench.ts [stream|hash|providers|rss|cores|all] [MiB]
 *
 * - stream: one stream from the real provider (`deno task serve`, its own
 *   process) into the cache (hash-while-fetch, fsync, rename) vs `curl -o`
 *   of the same URL and vs `curl -o` + `sync FILE` (fsync: the cache's
 *   durability), and vs the two-pass `curl -o` + `openssl dgst -sha256`.
 * - hash: the fetcher's hash-while-write pipeline (client/download.ts
 *   PartialSink: 1 MiB buffers, SHA-256 per buffer, chained writes, background
 *   writeback; no network, no final fsync) fed from a page-cached file vs
 *   `openssl dgst -sha256` of the same file, and node:crypto alone.
 * - providers: 1..4 providers, each behind this script's own throttling
 *   proxy (RATE_MB_S per provider), parallel ranged download.
 * - rss: peak RSS of the `fetch` entrypoint fetching a 2 GiB artifact.
 * - cores: why the hash stays on the thread that reads the socket: SHA-256
 *   of bytes just copied on the same thread vs bytes copied on the main
 *   thread and hashed in a worker right after (a shared ring, no copy).
 *
 * @module
 */
import { createHash } from "node:crypto";
import { cacheLayout, downloadArtifact, ensureCache } from "../../client/mod.ts";
import { PartialSink } from "../../client/download.ts";
import { spawnServe, stopServe } from "../../testing/mod.ts";
import { rawTasks } from "../../cli/mod.ts";
import { throttlingProxy } from "../throttle.ts";

const REPO = new URL("../../", import.meta.url).pathname.replace(/\/$/, "");
/** Per-provider rate of the throttling proxy, in MB/s (10^6 bytes). */
const RATE_MB_S = 40;
/** Rounds per measurement; the best and the median are reported. */
const RUNS = 3;

async function sh(cmd: string[], opts: { quiet?: boolean } = {}) {
  const out = await new Deno.Command(cmd[0], {
    args: cmd.slice(1),
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success && !opts.quiet) {
    throw new Error(`${cmd.join(" ")}: ${new TextDecoder().decode(out.stderr)}`);
  }
  return {
    stdout: new TextDecoder().decode(out.stdout),
    stderr: new TextDecoder().decode(out.stderr),
  };
}

/** Writes `mib` MiB of pseudo-random data in 1 MiB writes (bounded memory); returns its hex digest. */
async function writeBig(path: string, mib: number): Promise<string> {
  const f = await Deno.open(path, { write: true, create: true, truncate: true });
  const h = createHash("sha256");
  const buf = new Uint8Array(1024 * 1024);
  crypto.getRandomValues(buf.subarray(0, 65536));
  for (let i = 1; i < 16; i++) buf.copyWithin(i * 65536, 0, 65536);
  for (let i = 0; i < mib; i++) {
    buf[0] = i & 0xff;
    buf[1] = (i >> 8) & 0xff;
    h.update(buf);
    let off = 0;
    while (off < buf.length) off += await f.write(buf.subarray(off));
  }
  f.close();
  return h.digest("hex");
}

async function setup(mib: number) {
  await Deno.mkdir("/tmp/phase", { recursive: true });
  const dir = await Deno.makeTempDir({ dir: "/tmp/phase", prefix: "bench-fetch-" });
  const rel = `${dir}/root/stable/amd64`;
  await Deno.mkdir(rel, { recursive: true });
  await Deno.writeFile(`${rel}/kernel`, new Uint8Array(4096).fill(1));
  await Deno.writeFile(`${rel}/initramfs`, new Uint8Array(4096).fill(2));
  const hex = await writeBig(`${rel}/rootfs`, mib);
  const prov = await spawnServe([
    "--root",
    `${dir}/root`,
    "--state",
    `${dir}/state`,
    "--port",
    "0",
    "--no-mdns",
    "--no-dht",
    "--no-watch",
  ]);
  if (!prov.url) throw new Error(`no provider URL in: ${prov.out}`);
  return { dir, hex, size: mib * 1024 * 1024, url: prov.url.replace(/\/$/, ""), prov };
}

async function best(fn: () => Promise<number>): Promise<number> {
  let b = Infinity;
  for (let i = 0; i < RUNS; i++) b = Math.min(b, await fn());
  return b;
}

/** Best and median of a list of durations (ms). */
function stats(ms: number[]) {
  const s = [...ms].sort((a, b) => a - b);
  return { best: s[0], median: s[Math.floor(s.length / 2)] };
}

/** Flushes every dirty page first, so no run pays for the previous one's writeback. */
async function settle() {
  await sh(["sync"]);
}

const load = () => Deno.loadavg().map((x) => +x.toFixed(2));

const mbs = (bytes: number, ms: number) => (bytes / 1e6) / (ms / 1000);

async function timeIt(fn: () => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  await fn();
  return performance.now() - t0;
}

async function phaseDownload(
  env: Awaited<ReturnType<typeof setup>>,
  sources: { id: string; urls: string[] }[],
  cache: string,
  parallel: boolean,
) {
  await Deno.remove(cache, { recursive: true }).catch(() => {});
  const layout = cacheLayout(cache);
  await ensureCache(layout);
  return await timeIt(() =>
    downloadArtifact({
      layout,
      name: "rootfs",
      hex: env.hex,
      size: env.size,
      sources: sources.map((s) => ({ ...s, kind: "http" as const })),
      parallel,
    })
  );
}

async function stream(mib: number) {
  const env = await setup(mib);
  try {
    const url = `${env.url}/cas/sha256/${env.hex}`;
    const out = `${env.dir}/curl.out`;
    const rm = () => Deno.remove(out).catch(() => {});
    const t: Record<string, number[]> = { curl: [], curlSync: [], openssl: [], phase: [] };
    const loadBefore = load();
    // Rounds interleave the contenders, so a burst of load on the shared
    // machine hits all of them; each run starts with no dirty pages and no
    // output file (curl -o and the cache both create a new file).
    for (let i = 0; i < RUNS; i++) {
      await rm();
      await settle();
      t.curl.push(await timeIt(() => sh(["curl", "-s", "-f", "-o", out, url])));
      await rm();
      await settle();
      // The same durability as the cache (its data on disk before it counts):
      // coreutils `sync FILE` is fsync(FILE).
      t.curlSync.push(
        await timeIt(() => sh(["sh", "-c", `curl -s -f -o '${out}' '${url}' && sync '${out}'`])),
      );
      t.openssl.push(await timeIt(() => sh(["openssl", "dgst", "-sha256", out])));
      await rm();
      await settle();
      t.phase.push(
        await phaseDownload(env, [{ id: env.url, urls: [url] }], `${env.dir}/cache`, false),
      );
    }
    const curl = stats(t.curl), curlSync = stats(t.curlSync);
    const openssl = stats(t.openssl), phase = stats(t.phase);
    const rate = (ms: number) => Math.round(mbs(env.size, ms));
    console.log(JSON.stringify({
      bench: "stream",
      mib,
      rounds: RUNS,
      load_before: loadBefore,
      load_after: load(),
      // MB/s, best / median over the rounds.
      phase_mb_s: [rate(phase.best), rate(phase.median)],
      curl_o_mb_s: [rate(curl.best), rate(curl.median)],
      curl_o_sync_mb_s: [rate(curlSync.best), rate(curlSync.median)],
      ratio_vs_curl_o: [
        +(curl.best / phase.best).toFixed(2),
        +(curl.median / phase.median).toFixed(2),
      ],
      ratio_vs_curl_o_sync: [
        +(curlSync.best / phase.best).toFixed(2),
        +(curlSync.median / phase.median).toFixed(2),
      ],
      openssl_dgst_mb_s: [rate(openssl.best), rate(openssl.median)],
      fetch_vs_openssl_dgst: [
        +(openssl.best / phase.best).toFixed(2),
        +(openssl.median / phase.median).toFixed(2),
      ],
      two_pass_curl_o_then_openssl_mb_s: [
        rate(curl.best + openssl.best),
        rate(curl.median + openssl.median),
      ],
    }));
  } finally {
    await stopServe(env.prov.child);
    await Deno.remove(env.dir, { recursive: true });
  }
}

/**
 * Reads `path` into the sink's buffers through PartialSink. `sameThread`:
 * with `readSync`, so the bytes land on the thread that hashes them, as a
 * socket read does (Deno reads sockets on the calling thread; an async
 * file read copies on the runtime's blocking pool, another core, and the
 * hash then reads bytes that are not in its core's cache).
 */
async function pipeline(path: string, dest: string, sameThread: boolean): Promise<string> {
  const src = await Deno.open(path, { read: true });
  const file = await Deno.open(dest, { read: true, write: true, create: true, truncate: true });
  const p = { file, pos: 0, hash: createHash("sha256"), contributors: new Set<string>() };
  try {
    const sink = new PartialSink(p, dest);
    for (;;) {
      const view = sink.space();
      const n = sameThread ? src.readSync(view) : await src.read(view);
      if (n === null) break;
      await sink.push(view.subarray(0, n));
    }
    await sink.finish();
    return p.hash.digest("hex");
  } finally {
    src.close();
    file.close();
  }
}

/** node:crypto alone: 1 MiB reads into one reused buffer, one update each (as verify/ and the sink). */
async function hashOnly(path: string, sameThread: boolean): Promise<string> {
  const f = await Deno.open(path, { read: true });
  try {
    const h = createHash("sha256");
    const buf = new Uint8Array(1024 * 1024);
    for (;;) {
      const n = sameThread ? f.readSync(buf) : await f.read(buf);
      if (n === null) break;
      h.update(buf.subarray(0, n));
    }
    return h.digest("hex");
  } finally {
    f.close();
  }
}

async function hash(mib: number) {
  await Deno.mkdir("/tmp/phase", { recursive: true });
  const dir = await Deno.makeTempDir({ dir: "/tmp/phase", prefix: "bench-hash-" });
  try {
    const src = `${dir}/src`;
    const hex = await writeBig(src, mib);
    const size = mib * 1024 * 1024;
    const t: Record<string, number[]> = {
      openssl: [],
      pipeline: [],
      pipelineSame: [],
      hashOnly: [],
      hashOnlySame: [],
    };
    const loadBefore = load();
    for (let i = 0; i < RUNS; i++) {
      await Deno.remove(`${dir}/dest`).catch(() => {});
      await settle();
      t.openssl.push(
        await timeIt(async () => {
          const r = await sh(["openssl", "dgst", "-sha256", "-r", src]);
          if (!r.stdout.startsWith(hex)) throw new Error("openssl digest differs");
        }),
      );
      for (const same of [false, true]) {
        await Deno.remove(`${dir}/dest`).catch(() => {});
        await settle();
        t[same ? "pipelineSame" : "pipeline"].push(
          await timeIt(async () => {
            if ((await pipeline(src, `${dir}/dest`, same)) !== hex) {
              throw new Error("pipeline digest differs");
            }
          }),
        );
        t[same ? "hashOnlySame" : "hashOnly"].push(
          await timeIt(async () => {
            if ((await hashOnly(src, same)) !== hex) throw new Error("hash digest differs");
          }),
        );
      }
    }
    const o = stats(t.openssl), p = stats(t.pipeline), h = stats(t.hashOnly);
    const ps = stats(t.pipelineSame), hs = stats(t.hashOnlySame);
    const rate = (ms: number) => Math.round(mbs(size, ms));
    console.log(JSON.stringify({
      bench: "hash",
      mib,
      rounds: RUNS,
      load_before: loadBefore,
      load_after: load(),
      openssl_dgst_mb_s: [rate(o.best), rate(o.median)],
      pipeline_hash_write_mb_s: [rate(p.best), rate(p.median)],
      ratio_pipeline_vs_openssl: [+(o.best / p.best).toFixed(2), +(o.median / p.median).toFixed(2)],
      node_crypto_hash_only_mb_s: [rate(h.best), rate(h.median)],
      // The same, read on the hashing thread (as the socket is).
      same_thread_pipeline_mb_s: [rate(ps.best), rate(ps.median)],
      same_thread_ratio_vs_openssl: [
        +(o.best / ps.best).toFixed(2),
        +(o.median / ps.median).toFixed(2),
      ],
      same_thread_hash_only_mb_s: [rate(hs.best), rate(hs.median)],
    }));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Bytes copied per step of the `cores` benchmark (one socket read's worth), in bytes. */
const CORES_CHUNK_BYTES = 256 * 1024;
/** Chunks of the shared ring between the copying and the hashing thread. */
const CORES_SLOTS = 8;
/** Source the chunks are copied from, larger than a core's L2 (as socket data is), in bytes. */
const CORES_SOURCE_BYTES = 64 * 1024 * 1024;

/** The `cores` worker: hashes each ring slot as soon as the main thread marks it filled. */
const CORES_WORKER = `import { createHash } from "node:crypto";
self.onmessage = (e) => {
  const { sab, ctl, chunk, slots, count } = e.data;
  const ring = new Uint8Array(sab);
  const h = createHash("sha256");
  for (let c = 0; c < count; c++) {
    while (Atomics.load(ctl, 0) <= c) Atomics.wait(ctl, 0, Atomics.load(ctl, 0));
    const s = (c % slots) * chunk;
    h.update(ring.subarray(s, s + chunk));
    Atomics.store(ctl, 1, c + 1);
    Atomics.notify(ctl, 1);
  }
  self.postMessage(h.digest("hex"));
};`;

async function cores(mib: number) {
  const total = mib * 1024 * 1024;
  const count = total / CORES_CHUNK_BYTES;
  const source = new Uint8Array(CORES_SOURCE_BYTES);
  crypto.getRandomValues(source.subarray(0, 65536));
  for (let o = 65536; o < source.length; o += 65536) source.copyWithin(o, 0, 65536);
  const at = (i: number) => (i * CORES_CHUNK_BYTES) % source.length;
  const t: Record<string, number[]> = { hot: [], same: [], cross: [] };
  let expect = "";
  for (let r = 0; r < RUNS; r++) {
    // The hash alone, over one buffer that stays in the cache.
    t.hot.push(
      await timeIt(() => {
        const h = createHash("sha256");
        const b = source.subarray(0, CORES_CHUNK_BYTES);
        for (let i = 0; i < count; i++) h.update(b);
        h.digest();
        return Promise.resolve();
      }),
    );
    // Copy a chunk (as a socket read does), hash it on the same thread.
    t.same.push(
      await timeIt(() => {
        const h = createHash("sha256");
        const b = new Uint8Array(CORES_CHUNK_BYTES);
        for (let i = 0; i < count; i++) {
          b.set(source.subarray(at(i), at(i) + CORES_CHUNK_BYTES));
          h.update(b);
        }
        expect = h.digest("hex");
        return Promise.resolve();
      }),
    );
    // Copy on this thread into a shared ring, hash in a worker right after.
    const sab = new SharedArrayBuffer(CORES_CHUNK_BYTES * CORES_SLOTS);
    const ctl = new Int32Array(new SharedArrayBuffer(8)); // [filled, hashed]
    const ring = new Uint8Array(sab);
    const url = URL.createObjectURL(new Blob([CORES_WORKER], { type: "text/javascript" }));
    const w = new Worker(url, { type: "module", deno: { permissions: "none" } } as WorkerOptions);
    const done = new Promise<string>((res) => (w.onmessage = (e) => res(e.data)));
    // Started and idle before the clock starts.
    await new Promise((res) => setTimeout(res, 200));
    t.cross.push(
      await timeIt(async () => {
        w.postMessage({ sab, ctl, chunk: CORES_CHUNK_BYTES, slots: CORES_SLOTS, count });
        for (let i = 0; i < count; i++) {
          while (i - Atomics.load(ctl, 1) >= CORES_SLOTS) {
            await Atomics.waitAsync(ctl, 1, Atomics.load(ctl, 1)).value;
          }
          ring.set(
            source.subarray(at(i), at(i) + CORES_CHUNK_BYTES),
            (i % CORES_SLOTS) * CORES_CHUNK_BYTES,
          );
          Atomics.store(ctl, 0, i + 1);
          Atomics.notify(ctl, 0);
        }
        if ((await done) !== expect) throw new Error("worker digest differs");
      }),
    );
    w.terminate();
    URL.revokeObjectURL(url);
  }
  const rate = (ms: number) => Math.round(mbs(total, ms));
  const row = (ms: number[]) => [rate(stats(ms).best), rate(stats(ms).median)];
  console.log(JSON.stringify({
    bench: "cores",
    mib,
    chunk_bytes: CORES_CHUNK_BYTES,
    load: load(),
    hash_hot_buffer_mb_s: row(t.hot),
    copy_then_hash_same_thread_mb_s: row(t.same),
    copy_here_hash_in_worker_mb_s: row(t.cross),
  }));
}

async function providers(mib: number) {
  const env = await setup(mib);
  const port = Number(new URL(env.url).port);
  const rate = RATE_MB_S * 1e6;
  // The proxies run in their own process, so they do not compete with the
  // fetcher's event loop (only for the CPU, like a real remote provider would not).
  const proxyProc = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-q",
      "--no-prompt",
      "-P=test",
      new URL(import.meta.url).pathname,
      "proxy",
      String(port),
      String(rate),
      "4",
    ],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = proxyProc.stdout.getReader();
  let line = "";
  while (!line.includes("\n")) {
    const { done, value } = await reader.read();
    if (done) break;
    line += new TextDecoder().decode(value);
  }
  reader.releaseLock();
  const proxies = (JSON.parse(line) as number[]).map((p) => ({ port: p }));
  try {
    const rows = [];
    let single = 0;
    for (let n = 1; n <= 4; n++) {
      const sources = proxies.slice(0, n).map((p) => {
        const origin = `http://127.0.0.1:${p.port}`;
        return { id: origin, urls: [`${origin}/cas/sha256/${env.hex}`] };
      });
      const ms = await best(() => phaseDownload(env, sources, `${env.dir}/cache`, true));
      const rateMb = mbs(env.size, ms);
      if (n === 1) single = rateMb;
      rows.push({
        providers: n,
        mb_s: Math.round(rateMb),
        x_single: +(rateMb / single).toFixed(2),
        goal: +(0.8 * n).toFixed(1),
      });
    }
    console.log(
      JSON.stringify({ bench: "providers", mib, rate_per_provider_mb_s: RATE_MB_S, rows }),
    );
  } finally {
    proxyProc.kill("SIGTERM");
    await proxyProc.status;
    await proxyProc.stdout.cancel().catch(() => {});
    await stopServe(env.prov.child);
    await Deno.remove(env.dir, { recursive: true });
  }
}

async function rss(mib: number) {
  const env = await setup(mib);
  try {
    // The task's command line, whether deno.json writes it as a string or as { command, description }.
    const task = rawTasks().fetch;
    const argv = task.split(/\s+/);
    const r = await sh([
      "/usr/bin/time",
      "-v",
      Deno.execPath(),
      ...argv.slice(1).map((a) => (a.endsWith(".ts") ? `${REPO}/${a}` : a)),
      "--manifest",
      `${env.url}/stable/amd64/manifest.json`,
      "--trust",
      `${env.dir}/state/trust.json`,
      "--cache",
      `${env.dir}/cache`,
      "--artifact",
      "rootfs",
    ]);
    const kb = Number(/Maximum resident set size \(kbytes\): (\d+)/.exec(r.stderr)?.[1]);
    const wall = /Elapsed \(wall clock\) time[^:]*: (\S+)/.exec(r.stderr)?.[1];
    console.log(
      JSON.stringify({
        bench: "rss",
        mib,
        peak_rss_mib: +(kb / 1024).toFixed(1),
        wall,
        ok: JSON.parse(r.stdout).ok,
      }),
    );
  } finally {
    await stopServe(env.prov.child);
    await Deno.remove(env.dir, { recursive: true });
  }
}

if (import.meta.main && Deno.args[0] === "proxy") {
  const [, target, rate, count] = Deno.args;
  const ps = Array.from(
    { length: Number(count) },
    () => throttlingProxy(Number(target), Number(rate), { burstMs: 100, bufferBytes: 16 * 1024 }),
  );
  console.log(JSON.stringify(ps.map((p) => p.port)));
  await new Promise<void>((r) => Deno.addSignalListener("SIGTERM", () => r()));
  for (const p of ps) p.close();
  Deno.exit(0);
}

if (import.meta.main) {
  const [what = "all", size] = Deno.args;
  if (what === "stream" || what === "all") await stream(Number(size ?? 512));
  if (what === "hash" || what === "all") await hash(Number(size ?? 512));
  if (what === "providers" || what === "all") await providers(Number(size ?? 128));
  if (what === "rss" || what === "all") await rss(Number(size ?? 2048));
  if (what === "cores" || what === "all") await cores(Number(size ?? 512));
  Deno.exit(0);
}
