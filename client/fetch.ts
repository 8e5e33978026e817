/**
 * Fetching a verified release: the manifest first, capped and
 * verified through verify/ before any artifact is requested, then every
 * artifact into the content-addressed cache with failover across mirrors,
 * providers and IPFS gateways. Returns only when every artifact is in the
 * cache and hashed to its digest; then raises the rollback floor.
 *
 * @module
 */
import type { Logger } from "../core/mod.ts";
import {
  digestOfRawCid,
  enforceFloor,
  type FloorChange,
  type Manifest,
  MAX_MANIFEST_BYTES,
  MAX_RECORD_BYTES,
  rawCid,
  rawCidFromDigest,
  recordFloor,
  sha256Hex,
  type Trust,
  type Verified,
  VerifyError,
  verifyManifest,
  verifyRecord,
} from "../verify/mod.ts";
import { type CacheLayout, cacheLayout, digestHex, ensureCache, syncDir } from "./cache.ts";
import { type ArtifactSource, downloadArtifact, type MoreSources } from "./download.ts";
import { ClientError } from "./errors.ts";
import {
  DEFAULT_LIMITS,
  fetchCapped,
  type FetchFn,
  httpUrlHint,
  type TransferLimits,
} from "../net/mod.ts";
import { type Progress, silentProgress } from "./progress.ts";
import { resolveTrust, type TrustChainOptions } from "./trust.ts";

/** What to fetch and where from. */
export interface FetchReleaseOptions {
  /** The manifest URL (e.g. http://host:8080/stable/amd64/manifest.json). */
  readonly manifestUrl?: string;
  /** Other URLs of the same manifest; artifacts resolve relative to each. */
  readonly mirrors?: readonly string[];
  /** Base URLs of Phase providers, asked for /cas/sha256/<hex> and /ipfs/<cid>. */
  readonly providers?: readonly string[];
  /** IPFS trustless gateways (base URLs), the fallback after HTTP sources. */
  readonly gateways?: readonly string[];
  /** The manifest's CID (from discovery): lets gateways serve the manifest too. */
  readonly manifestCid?: string;
  /**
   * The trust file: the manifest must carry its threshold of signatures.
   * With {@link FetchReleaseOptions.trustChain} it is the device's pinned
   * trust, and the newest version reachable from it applies instead.
   */
  readonly trust: Trust;
  /**
   * Walk the trust chain from `trust` before the manifest is verified
   * (formats.md §1.1, TM-09): `/trust/<version>.json` from the release's
   * sources, each step verified. None: `trust` applies as given.
   */
  readonly trustChain?: TrustChainOptions;
  /** The cache root (a tmpfs root in private mode). */
  readonly cacheDir: string;
  /** Channel the manifest must name (default: any). */
  readonly channel?: string;
  /** Arch the manifest must name (default: any). */
  readonly arch?: string;
  /** Lowest version accepted, on top of the rollback floor kept in the cache. */
  readonly minVersion?: string;
  /** Only these artifacts (default: all in the manifest). */
  readonly artifacts?: readonly string[];
  /**
   * Digests (`sha256:<hex>`) of bytes this machine already holds outside
   * the cache: a USB seed's partition is the release's `rootfs` (issue 17).
   * An artifact whose signed digest is one of these is neither downloaded
   * nor reported; whoever uses those bytes hashes them against the signed
   * digest first (the target's self-host block, TM-01).
   */
  readonly have?: readonly string[];
  /** Clock for the manifest's expiry (default: now). */
  readonly now?: () => Date;
  /** Header, stall and minimum-rate limits of every request (default `DEFAULT_LIMITS`). */
  readonly limits?: TransferLimits;
  /**
   * The fetch used (default: the global `fetch` for the manifest, the raw
   * HTTP/1.1 client for artifacts; over Tor: `socksFetch`).
   */
  readonly fetchFn?: FetchFn;
  /** Structured log of verified and rejected manifests, artifacts and failovers. */
  readonly logger?: Logger;
  /** Progress of each artifact (default: none; see `progressReporter`). */
  readonly progress?: Progress;
  /**
   * Download one artifact from several providers at once when more than
   * one is known (default true).
   */
  readonly parallel?: boolean;
  /** Size of one ranged segment of a parallel download, in bytes (default 4 MiB). */
  readonly segmentBytes?: number;
  /** Smallest remainder worth splitting across providers, in bytes (default 16 MiB). */
  readonly parallelMinBytes?: number;
  /**
   * Called before each write into `cacheDir` (the private mode passes
   * `checkPrivateTree`, TM-13); a throw stops the fetch.
   */
  readonly beforeWrite?: () => Promise<void>;
  /**
   * Also fetch the signed `record.json` beside an HTTP manifest and keep it
   * in the cache when it verifies under the trust file and names this
   * manifest (default true), so a re-serving provider (`serve --from-cache`)
   * can serve it as signed. A missing or bad record never fails the fetch.
   */
  readonly keepRecord?: boolean;
  /**
   * Re-discovery while artifacts download (issue 12 §4, a boot storm):
   * peers that verified this release and re-serve it appear during a long
   * download from a slow origin; they are asked for the segments not yet
   * fetched. Hints like every source (TM-07, TM-08): the whole artifact is
   * still checked against its digest before it enters cas/, and a peer
   * that sends wrong bytes is dropped for the rest of the run.
   */
  readonly rediscover?: Rediscover;
}

