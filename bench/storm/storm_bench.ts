/**
 * Boot-storm benchmark (issue 12 §4): N clients fetch a 64 MiB signed
 * release from one origin provider whose downstream is throttled to
 * 40 MB/s by this script's bench-only proxy (all clients share it).
 *
 * - Run 1: origin only.
 * - Run 2: each client, once its release is verified in its cache, starts
 *   a re-serving provider on it (`startProvider({ fromCache })`, the code
 *   behind `serve --from-cache`) and is announced; later clients fetch from
 *   the announced peers (ranged requests spread over them) and use the
 *   origin only while fewer than 2 peers exist. During its download a
 *   client re-discovers (`fetchRelease({ rediscover })`, every
 *   REDISCOVER_INTERVAL_MS) and moves the segments not yet fetched to peers
 *   that appeared meanwhile.
 *
 * Everything is real HTTP on loopback with the real fetcher and providers,
 * in this one process (2 shared cores: 20 processes would measure Deno's
 * start-up). The announcement is the harness's list of verified peers: it
 * stands in for the mDNS/DHT answers (tested in client/selfhost_test.ts),
 * so the figures measure the data plane. Clients arrive every ARRIVAL_MS.
 * Bounded: each run stops after RUN_TIMEOUT_MS.
 *
 * The origin caps its concurrent downloads (ORIGIN_MAX_DOWNLOADS, the
 * provider's `--max-downloads`) in both runs; a refused client waits the
 * bounded Retry-After or, in run 2, uses peers.
 *
 *   deno run -q --no-prompt -P=test bench/storm/storm_bench.ts [N] [MAX_DOWNLOADS]
 *
 * @module
 */
import { fetchRelease } from "../../client/mod.ts";
import { startProvider } from "../../provider/mod.ts";
import type { RunningProvider } from "../../provider/mod.ts";
import { patternBytes, releaseKey, signFixture, tempDir } from "../../testing/mod.ts";
import { loadTrust, type Trust } from "../../verify/mod.ts";
import { throttlingProxy } from "../throttle.ts";

/** Origin downstream rate, in bytes/s (40 MB/s). */
export const ORIGIN_RATE_BYTES_PER_S = 40_000_000;
/** Release size: kernel + initramfs, in bytes (64 MiB). */
export const RELEASE_BYTES = 64 * 1024 * 1024;
/** Time between two clients' arrivals, in ms. */
export const ARRIVAL_MS = 400;
/** Most peers one client is given (the newest announced). */
export const MAX_PEERS_PER_CLIENT = 4;
/**
 * The origin's download cap (`serve --max-downloads`), the same in both
 * runs: beyond it a download gets `503` + `Retry-After`, so the first
 * clients finish at full rate (and, in run 2, become peers sooner) while
 * the others wait or use peers. Second argument overrides it.
 */
export const ORIGIN_MAX_DOWNLOADS = 2;
/** A run that takes longer is stopped and reported as failed, in ms. */
export const RUN_TIMEOUT_MS = 240_000;

const SILENT = { info() {}, warn() {}, error() {} };
/** STORM_DEBUG=1: the clients' log events on stderr, with their time. */
const DEBUG = Deno.env.get("STORM_DEBUG") === "1";
const T0 = performance.now();
function debug(i: number, event: string, fields?: Record<string, unknown>): void {
  const t = ((performance.now() - T0) / 1000).toFixed(2);
  console.error(`${t} c${i} ${event} ${JSON.stringify(fields ?? {}).slice(0, 200)}`);
}

interface RunResult {
  run: string;
  clients: number;
  seconds: number;
  origin_bytes: number;
  origin_mb: number;
  from_peers_only: number;
  /** When the first client held the verified release, in s from the start. */
  first_verified_s: number;
  /** Seconds from the start at which each client held the verified release, by arrival. */
  done_s: number[];
  /** Clients whose download took on peers found by re-discovery. */
  moved_to_peers: number;
  ok: boolean;
  error?: string;
}

