/**
 * The pull-through LAN cache (`serve --mirror URL`): releases are fetched
 * from an upstream provider by the client's verified fetcher
 * (client/mod.ts `fetchRelease`: signature, expiry, rollback floor,
 * digests) into the cache the provider re-serves (`--from-cache`), again
 * every refresh interval. The upstream's listing only names what to ask
 * for; nothing it says is trusted. Private to provider/.
 *
 * @module
 */
import type { Logger } from "../core/mod.ts";
import { fetchRelease } from "../client/mod.ts";
import { DEFAULT_LIMITS, fetchCapped } from "../net/mod.ts";
import { canonicalArch, isChannel, type Trust } from "../verify/mod.ts";

/** Default time between two refreshes from the upstream, in ms (5 min). */
export const MIRROR_REFRESH_INTERVAL_MS = 5 * 60_000;
/** Shortest refresh interval accepted, in ms (an upstream is not a thing to hammer). */
export const MIN_MIRROR_REFRESH_MS = 1_000;
/** Largest upstream listing (`GET /`) read, in bytes. */
export const MAX_MIRROR_INDEX_BYTES = 1024 * 1024;
/** Most releases (channel/arch) mirrored from one upstream. */
export const MAX_MIRROR_RELEASES = 16;
/** Longest a stop waits for a refresh in progress, in ms (then the process exit cuts it). */
export const MIRROR_STOP_WAIT_MS = 2_000;

/** What a mirror pulls and where it puts it. */
export interface MirrorOptions {
  /** The upstream: a provider's base URL, or one manifest URL (`.../manifest.json`). */
  readonly upstream: string;
  /** The cache the provider re-serves. */
  readonly cacheDir: string;
  /** The release trust file the fetcher verifies against. */
  readonly trust: Trust;
  /** Time between refreshes, in ms; default {@link MIRROR_REFRESH_INTERVAL_MS}. */
  readonly intervalMs?: number;
  /** Events: each release fetched or refused. */
  readonly logger: Logger;
  /** Called after a refresh that fetched something (the provider rescans its cache). */
  readonly onFetched: () => Promise<unknown>;
}

/** A running mirror loop. */
export interface Mirror {
  /** Runs one refresh now (joins the one running); resolves with the releases fetched. */
  refresh(): Promise<number>;
  /** Stops the loop; waits at most {@link MIRROR_STOP_WAIT_MS} for a refresh in progress. */
  stop(): Promise<void>;
}

/** Channel/arch pairs the upstream lists (hints: each is verified when fetched). */
async function upstreamReleases(upstream: string, logger: Logger): Promise<string[]> {
  const u = new URL(upstream);
  if (u.pathname.endsWith("/manifest.json")) return [u.href];
  const base = u.href.endsWith("/") ? u.href : u.href + "/";
  const { bytes } = await fetchCapped(base, MAX_MIRROR_INDEX_BYTES, {
    limits: DEFAULT_LIMITS,
    logger,
    accept: "application/json",
  });
  const doc = JSON.parse(new TextDecoder().decode(bytes));
  const out: string[] = [];
  for (const c of Array.isArray(doc?.channels) ? doc.channels : []) {
    if (out.length >= MAX_MIRROR_RELEASES) break;
    const channel = String(c?.channel);
    const arch = canonicalArch(String(c?.arch));
    // TM-10: names from the network become URL path segments only when they are plain names.
    if (!isChannel(channel) || !arch) continue;
    out.push(new URL(`${channel}/${arch}/manifest.json`, base).href);
  }
  return out;
}

/** Starts the refresh loop: one refresh at once, then one every interval. */
export function startMirror(o: MirrorOptions): Mirror {
  const interval = Math.max(o.intervalMs ?? MIRROR_REFRESH_INTERVAL_MS, MIN_MIRROR_REFRESH_MS);
  let stopped = false;
  let running: Promise<number> | undefined;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const versions = new Map<string, string>();

  const once = async (): Promise<number> => {
    let fetched = 0;
    let urls: string[];
    try {
      urls = await upstreamReleases(o.upstream, o.logger);
    } catch (err) {
      o.logger.warn("mirror_upstream_failed", {
        upstream: o.upstream,
        code: (err as { code?: string }).code,
        error: (err as Error).message,
      });
      return 0;
    }
    for (const manifestUrl of urls) {
      if (stopped) break;
      try {
        // The same verified fetcher as a booting client (TM-01, TM-02, TM-03).
        const r = await fetchRelease({
          manifestUrl,
          trust: o.trust,
          cacheDir: o.cacheDir,
          logger: o.logger,
        });
        const m = r.verified.value;
        const key = `${m.channel}/${m.arch}`;
        if (versions.get(key) !== m.version) {
          versions.set(key, m.version);
          fetched++;
          o.logger.info("mirror_fetched", {
            url: manifestUrl,
            channel: m.channel,
            arch: m.arch,
            version: m.version,
          });
        }
      } catch (err) {
        o.logger.warn("mirror_fetch_failed", {
          url: manifestUrl,
          code: (err as { code?: string }).code,
          error: (err as Error).message,
        });
      }
    }
    if (fetched > 0) await o.onFetched().catch(() => {});
    return fetched;
  };
  const refresh = (): Promise<number> =>
    running ??= once().finally(() => {
      running = undefined;
    });
  const loop = () => {
    if (stopped) return;
    void refresh().finally(() => {
      if (!stopped) timer = setTimeout(loop, interval);
    });
  };
  loop();
  return {
    refresh,
    async stop() {
      stopped = true;
      clearTimeout(timer);
      if (running) {
        let t: ReturnType<typeof setTimeout> | undefined;
        await Promise.race([
          running.catch(() => {}),
          new Promise((r) => t = setTimeout(r, MIRROR_STOP_WAIT_MS)),
        ]);
        clearTimeout(t);
      }
    },
  };
}