/** Looks for more providers of a verified release while it downloads. */
export interface Rediscover {
  /**
   * HTTP base URLs of providers claiming the release whose manifest has
   * this CID (raw sha2-256 CIDv1), e.g. from mDNS or DHT provider records
   * (`discoverProviders` in client/discover.ts builds one from discovery).
   * Called every `intervalMs` while the fetch runs; a call still running
   * after {@link REDISCOVER_TIMEOUT_MS} is abandoned (`signal` aborts).
   */
  find(manifestCid: string, signal: AbortSignal): Promise<readonly string[]>;
  /** Time between two calls, in milliseconds (default {@link REDISCOVER_INTERVAL_MS}). */
  readonly intervalMs?: number;
}

/** Time between two re-discoveries during a download, in milliseconds. */
export const REDISCOVER_INTERVAL_MS = 1_000;
/** Time one re-discovery may take, in milliseconds. */
export const REDISCOVER_TIMEOUT_MS = 3_000;
/** Most providers re-discovery keeps (TM-08: a flood of answers is bounded). */
export const MAX_REDISCOVERED = 32;

/**
 * The re-discovery loop of one fetch: calls `find` on its interval until
 * stopped, keeps the HTTP base URLs found (at most MAX_REDISCOVERED) and
 * wakes the downloads when the list grows.
 */
class Rediscovery {
  readonly #found: string[] = [];
  readonly #stop = new AbortController();
  #wake: () => void = () => {};
  #changed: Promise<void>;

  constructor(r: Rediscover, cid: string, logger?: Logger) {
    this.#changed = new Promise<void>((res) => (this.#wake = res));
    const interval = Math.max(10, r.intervalMs ?? REDISCOVER_INTERVAL_MS);
    const stop = this.#stop.signal;
    const stopped = new Promise<void>((res) => stop.addEventListener("abort", () => res()));
    (async () => {
      while (!stop.aborted) {
        let t: ReturnType<typeof setTimeout> | undefined;
        await Promise.race([new Promise<void>((res) => (t = setTimeout(res, interval))), stopped]);
        clearTimeout(t);
        if (stop.aborted) return;
        const signal = AbortSignal.any([stop, AbortSignal.timeout(REDISCOVER_TIMEOUT_MS)]);
        let urls: readonly string[] = [];
        try {
          urls = await Promise.race([
            r.find(cid, signal),
            new Promise<never>((_, reject) =>
              signal.addEventListener("abort", () => reject(new Error("timed out")), {
                once: true,
              })
            ),
          ]);
        } catch (err) {
          logger?.warn("rediscovery_failed", { error: (err as Error).message });
          continue;
        }
        let grew = false;
        for (const u of urls) {
          if (this.#found.length >= MAX_REDISCOVERED) break;
          let url: URL;
          try {
            url = new URL(u);
          } catch {
            continue;
          }
          if (url.protocol !== "http:" && url.protocol !== "https:") continue;
          if (this.#found.includes(url.href)) continue;
          this.#found.push(url.href);
          grew = true;
          logger?.info("provider_rediscovered", { url: url.href, threat: "TM-07" });
        }
        if (grew) {
          const w = this.#wake;
          this.#changed = new Promise<void>((res) => (this.#wake = res));
          w();
        }
      }
    })();
  }

  /** The sources of one artifact among the providers found so far. */
  sourcesFor(hex: string): MoreSources {
    return {
      list: () =>
        this.#found.map((b) => ({
          id: new URL(b).origin,
          urls: [new URL(`cas/sha256/${hex}`, base(b)).href],
          kind: "http" as const,
        })),
      changed: () => this.#changed,
    };
  }

  stop(): void {
    this.#stop.abort();
  }
}

