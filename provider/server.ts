/**
 * Running a provider: key and trust set-up in the state directory, the
 * catalog with a watch on the root, `Deno.serve`, advertisement (mDNS,
 * DHT) and a bounded graceful stop.
 *
 * @module
 */
import { consoleLogger, type Logger } from "../core/mod.ts";
import { readFileCapped } from "../core/mod.ts";
import { keygen, loadSigningKey, type SigningKey } from "../sign/mod.ts";
import { MAX_TRUST_BYTES, parseTrust, type Trust } from "../verify/mod.ts";
import { type Catalog, CatalogLoader, type TrustSource } from "./catalog.ts";
import { ProviderError } from "./errors.ts";
import {
  accessFormatter,
  type AdvertState,
  createHandler,
  type Metrics,
  newMetrics,
} from "./http.ts";
import { type HttpListener, listenHttp } from "./listen.ts";
import { ArtifactMemory, MEMORY_CACHE_BYTES } from "./memory_cache.ts";
import { startRescanner } from "./_rescan.ts";
import { CacheCatalogLoader } from "./from_cache.ts";
import { type Mirror, startMirror } from "./_mirror.ts";
import { drainServer, SHUTDOWN_GRACE_MS } from "./_shutdown.ts";

/** What to do when the listen address cannot be bound: the address or the port, by what failed. */
function bindHint(host: string, message: string): string {
  if (
    /lookup address|name or service not known|invalid (ip )?address|cannot assign requested/i.test(
      message,
    )
  ) {
    return `--host '${host}' is not an address of this machine: give one of its IP addresses, 127.0.0.1 (loopback, the default) or 0.0.0.0 (every interface)`;
  }
  if (/permission denied/i.test(message)) {
    return "ports below 1024 need privileges: pick --port 1024 or above";
  }
  return "pick another --port, or stop what holds it";
}

export { RESCAN_INTERVAL_MS, WATCH_DEBOUNCE_MS } from "./_rescan.ts";
export { SHUTDOWN_GRACE_MS } from "./_shutdown.ts";
/** Default port of `deno task serve`. */
export const DEFAULT_PORT = 8080;
/** Default bind address: loopback unless told otherwise (house style 7). */
export const DEFAULT_HOST = "127.0.0.1";

/**
 * Something that advertises the catalog (mDNS responder, DHT node). Built
 * after the server listens; told about every new catalog; stopped first.
 */
export interface Advertiser {
  /** Which layer it is; its state is shown under this name. */
  readonly kind: "mdns" | "dht";
  /** Advertises `catalog` from now on (called after every rescan). */
  update(catalog: Catalog): Promise<void>;
  /** Withdraws the advertisement (mDNS goodbye) and frees its sockets. */
  stop(): Promise<void>;
  /** Its state now, for `GET /` and `/status`. */
  state(): AdvertState["mdns"] | AdvertState["dht"];
}

/** Context an advertiser factory receives. */
export interface AdvertContext {
  /** Name on the LAN: {@link ProviderOptions.name}, else the hostname. */
  readonly name: string;
  /** Address the provider listens on. */
  readonly host: string;
  /** TCP port the provider listens on (the bound one when 0 was asked). */
  readonly port: number;
  /** The provider's base URL, `http://host:port`. */
  readonly url: string;
  /** The catalog loaded at start. */
  readonly catalog: Catalog;
  /** The provider's logger. */
  readonly logger: Logger;
  /** The provider's signing key; absent with `sign: false`. */
  readonly key?: SigningKey;
  /** The trust file's keys, when there is a trust file. */
  readonly trust?: Trust;
  /** The provider's state directory (the DHT keeps its peer key there). */
  readonly state: string;
}

