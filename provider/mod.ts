/**
 * provider/: serves kernel, initramfs and rootfs with signed manifests over
 * HTTP (formats.md §3) and advertises them on mDNS (§4) and a libp2p DHT
 * (§5). `startProvider` runs a real provider (tests elsewhere use it on an
 * ephemeral loopback port); `createHandler` is the bare HTTP handler.
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
  hashIdentified,
  identityOf,
  type Refusal,
  type Release,
  sameIdentity,
} from "./catalog.ts";
export { type ProviderCode, ProviderError } from "./errors.ts";
export {
  type AccessEntry,
  type AdvertState,
  createHandler,
  formatAccess,
  type Handler,
  type HandlerOptions,
  MAX_INFLIGHT,
  MAX_INFLIGHT_PER_CLIENT,
  type Metrics,
  newMetrics,
  type ProviderHandler,
  rawTarget,
  type RequestInfo,
  safeSegments,
  SEND_STALL_TIMEOUT_MS,
  STREAM_CHUNK_BYTES,
} from "./http.ts";
export {
  dhtAdvertiser,
  type DhtAdvertOptions,
  mdnsAddresses,
  mdnsAdvertiser,
  mdnsInstances,
} from "./advertise.ts";
export {
  ACCEPT_BACKOFF_MS,
  HEADER_TIMEOUT_MS,
  type HttpListener,
  IDLE_TIMEOUT_MS,
  listenHttp,
  type ListenOptions,
  MAX_ACCEPT_BACKOFF_MS,
  MAX_CONNECTIONS,
  MAX_CONNECTIONS_PER_CLIENT,
} from "./listen.ts";
export { bufferedJsonLogger, type BufferedLogger, LOG_BUFFER_BYTES, LOG_FLUSH_MS } from "./log.ts";
export { etagMatches, parseRange, prefersHtml } from "./range.ts";
export {
  type AdvertContext,
  type Advertiser,
  DEFAULT_HOST,
  DEFAULT_PORT,
  providerKey,
  type ProviderOptions,
  type RunningProvider,
  SHUTDOWN_GRACE_MS,
  startProvider,
} from "./server.ts";