/** One artifact in the cache. */
export interface FetchedArtifact {
  /** Its file, `<cache>/cas/sha256/<hex>`. */
  readonly path: string;
  /** `sha256:<hex>`, as the manifest names it. */
  readonly digest: string;
  /** Its size, in bytes. */
  readonly size: number;
  /** True when it was already in the cache (re-hashed, not downloaded). */
  readonly cached: boolean;
  /** The sources (origins) that sent its bytes. */
  readonly sources: readonly string[];
}

/** A release whose every artifact is in the cache and verified. */
export interface FetchedRelease {
  /** The manifest, verified against the trust file. */
  readonly verified: Verified<Manifest>;
  /** Where the verified manifest bytes came from. */
  readonly manifestSource: string;
  /** The manifest bytes, content-addressed in the cache. */
  readonly manifestPath: string;
  /** Each fetched artifact by name. */
  readonly artifacts: Readonly<Record<string, FetchedArtifact>>;
  /** The cache it is in. */
  readonly layout: CacheLayout;
  /** The rollback floor of its channel/arch before and after this fetch (TM-02). */
  readonly floor: FloorChange;
  /** The signed record kept in the cache (`<cache>/cas/sha256/<hex>`), when there was one. */
  readonly recordPath?: string;
  /** Sources dropped during this run because they sent bytes that did not verify (TM-01). */
  readonly dropped: readonly string[];
}

const ACCEPT_RAW = "application/vnd.ipld.raw, application/octet-stream;q=0.9";

function checkHttpUrl(u: string, what: string): URL {
  let url: URL;
  try {
    url = new URL(u);
  } catch {
    throw new ClientError("E_FETCH", `${what} '${u}' is not a URL`, { hint: httpUrlHint(u) });
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new ClientError("E_FETCH", `${what} '${u}' must be http(s)`, { hint: httpUrlHint(u) });
  }
  return url;
}

function base(u: string): string {
  return u.endsWith("/") ? u : u + "/";
}

/** Where a manifest may be fetched, in order. */
function manifestCandidates(o: FetchReleaseOptions): { url: string; cid?: string }[] {
  const out: { url: string; cid?: string }[] = [];
  for (const u of [o.manifestUrl, ...(o.mirrors ?? [])]) {
    if (u) out.push({ url: checkHttpUrl(u, "manifest URL").href });
  }
  if (o.manifestCid) {
    if (!digestOfRawCid(o.manifestCid)) {
      throw new ClientError(
        "E_FETCH",
        `'${o.manifestCid}' is not a raw sha2-256 CIDv1 (bafkrei...)`,
      );
    }
    for (const b of [...(o.providers ?? []), ...(o.gateways ?? [])]) {
      out.push({
        url:
          new URL(`ipfs/${o.manifestCid}?format=raw`, base(checkHttpUrl(b, "gateway").href)).href,
        cid: o.manifestCid,
      });
    }
  }
  return out;
}

/**
 * Fetches and verifies the manifest: the first candidate that verifies
 * wins. Verification runs on the exact bytes received, capped at
 * MAX_MANIFEST_BYTES (TM-05), before any artifact request (TM-01).
 */