/** Options of {@link startProvider}. */
export interface ProviderOptions {
  /** Directory of releases, `<root>/<channel>/<arch>/`; only read, never written. */
  readonly root: string;
  /**
   * The provider's own directory (made with mode 0700): its key
   * `provider.pem`, `trust.json`, snapshots and the DHT peer key.
   */
  readonly state: string;
  /** Address to bind; default {@link DEFAULT_HOST} (loopback). `0.0.0.0` serves the LAN. */
  readonly host?: string;
  /** TCP port; default {@link DEFAULT_PORT}. 0 picks a free port. */
  readonly port?: number;
  /** Name on the status page and, on the LAN, in mDNS; default `phase` (LAN: the hostname). */
  readonly name?: string;
  /** Sign generated manifests with this key instead of `<state>/provider.pem`. */
  readonly keyPath?: string;
  /** false (`--no-sign`): serve only pre-signed manifests; no key is touched. */
  readonly sign?: boolean;
  /**
   * The release trust file pre-signed manifests are verified against
   * (`--trust`); it must exist (E_TRUST otherwise). Absent: the first of
   * {@link ProviderOptions.trustCandidates} that exists.
   */
  readonly trustPath?: string;
  /**
   * Where to look for the release trust file when `trustPath` is absent;
   * the first that exists is used, none is fine while the provider signs.
   * The CLI passes `./.phase/trust/trust.json` (what `deno task keygen`
   * writes), then `/etc/phase/trust.json` (a system install). Default none.
   */
  readonly trustCandidates?: readonly string[];
  /** mDNS advertisement, e.g. {@link mdnsAdvertiser}(); `false` or absent: off. */
  readonly mdns?: false | ((ctx: AdvertContext) => Promise<Advertiser>);
  /** DHT advertisement, e.g. {@link dhtAdvertiser}(); `false` or absent: off. */
  readonly dht?: false | ((ctx: AdvertContext) => Promise<Advertiser>);
  /** Watch the root and rescan when it changes (default true); a periodic rescan runs anyway. */
  readonly watch?: boolean;
  /** Where events and the access log go; default the console logger. */
  readonly logger?: Logger;
  /** Clock for expiry and generated manifests; default the system clock. */
  readonly now?: () => Date;
  /** Validity of generated manifests, in ms; default {@link DEFAULT_EXPIRES_MS}. */
  readonly expiresInMs?: number;
  /**
   * An artifact response whose client reads nothing for this long is
   * aborted, in ms (TM-18); default {@link SEND_STALL_TIMEOUT_MS}.
   */
  readonly stallTimeoutMs?: number;
  /**
   * Serve from private snapshots in `<state>/snapshots` (default true): fast
   * and immune to in-place rewrites of the root (TM-19), at the cost of a
   * copy of each artifact. false: serve from the root, checked per chunk.
   */
  readonly snapshot?: boolean;
  /** Most requests in flight before 503 (TM-18); default `MAX_INFLIGHT`. */
  readonly maxInflight?: number;
  /**
   * Most artifact downloads sent at once before `503` + `Retry-After`
   * (`serve --max-downloads`, TM-18); default `MAX_DOWNLOADS` (64).
   */
  readonly maxDownloads?: number;
  /**
   * Budget of verified snapshot bytes held in memory and served from there
   * (`serve --memory-cache-mib`, issue 17), in bytes; default
   * `MEMORY_CACHE_BYTES` (512 MiB); 0 serves every body from its file.
   * Only what is asked for is read, and only with snapshots on.
   */
  readonly memoryCacheBytes?: number;
  /**
   * Most requests in flight from one client address (TM-18); default
   * {@link MAX_INFLIGHT_PER_CLIENT}.
   */
  readonly maxInflightPerClient?: number;
  /**
   * How long {@link RunningProvider.close} lets in-flight responses finish,
   * in ms; default {@link SHUTDOWN_GRACE_MS}.
   */
  readonly shutdownGraceMs?: number;
  /** First request's headers deadline per connection, in ms (TM-18; default HEADER_TIMEOUT_MS). */
  readonly headerTimeoutMs?: number;
  /** Keep-alive idle deadline per connection, in ms (TM-18; default IDLE_TIMEOUT_MS). */
  readonly idleTimeoutMs?: number;
  /** Most open connections (TM-18; default MAX_CONNECTIONS). */
  readonly maxConnections?: number;
  /** Most open connections per client address (TM-18; default MAX_CONNECTIONS_PER_CLIENT). */
  readonly maxConnectionsPerClient?: number;
  /** Answer `/status` and the counters to every client, not only loopback (logged). */
  readonly unsafePublicStatus?: boolean;
  /** Channel of the release `GET /manifest.json` answers; default `stable`. */
  readonly defaultChannel?: string;
  /** Architecture of the release `GET /manifest.json` answers; default the host's. */
  readonly defaultArch?: string;
  /**
   * Re-serve the releases in this content-addressed cache (client/cache.ts
   * layout) instead of a root: each manifest re-verified under the trust
   * file and the cache's rollback floor, each artifact re-hashed. Needs
   * `sign: false` (a re-serving provider never signs anything); `root` is
   * then only shown.
   */
  readonly fromCache?: string;
  /**
   * Pull-through mirror: fetch the releases of this upstream provider (a
   * base URL or one manifest URL) into {@link ProviderOptions.fromCache}
   * with the verified fetcher, every `mirrorIntervalMs`.
   */
  readonly mirror?: string;
  /** Time between two mirror refreshes, in ms (default MIRROR_REFRESH_INTERVAL_MS). */
  readonly mirrorIntervalMs?: number;
}