async function oneRun(
  name: string,
  n: number,
  reServe: boolean,
  env: { dir: string; originUrl: string; trust: Trust; trustPath: string },
): Promise<RunResult> {
  const proxy = throttlingProxy(
    Number(new URL(env.originUrl).port),
    ORIGIN_RATE_BYTES_PER_S,
    { burstMs: 50, bufferBytes: 64 * 1024 },
  );
  const peers: RunningProvider[] = [];
  let peersOnly = 0;
  const moved = new Set<number>();
  let firstVerified: number | undefined;
  const doneAt: number[] = [];
  const t0 = performance.now();
  const client = async (i: number) => {
    await new Promise((r) => setTimeout(r, i * ARRIVAL_MS));
    const cacheDir = `${env.dir}/${name}/c${i}`;
    // The newest announced peers (hints, as mDNS answers would be).
    const announced = () => reServe ? peers.slice(-MAX_PEERS_PER_CLIENT).map((p) => p.url) : [];
    const known = announced();
    // The origin is used only while fewer than 2 peers are known.
    const sources = known.length >= 2 ? known : [...known, proxy.url];
    const urls = sources.map((u) => `${u}/stable/amd64/manifest.json`);
    await fetchRelease({
      manifestUrl: urls[0],
      mirrors: urls.slice(1),
      trust: env.trust,
      cacheDir,
      logger: {
        ...SILENT,
        info(event, fields) {
          if (event === "sequential_cut" || event === "source_added") moved.add(i);
          if (DEBUG) debug(i, event, fields);
        },
        warn(event, fields) {
          if (DEBUG) debug(i, event, fields);
        },
      },
      // The client's own re-discovery (client/fetch.ts): every
      // REDISCOVER_INTERVAL_MS it asks again and moves the segments not
      // yet fetched to peers that appeared meanwhile.
      rediscover: reServe ? { find: () => Promise.resolve(announced()) } : undefined,
    });
    firstVerified ??= performance.now() - t0;
    doneAt[i] = +((performance.now() - t0) / 1000).toFixed(1);
    if (known.length >= 2) peersOnly++;
    if (reServe) {
      peers.push(
        await startProvider({
          root: cacheDir,
          fromCache: cacheDir,
          state: `${env.dir}/${name}/s${i}`,
          port: 0,
          sign: false,
          trustPath: env.trustPath,
          mdns: false,
          dht: false,
          watch: false,
          snapshot: false,
          logger: SILENT,
        }),
      );
    }
  };
  let timer: ReturnType<typeof setTimeout> | undefined;
  let error: string | undefined;
  try {
    await Promise.race([
      Promise.all(Array.from({ length: n }, (_, i) => client(i))),
      new Promise((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`run stopped after ${RUN_TIMEOUT_MS} ms`)),
          RUN_TIMEOUT_MS,
        );
      }),
    ]);
  } catch (err) {
    error = (err as Error).message;
  } finally {
    clearTimeout(timer);
  }
  const seconds = (performance.now() - t0) / 1000;
  const origin = proxy.bytes();
  proxy.close();
  for (const p of peers) await p.close();
  await Deno.remove(`${env.dir}/${name}`, { recursive: true }).catch(() => {});
  return {
    run: name,
    clients: n,
    seconds: +seconds.toFixed(2),
    origin_bytes: origin,
    origin_mb: +(origin / 1e6).toFixed(1),
    from_peers_only: peersOnly,
    first_verified_s: +((firstVerified ?? NaN) / 1000).toFixed(2),
    moved_to_peers: moved.size,
    done_s: doneAt,
    ok: error === undefined,
    ...(error ? { error } : {}),
  };
}

function load(): number {
  return +Deno.loadavg()[0].toFixed(2);
}

if (import.meta.main) {
  const n = Number(Deno.args[0] ?? 20);
  const maxDownloads = Number(Deno.args[1] ?? ORIGIN_MAX_DOWNLOADS);
  const dir = await tempDir("storm");
  try {
    const { key, trustPath } = await releaseKey(`${dir}/keys`);
    const rel = `${dir}/root/stable/amd64`;
    await Deno.mkdir(rel, { recursive: true });
    await Deno.writeFile(`${rel}/kernel`, patternBytes(RELEASE_BYTES - 8 * 1024 * 1024, 3));
    await Deno.writeFile(`${rel}/initramfs`, patternBytes(8 * 1024 * 1024, 4));
    await signFixture(`${dir}/root`, key);
    const trust = await loadTrust(trustPath);
    const origin = await startProvider({
      root: `${dir}/root`,
      state: `${dir}/origin`,
      port: 0,
      sign: false,
      trustPath,
      mdns: false,
      dht: false,
      watch: false,
      maxDownloads,
      logger: SILENT,
    });
    const env = { dir, originUrl: origin.url, trust, trustPath };
    const before = load();
    console.log(JSON.stringify({ origin_max_downloads: maxDownloads }));
    const r1 = await oneRun("run1-origin-only", n, false, env);
    const refused1 = origin.metrics.refusedDownloads;
    console.log(
      JSON.stringify({ ...r1, refused: refused1, load_before: before, load_after: load() }),
    );
    const mid = load();
    const r2 = await oneRun("run2-peers", n, true, env);
    console.log(JSON.stringify({
      ...r2,
      refused: origin.metrics.refusedDownloads - refused1,
      load_before: mid,
      load_after: load(),
    }));
    console.log(JSON.stringify({
      speedup: +(r1.seconds / r2.seconds).toFixed(2),
      origin_share: +(r2.origin_bytes / r1.origin_bytes).toFixed(3),
      goal: "speedup >= 3, origin_share <= 0.40",
    }));
    await origin.close();
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
  Deno.exit(0);
}