export async function fetchManifest(
  o: FetchReleaseOptions,
  layout: CacheLayout,
): Promise<{ verified: Verified<Manifest>; source: string; bytes: Uint8Array }> {
  const candidates = manifestCandidates(o);
  if (candidates.length === 0) {
    throw new ClientError("E_FETCH", "no manifest URL, mirror or CID to fetch from", {
      hint: "pass --manifest URL (or run 'deno task discover' first)",
    });
  }
  const now = o.now?.() ?? new Date();
  let firstVerifyError: VerifyError | undefined;
  const errors: string[] = [];
  // What the sources' own errors suggest (a refused connection: is the provider running?).
  const hints: string[] = [];
  for (const c of candidates) {
    try {
      const { bytes, url } = await fetchCapped(c.url, MAX_MANIFEST_BYTES, {
        limits: o.limits ?? DEFAULT_LIMITS,
        fetchFn: o.fetchFn,
        logger: o.logger,
        accept: c.cid ? ACCEPT_RAW : "application/json",
      });
      if (c.cid) {
        // A trustless gateway proves nothing by itself: the bytes must hash
        // to the digest inside the CID, and then the signature must hold.
        const want = digestOfRawCid(c.cid);
        const got = sha256Hex(bytes);
        if (got !== want) {
          throw new VerifyError("E_DIGEST", `${c.url}: bytes do not match CID ${c.cid} (TM-01)`);
        }
      }
      const base = { channel: o.channel, arch: o.arch, now, minVersion: o.minVersion };
      const verified = verifyManifest(bytes, o.trust, base);
      // TM-02: the floor of what the manifest IS; the refusal names the floor file.
      await enforceFloor(layout.stateDir, verified);
      o.logger?.info("manifest_verified", {
        url,
        version: verified.value.version,
        channel: verified.value.channel,
        arch: verified.value.arch,
        signers: verified.signers,
      });
      return { verified, source: url, bytes };
    } catch (err) {
      const message = (err as Error).message;
      errors.push(message.startsWith(c.url) ? message : `${c.url}: ${message}`);
      const hint = (err as { hint?: unknown }).hint;
      if (typeof hint === "string" && !hints.includes(hint)) hints.push(hint);
      o.logger?.warn("manifest_rejected", {
        url: c.url,
        code: (err as { code?: string }).code,
        error: (err as Error).message,
      });
      if (err instanceof VerifyError && !firstVerifyError) firstVerifyError = err;
    }
  }
  // A verification failure says more than "unreachable": report it (and its exit code).
  if (firstVerifyError) throw firstVerifyError;
  throw new ClientError("E_FETCH", `no manifest could be fetched: ${errors.join("; ")}`, {
    hint: [...hints, "check the URL, or give another mirror with --mirror"].join("; "),
  });
}

/** Origins that may serve the trust chain: the manifest's, its mirrors', the providers'. */
function trustOrigins(o: FetchReleaseOptions): string[] {
  const out: string[] = [];
  for (const u of [o.manifestUrl, ...(o.mirrors ?? []), ...(o.providers ?? [])]) {
    if (!u) continue;
    const origin = checkHttpUrl(u, "source").origin;
    if (!out.includes(origin)) out.push(origin);
  }
  return out;
}

/** The sources of one artifact, in failover order. */
export function artifactSources(
  o: FetchReleaseOptions,
  name: string,
  digest: string,
  manifestSource: string,
): ArtifactSource[] {
  const hex = digestHex(digest);
  const byId = new Map<string, string[]>();
  const add = (id: string, url: string) => {
    const list = byId.get(id) ?? [];
    if (!list.includes(url)) list.push(url);
    byId.set(id, list);
  };
  const manifestUrls = [manifestSource, o.manifestUrl, ...(o.mirrors ?? [])].filter((
    u,
  ): u is string => !!u && !u.includes("/ipfs/"));
  for (const u of manifestUrls) {
    const url = checkHttpUrl(u, "mirror");
    add(url.origin, new URL(`/cas/sha256/${hex}`, url.origin).href);
    // TM-10: names match [a-z0-9][a-z0-9._-]* (verify/), so this stays beside the manifest.
    add(url.origin, new URL(name, url).href);
  }
  for (const p of o.providers ?? []) {
    const url = checkHttpUrl(p, "provider");
    add(url.origin, new URL(`cas/sha256/${hex}`, base(url.href)).href);
  }
  const sources: ArtifactSource[] = [...byId].map(([id, urls]) => ({
    id,
    urls,
    kind: "http" as const,
  }));
  // IPFS: every Phase provider is a trustless gateway for what it serves,
  // then the configured gateways. The CID is the artifact's own digest.
  const cid = rawCidFromDigest(hexBytes(hex));
  const ipfsBases = [...byId.keys()].map((origin) => origin + "/").concat(
    (o.gateways ?? []).map((g) => base(checkHttpUrl(g, "gateway").href)),
  );
  for (const b of [...new Set(ipfsBases)]) {
    sources.push({
      id: `ipfs:${b}`,
      urls: [new URL(`ipfs/${cid}?format=raw`, b).href],
      kind: "ipfs",
    });
  }
  return sources;
}

function hexBytes(hex: string): Uint8Array {
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.slice(i * 2, i * 2 + 2), 16);
  return out;
}

/** Temp files older than this in `<cache>/partial/` are leftovers of a killed run, in milliseconds. */
export const STALE_TEMP_MS = 10 * 60_000;