/** A running provider. */
export interface RunningProvider {
  /** `http://host:port` (no trailing slash). */
  readonly url: string;
  /** Address it listens on. */
  readonly host: string;
  /** TCP port it listens on (the bound one when 0 was asked). */
  readonly port: number;
  /**
   * Keyid (`ed25519:<hex>`) of the key that signs generated manifests;
   * absent with `sign: false`.
   */
  readonly keyid?: string;
  /** True when this start generated the provider key. */
  readonly generatedKey: boolean;
  /**
   * The trust file clients should use: with signing on, `<state>/trust.json`
   * (which names the provider key when this provider created it); with
   * `sign: false`, the release trust file.
   */
  readonly trustPath: string;
  /**
   * Every trust file pre-signed manifests are verified against (the release
   * trust file, then `<state>/trust.json` when it exists); a manifest is
   * served when it verifies against any one of them.
   */
  readonly trustFiles: readonly string[];
  /** False until the first catalog is loaded (`/health` answers 503 `starting`). */
  ready(): boolean;
  /** Disk used by private snapshots of the current catalog, in bytes (0 with `snapshot: false`). */
  snapshotBytes(): number;
  /** Live counters of the HTTP handler. */
  readonly metrics: Metrics;
  /** The catalog served now. */
  catalog(): Catalog;
  /** Number of files hashed since start (re-hash only what changed). */
  hashedFiles(): number;
  /** Rescans the root now and waits for it. */
  rescan(): Promise<Catalog>;
  /** Stops: refuse new work, goodbye on mDNS, finish or cut in-flight within the grace. */
  close(): Promise<void>;
  /** The advertisement layers that started. */
  readonly advertisers: readonly Advertiser[];
  /** Connections open now. */
  connections(): number;
  /** The mirror loop (with {@link ProviderOptions.mirror}). */
  readonly mirror?: Mirror;
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return false;
    throw err;
  }
}

/** Loads or creates the provider key in `state`. */
export async function providerKey(
  state: string,
  keyPath: string | undefined,
  logger: Logger,
): Promise<{ key: SigningKey; generated: boolean }> {
  if (keyPath) return { key: await loadSigningKey(keyPath), generated: false };
  const pem = `${state}/provider.pem`;
  if (await exists(pem)) return { key: await loadSigningKey(pem), generated: false };
  if (!(await exists(`${state}/trust.json`))) {
    await keygen(state, "provider");
  } else {
    // An operator's trust file is kept as is; the new key goes beside it.
    const tmp = `${state}/.keygen-${crypto.randomUUID()}`;
    try {
      await keygen(tmp, "provider");
      await Deno.rename(`${tmp}/provider.pem`, pem);
      await Deno.rename(`${tmp}/provider.pub.pem`, `${state}/provider.pub.pem`);
    } finally {
      await Deno.remove(tmp, { recursive: true }).catch(() => {});
    }
    logger.warn("provider_key_not_in_trust", {
      trust: `${state}/trust.json`,
      hint: "clients trusting that file will not accept manifests this provider generates",
    });
  }
  return { key: await loadSigningKey(pem), generated: true };
}

