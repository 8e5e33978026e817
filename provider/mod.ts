/**
 * provider/: a Phase provider. It serves the releases of a directory
 * (`<root>/<channel>/<arch>/` with `kernel`, `initramfs` and optionally a
 * rootfs) over HTTP with signed manifests, Range requests and ETags, and
 * can advertise them on the LAN (mDNS) and on a libp2p DHT, so that Phase
 * clients find and fetch them.
 *
 * A release with a pre-signed `manifest.json` is verified against the
 * trust file and its artifacts are hashed against it; a release without
 * one is signed in memory with the provider's own key (the root is never
 * written). A release that does not verify is never served.
 *
 * - {@link startProvider} runs a whole provider: key and trust in a state
 *   directory, the catalog kept current as the root changes, a listener
 *   with connection limits, advertisement ({@link mdnsAdvertiser},
 *   {@link dhtAdvertiser}) and a bounded graceful stop.
 * - {@link createHandler} is the bare HTTP handler,
 *   `(Request) => Promise<Response>`, over a {@link Catalog} that a
 *   {@link CatalogLoader} builds: no socket, for embedding or tests.
 *
 * The provider binds to loopback unless told otherwise, serves no
 * directory listing and no dotfiles, and answers `/status` and its
 * counters to loopback clients only. It needs read access to the root,
 * read and write access to its state directory and network access to
 * its address; this module also loads libp2p (for {@link dhtAdvertiser}),
 * which reads environment variables as it loads, so grant `--allow-env`.
 *
 * @example Serve a release and fetch its signed manifest
 * ```ts
 * import { startProvider } from "./mod.ts";
 *
 * await Deno.mkdir("/tmp/phase", { recursive: true });
 * const dir = await Deno.makeTempDir({ dir: "/tmp/phase" });
 * try {
 *   const release = `${dir}/artifacts/stable/amd64`;
 *   await Deno.mkdir(release, { recursive: true });
 *   await Deno.writeFile(`${release}/kernel`, new Uint8Array(4096).fill(1));
 *   await Deno.writeFile(`${release}/initramfs`, new Uint8Array(2048).fill(2));
 *
 *   const provider = await startProvider({
 *     root: `${dir}/artifacts`,
 *     state: `${dir}/state`, // the provider's key and trust file are made here
 *     port: 0, // any free port on 127.0.0.1
 *     watch: false,
 *     logger: { info() {}, warn() {}, error() {} },
 *   });
 *   try {
 *     const res = await fetch(`${provider.url}/stable/amd64/manifest.json`);
 *     const manifest = await res.json();
 *     console.log(res.status, manifest.channel, manifest.arch); // 200 stable amd64
 *     if (manifest.arch !== "amd64") throw new Error("unexpected manifest");
 *   } finally {
 *     await provider.close();
 *   }
 * } finally {
 *   await Deno.remove(dir, { recursive: true });
 * }
 * ```
 *
 * @example Answer requests without a socket
 * ```ts
 * import { createHandler, emptyCatalog, newMetrics } from "./mod.ts";
 *
 * const metrics = newMetrics();
 * const handler = createHandler({
 *   name: "example",
 *   catalog: () => emptyCatalog(),
 *   metrics,
 *   logger: { info() {}, warn() {}, error() {} },
 *   startedAt: new Date(),
 * });
 * // A dotfile is never served: refused like any miss, and counted.
 * const res = await handler(new Request("http://localhost/.phase/provider.pem"));
 * await res.body?.cancel();
 * if (res.status !== 404 || metrics.rejectedPaths !== 1) throw new Error("not refused");
 * ```
 *
 * @module
 */
export {
  type Artifact,
  type Catalog,
  CatalogLoader,
  type CatalogOptions,
  DEFAULT_EXPIRES_MS,
  emptyCatalog,
  type FileIdentity,
  type Refusal,
  type Release,
  type TrustSource,
} from "./catalog.ts";
export { type ProviderCode, ProviderError } from "./errors.ts";
export {
  type AccessEntry,
  type AdvertState,
  createHandler,
  DOWNLOAD_RETRY_AFTER_S,
  type Handler,
  type HandlerOptions,
  MAX_DOWNLOADS,
  MAX_INFLIGHT,
  MAX_INFLIGHT_PER_CLIENT,
  type Metrics,
  newMetrics,
  type ProviderHandler,
  type RequestInfo,
  SEND_STALL_TIMEOUT_MS,
} from "./http.ts";
export { dhtAdvertiser, type DhtAdvertOptions, mdnsAdvertiser } from "./advertise.ts";
export {
  HEADER_TIMEOUT_MS,
  IDLE_TIMEOUT_MS,
  MAX_CONNECTIONS,
  MAX_CONNECTIONS_PER_CLIENT,
} from "./listen.ts";
export {
  type AdvertContext,
  type Advertiser,
  DEFAULT_HOST,
  DEFAULT_PORT,
  type ProviderOptions,
  type RunningProvider,
  SHUTDOWN_GRACE_MS,
  startProvider,
} from "./server.ts";
export {
  CacheCatalogLoader,
  type CacheCatalogOptions,
  MAX_CACHE_ENTRIES,
  MAX_CACHE_RELEASES,
  MAX_VERSIONS_TRIED,
} from "./from_cache.ts";
export { type Mirror, MIRROR_REFRESH_INTERVAL_MS } from "./_mirror.ts";
export {
  ArtifactMemory,
  MAX_MEMORY_CACHE_MIB,
  MEMORY_CACHE_BYTES,
  MEMORY_CHUNK_BYTES,
  MEMORY_IDLE_EVICT_MS,
  type MemoryCounters,
  newMemoryCounters,
} from "./memory_cache.ts";