/** Removes manifest temp files a killed run left behind (partial downloads are kept: they resume). */
async function removeStaleTemps(layout: CacheLayout, now: number): Promise<void> {
  try {
    for await (const e of Deno.readDir(layout.partialDir)) {
      if (!e.isFile || !/\.(manifest|check)$/.test(e.name)) continue;
      const p = `${layout.partialDir}/${e.name}`;
      const st = await Deno.lstat(p);
      if (st.mtime && now - st.mtime.getTime() > STALE_TEMP_MS) {
        await Deno.remove(p).catch(() => {});
      }
    }
  } catch { /* best effort */ }
}

/**
 * Fetches `record.json` beside the manifest and keeps it in cas/ only when
 * it verifies under the trust file and names exactly this manifest; any
 * failure is logged and ignored (the record is optional). Bounded by
 * MAX_RECORD_BYTES and the transfer limits.
 */
async function keepRecord(
  o: FetchReleaseOptions,
  layout: CacheLayout,
  source: string,
  manifestBytes: Uint8Array,
): Promise<string | undefined> {
  if (source.includes("/ipfs/")) return undefined;
  const url = new URL("record.json", source).href;
  try {
    const { bytes } = await fetchCapped(url, MAX_RECORD_BYTES, {
      limits: o.limits ?? DEFAULT_LIMITS,
      fetchFn: o.fetchFn,
      logger: o.logger,
      accept: "application/json",
    });
    const rec = verifyRecord(bytes, o.trust, o.now?.() ?? new Date());
    if (rec.value.manifestCid !== rawCid(manifestBytes)) {
      throw new VerifyError("E_MISMATCH", "record.json names another manifest");
    }
    await o.beforeWrite?.();
    return await storeManifest(layout, bytes);
  } catch (err) {
    o.logger?.info("record_not_kept", {
      url,
      code: (err as { code?: string }).code,
      error: (err as Error).message,
    });
    return undefined;
  }
}

async function storeManifest(layout: CacheLayout, bytes: Uint8Array): Promise<string> {
  const hex = sha256Hex(bytes);
  const final = `${layout.casDir}/${hex}`;
  const tmp = `${layout.partialDir}/${hex}.${crypto.randomUUID()}.manifest`;
  const f = await Deno.open(tmp, { write: true, createNew: true, mode: 0o600 });
  try {
    let off = 0;
    while (off < bytes.length) off += await f.write(bytes.subarray(off));
    await f.sync();
  } finally {
    f.close();
  }
  await Deno.rename(tmp, final);
  await syncDir(layout.casDir);
  return final;
}

/**
 * Fetches a verified release into `cacheDir`. Throws a VerifyError for a
 * manifest or artifact that does not verify, a ClientError when sources
 * fail. On success every artifact is in `<cache>/cas/sha256/` and the
 * rollback floor in `<cache>/state/` is raised to this version.
 */