async function loadTrust(path: string, required = false): Promise<Trust | undefined> {
  let bytes: Uint8Array;
  try {
    bytes = await readFileCapped(path, MAX_TRUST_BYTES);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound && !required) return undefined;
    throw new ProviderError(
      "E_TRUST",
      err instanceof Deno.errors.NotFound
        ? `trust file ${path} does not exist`
        : `cannot read trust file ${path}: ${(err as Error).message}`,
      {
        cause: err,
        hint: err instanceof Deno.errors.NotFound
          ? "'deno task keygen' writes ./.phase/trust/trust.json; pass --trust with the trust file of the key that signed the release"
          : "the trust file must be inside the 'serve' permission set (./.phase/trust, /etc/phase, /srv/phase, /var/lib/phase, /run/phase, /tmp/phase)",
      },
    );
  }
  try {
    return parseTrust(bytes);
  } catch (err) {
    throw new ProviderError("E_TRUST", `${path}: ${(err as Error).message}`, {
      cause: err,
      hint: "fix or remove the trust file; 'deno task keygen' writes a valid one",
    });
  }
}

/** Starts a provider; resolves once it listens and the catalog is loaded. */
export async function startProvider(opts: ProviderOptions): Promise<RunningProvider> {
  const logger = opts.logger ?? consoleLogger("serve");
  const now = opts.now ?? (() => new Date());
  const host = opts.host ?? DEFAULT_HOST;
  // The hostname names the provider on the LAN (mDNS) only; the HTTP
  // pages show an operator-chosen name or "phase" (TM-18 finding 15).
  const lanName = opts.name ?? hostnameOr("phase");
  await makeStateDir(opts.state);
  if (opts.fromCache !== undefined && (opts.sign !== false || opts.keyPath !== undefined)) {
    // A re-serving node can re-serve what the release key signed, never sign (issue 12 §2).
    throw new ProviderError("E_KEY", "a provider serving from a cache holds no signing key", {
      hint: "drop --key (--from-cache and --mirror imply --no-sign)",
    });
  }
  if (opts.mirror !== undefined && opts.fromCache === undefined) {
    throw new ProviderError("E_STATE", "--mirror needs the cache to fill (--from-cache DIR)", {
      hint: "pass --from-cache DIR (default ./.cache)",
    });
  }
  const { key, generatedKey } = await signingKey(opts, logger);
  let trustSources = await resolveTrust(opts, key !== undefined);
  // The device's release trust only: a re-serving node's own state names no key it trusts.
  if (opts.fromCache !== undefined) {
    trustSources = trustSources.filter((s) => s.path !== `${opts.state}/trust.json`);
    if (trustSources.length === 0) {
      throw new ProviderError("E_TRUST", "--from-cache needs the release trust file", {
        hint: "pass --trust FILE (the trust file the cache's releases were fetched with)",
      });
    }
  }
  const ownTrust = `${opts.state}/trust.json`;
  const trustPath = key ? ownTrust : trustSources[0].path;
  const trust = trustSources.find((s) => s.path === trustPath)?.trust ?? trustSources[0]?.trust;
  const snapshotDir = opts.snapshot === false ? undefined : `${opts.state}/snapshots`;
  const loader: Pick<CatalogLoader, "current" | "load" | "setMirrorBase" | "hashedFiles"> =
    opts.fromCache !== undefined
      ? new CacheCatalogLoader({ cacheDir: opts.fromCache, trustSources, logger, now, snapshotDir })
      : new CatalogLoader({
        root: opts.root,
        trustSources,
        key,
        logger,
        now,
        expiresInMs: opts.expiresInMs,
        snapshotDir,
      });
  const metrics = newMetrics();
  let serving = true;
  // Until the first catalog is loaded, /health answers 503 "starting"
  // (readiness probes must not send clients to an empty provider).
  let ready = false;
  const advertisers: Advertiser[] = [];
  const streams = new Set<() => void>();
  // Pointed at the rescanner once it runs; a stale file before that waits for the first load.
  const stale: { schedule(): void } = { schedule: () => {} };
  if (opts.unsafePublicStatus) {
    logger.warn("unsafe_public_status", {
      hint: "/status and the counters are answered to every client, not only loopback",
    });
  }
  const accessLine = accessFormatter("serve");
  const memoryBytes = opts.memoryCacheBytes ?? MEMORY_CACHE_BYTES;
  const memory = memoryBytes > 0 && snapshotDir !== undefined
    ? new ArtifactMemory(
      memoryBytes,
      logger,
      metrics.memory,
      (digest) => loader.current.byDigest.has(digest),
      () => stale.schedule(),
    )
    : undefined;
  const handler = createHandler({
    name: opts.name ?? "phase",
    catalog: () => loader.current,
    metrics,
    logger,
    startedAt: now(),
    now,
    serving: () => serving,
    ready: () => ready,
    page: {
      keyid: key?.keyid,
      trustPath,
      root: opts.root,
    },
    advert: () => advertState(advertisers),
    defaultChannel: opts.defaultChannel,
    defaultArch: opts.defaultArch,
    maxInflight: opts.maxInflight,
    maxDownloads: opts.maxDownloads,
    stallTimeoutMs: opts.stallTimeoutMs,
    maxInflightPerClient: opts.maxInflightPerClient,
    unsafePublicStatus: opts.unsafePublicStatus,
    accessLog: "raw" in logger
      ? (e) => (logger as { raw(line: string): void }).raw(accessLine(e))
      : undefined,
    onStale: () => stale.schedule(),
    streams,
    memory,
  });
  let server: HttpListener;
  try {
    server = listenHttp({
      hostname: host,
      port: opts.port ?? DEFAULT_PORT,
      logger,
      headerTimeoutMs: opts.headerTimeoutMs,
      idleTimeoutMs: opts.idleTimeoutMs,
      maxConnections: opts.maxConnections,
      maxConnectionsPerClient: opts.maxConnectionsPerClient,
    }, handler.direct);
  } catch (err) {
    if (err instanceof ProviderError) throw err;
    throw new ProviderError(
      "E_BIND",
      `cannot listen on ${host}:${opts.port ?? DEFAULT_PORT}: ${(err as Error).message}`,
      { cause: err, hint: bindHint(host, (err as Error).message) },
    );
  }
  const port = server.addr.port;
  const urlHost = host.includes(":") ? `[${host}]` : host;
  const url = `http://${urlHost}:${port}`;
  if (host !== "0.0.0.0" && host !== "::") loader.setMirrorBase(url);
  try {
    await loader.load();
    ready = true;
  } catch (err) {
    server.shutdown();
    await server.finished();
    throw new ProviderError("E_ROOT", `cannot load ${opts.root}: ${(err as Error).message}`, {
      cause: err,
    });
  }
  const rescanner = startRescanner({
    loader,
    // A cache changes in cas/ (fetch renames verified files there).
    root: opts.fromCache !== undefined ? `${opts.fromCache}/cas/sha256` : opts.root,
    watch: opts.watch !== false,
    logger,
    listeners: advertisers,
  });
  const ctx: AdvertContext = {
    name: lanName,
    host,
    port,
    url,
    catalog: loader.current,
    logger,
    key,
    trust,
    state: opts.state,
  };
  try {
    if (opts.mdns) advertisers.push(await opts.mdns(ctx));
    if (opts.dht) advertisers.push(await opts.dht(ctx));
  } catch (err) {
    for (const a of advertisers) await a.stop().catch(() => {});
    await rescanner.stop();
    server.shutdown();
    await server.finished();
    throw err;
  }
  stale.schedule = () => rescanner.schedule();
  const scanner = rescanner;
  const mirror = opts.mirror !== undefined
    ? startMirror({
      upstream: opts.mirror,
      cacheDir: opts.fromCache!,
      trust: trustSources[0].trust,
      intervalMs: opts.mirrorIntervalMs,
      logger,
      onFetched: () => scanner.rescan(),
    })
    : undefined;
  let closing: Promise<void> | undefined;
  const close = () =>
    closing ??= (async () => {
      serving = false;
      await mirror?.stop();
      for (const a of advertisers) {
        await a.stop().catch((err) =>
          logger.warn("advert_stop_failed", { kind: a.kind, error: String(err) })
        );
      }
      await scanner.stop();
      await drainServer({
        server,
        streams,
        graceMs: opts.shutdownGraceMs ?? SHUTDOWN_GRACE_MS,
        logger,
        inflight: () => metrics.inflight,
      });
      logger.info("stopped", { requests: metrics.requests, bytes: metrics.bytes });
    })();

  logger.info("listening", {
    url,
    root: opts.root,
    state: opts.state,
    keyid: key?.keyid,
    trust_files: trustSources.map((s) => s.path),
    releases: loader.current.releases.size,
    // Issue 11 §3: snapshots cost as much disk again as the artifacts.
    ...(opts.snapshot === false ? {} : {
      snapshots: `${opts.state}/snapshots`,
      snapshot_bytes: snapshotBytes(loader.current),
      memory_cache_bytes: memory ? memoryBytes : 0,
    }),
  });
  return {
    url,
    host,
    port,
    keyid: key?.keyid,
    generatedKey,
    trustPath,
    trustFiles: trustSources.map((s) => s.path),
    ready: () => ready,
    snapshotBytes: () => snapshotBytes(loader.current),
    metrics,
    catalog: () => loader.current,
    hashedFiles: () => loader.hashedFiles,
    rescan: () => scanner.rescan(),
    close,
    advertisers,
    connections: () => server.connections(),
    mirror,
  };
}