export async function fetchRelease(o: FetchReleaseOptions): Promise<FetchedRelease> {
  const layout = cacheLayout(o.cacheDir);
  const beforeWrite = o.beforeWrite ?? (() => Promise.resolve());
  await beforeWrite();
  await ensureCache(layout);
  await beforeWrite();
  await removeStaleTemps(layout, Date.now());
  // TM-09: the newest trust reachable from the pinned one, before any manifest.
  const trust = o.trustChain
    ? await resolveTrust({
      pinned: o.trust,
      stateDir: layout.stateDir,
      origins: trustOrigins(o),
      chain: o.trustChain,
      now: o.now?.() ?? new Date(),
      limits: o.limits,
      fetchFn: o.fetchFn,
      logger: o.logger,
      beforeWrite: o.beforeWrite,
    })
    : o.trust;
  const { verified, source, bytes } = await fetchManifest({ ...o, trust }, layout);
  await beforeWrite();
  const manifestPath = await storeManifest(layout, bytes);
  const m = verified.value;
  const have = new Set(o.have ?? []);
  const names = (o.artifacts ?? Object.keys(m.artifacts)).filter((n) => {
    const ref = m.artifacts[n];
    if (!ref || !have.has(ref.digest)) return true;
    o.logger?.info("artifact_held", { artifact: n, digest: ref.digest, size: ref.size });
    return false;
  });
  const progress = o.progress ?? silentProgress;
  const out: Record<string, FetchedArtifact> = {};
  progress.plan?.(
    names.flatMap((n) => {
      const ref = m.artifacts[n];
      return ref ? [{ name: n, size: ref.size, digest: ref.digest }] : [];
    }),
  );
  // A source that lied about one artifact is not asked for the next (TM-01).
  const dropped = new Set<string>();
  const rediscovery = o.rediscover
    ? new Rediscovery(o.rediscover, rawCid(bytes), o.logger)
    : undefined;
  try {
    await fetchArtifacts();
  } finally {
    rediscovery?.stop();
  }
  async function fetchArtifacts(): Promise<void> {
    for (const name of names) {
      const ref = m.artifacts[name];
      if (!ref) {
        throw new VerifyError("E_SCHEMA", `manifest has no artifact '${name}'`, {
          hint: `--artifact names one of: ${Object.keys(m.artifacts).join(", ")}`,
        });
      }
      progress.start(name, ref.size);
      await beforeWrite();
      const r = await downloadArtifact({
        layout,
        name,
        hex: digestHex(ref.digest),
        size: ref.size,
        sources: artifactSources(o, name, ref.digest, source),
        limits: o.limits,
        fetchFn: o.fetchFn,
        logger: o.logger,
        onProgress: (done) => progress.update(name, done),
        onPresent: (bytes) => progress.present?.(name, bytes),
        parallel: o.parallel,
        segmentBytes: o.segmentBytes,
        parallelMinBytes: o.parallelMinBytes,
        dropped,
        more: rediscovery?.sourcesFor(digestHex(ref.digest)),
      });
      progress.finish(name, r);
      out[name] = {
        path: r.path,
        digest: ref.digest,
        size: ref.size,
        cached: r.cached,
        sources: r.sources,
      };
      o.logger?.info("artifact_verified", {
        artifact: name,
        digest: ref.digest,
        size: ref.size,
        cached: r.cached,
        sources: r.sources,
      });
    }
  }
  const recordPath = o.keepRecord === false
    ? undefined
    : await keepRecord(o, layout, source, bytes);
  await beforeWrite();
  const floor = await recordFloor(layout.stateDir, verified);
  if (floor.previous !== floor.current) {
    o.logger?.info("rollback_floor_raised", {
      channel: m.channel,
      arch: m.arch,
      previous: floor.previous ?? null,
      floor: floor.current,
      file: floor.file,
    });
  }
  return {
    verified,
    manifestSource: source,
    manifestPath,
    artifacts: out,
    layout,
    floor,
    recordPath,
    dropped: [...dropped],
  };
}

/** A discovered place to fetch from (a discovery `Candidate` is one). */
export interface FetchCandidate {
  /** URL of the manifest. */
  readonly manifestUrl: string;
  /** Other URLs of the same manifest. */
  readonly mirrors?: readonly string[];
  /** CID of the manifest, for gateways. */
  readonly manifestCid?: string;
  /**
   * Base URLs of providers that claim to serve this release (re-serving
   * peers found by mDNS or DHT provider records): hints, asked for
   * `/cas/sha256/<hex>` alongside the mirrors (TM-07).
   */
  readonly providers?: readonly string[];
  /** Where it was found, for the log. */
  readonly source?: string;
}

/**
 * Tries candidates in rank order and returns the first release that
 * verifies completely. A candidate is only a hint (TM-07, TM-08): one that
 * serves a manifest the trust file does not sign, or bad artifacts, costs
 * one bounded attempt and the next is tried. Throws the first
 * verification error (or the last error) when none succeeds.
 */
export async function fetchFromCandidates(
  candidates: readonly FetchCandidate[],
  o: Omit<FetchReleaseOptions, "manifestUrl" | "mirrors" | "manifestCid">,
): Promise<FetchedRelease & { candidate: FetchCandidate }> {
  let firstVerify: VerifyError | undefined;
  let last: unknown;
  for (const c of candidates) {
    try {
      const r = await fetchRelease({
        ...o,
        manifestUrl: c.manifestUrl,
        mirrors: c.mirrors,
        manifestCid: c.manifestCid,
        // Only HTTP base URLs: a record's libp2p addresses are not fetched from.
        providers: [...(o.providers ?? []), ...(c.providers ?? [])].filter((p) =>
          /^https?:\/\//.test(p)
        ),
      });
      return { ...r, candidate: c };
    } catch (err) {
      o.logger?.warn("candidate_failed", {
        url: c.manifestUrl,
        source: c.source,
        code: (err as { code?: string }).code,
        error: (err as Error).message,
      });
      if (err instanceof VerifyError && !firstVerify) firstVerify = err;
      last = err;
    }
  }
  if (firstVerify) throw firstVerify;
  if (last) throw last;
  throw new ClientError("E_NO_CANDIDATE", "no candidate to fetch from", {
    hint: "run discovery, or give a manual URL (phase.provider= on the kernel command line)",
  });
}