/** Bytes held in private snapshots by `catalog` (each digest once). */
function snapshotBytes(catalog: Catalog): number {
  let n = 0;
  for (const a of catalog.byDigest.values()) if (a.immutable) n += a.size;
  return n;
}

/**
 * The trust files pre-signed manifests are checked against (issue 11 §1):
 * the release trust file (`trustPath`, which must exist, else the first
 * existing candidate), then `<state>/trust.json` when it exists (the
 * provider's own, naming its key, or an operator's). With signing off
 * and no trust file at all nothing could ever be served: E_TRUST.
 */
async function resolveTrust(opts: ProviderOptions, signing: boolean): Promise<TrustSource[]> {
  const out: TrustSource[] = [];
  let release: string | undefined = opts.trustPath;
  if (release === undefined) {
    for (const c of opts.trustCandidates ?? []) {
      if (await exists(c)) {
        release = c;
        break;
      }
    }
  }
  if (release !== undefined) {
    out.push({ path: release, trust: (await loadTrust(release, true))! });
  }
  const own = `${opts.state}/trust.json`;
  if (own !== release) {
    const t = await loadTrust(own);
    if (t) out.push({ path: own, trust: t });
  }
  if (out.length === 0 && !signing) {
    const looked = [...(opts.trustCandidates ?? []), own].join(", ");
    throw new ProviderError(
      "E_TRUST",
      `--no-sign serves only pre-signed releases, and there is no trust file to verify them (looked for ${looked})`,
      {
        hint:
          "run 'deno task keygen' (writes ./.phase/trust/trust.json) and sign with 'deno task sign', or pass --trust FILE",
      },
    );
  }
  return out;
}

function hostnameOr(fallback: string): string {
  try {
    return Deno.hostname();
  } catch {
    return fallback;
  }
}

async function makeStateDir(state: string): Promise<void> {
  try {
    await Deno.mkdir(state, { recursive: true, mode: 0o700 });
  } catch (err) {
    throw new ProviderError(
      "E_STATE",
      `cannot create state directory ${state}: ${(err as Error).message}`,
      {
        cause: err,
        hint:
          "pass --state DIR inside the 'serve' permission set (./.phase/provider, /var/lib/phase, /run/phase, /tmp/phase)",
      },
    );
  }
}

async function signingKey(
  opts: ProviderOptions,
  logger: Logger,
): Promise<{ key?: SigningKey; generatedKey: boolean }> {
  if (opts.sign === false) return { generatedKey: false };
  try {
    const k = await providerKey(opts.state, opts.keyPath, logger);
    return { key: k.key, generatedKey: k.generated };
  } catch (err) {
    throw new ProviderError("E_KEY", `provider key: ${(err as Error).message}`, {
      cause: err,
      hint: (err as { hint?: string }).hint ?? "check --key / the state directory",
    });
  }
}

function advertState(advertisers: readonly Advertiser[]): AdvertState {
  const find = (k: string) => advertisers.find((a) => a.kind === k)?.state();
  return {
    mdns: (find("mdns") as AdvertState["mdns"]) ?? { enabled: false, state: "off", instances: [] },
    dht: (find("dht") as AdvertState["dht"]) ?? { enabled: false, state: "off", peers: 0 },
  };
}
