/**
 * client/: discovery (LAN mDNS, then WAN DHT, then a manual URL) and the
 * content-addressed, verify-first fetch into a cache or a private tmpfs
 * root (issue #4). The boot chain (issue #5) calls:
 *
 * - {@link loadPolicy} / {@link applyCmdline}: policy file + kernel command line;
 * - {@link discover}: ranked candidates (hints only) with captive-portal probing;
 * - {@link fetchRelease} / {@link fetchFromCandidates}: a `Verified<Manifest>`
 *   whose every artifact is in `<cache>/cas/sha256/<hex>`, verified;
 * - {@link preparePrivateRoot}: refuses a private root that is not a tmpfs.
 *
 * @module
 */
export { type ClientCode, ClientError } from "./errors.ts";
export {
  applyCmdline,
  DEFAULT_POLICY,
  loadPolicy,
  MAX_BOOTSTRAP_PEERS,
  MAX_CMDLINE_BYTES,
  MAX_POLICY_BYTES,
  type Mode,
  parsePolicy,
  type Policy,
  policyFromValues,
  type PolicyValues,
  splitCmdline,
} from "./policy.ts";
export {
  DEFAULT_LIMITS,
  fetchCapped,
  type FetchFn,
  HEADERS_TIMEOUT_MS,
  MAX_REDIRECTS,
  MIN_RATE_BYTES_PER_S,
  MIN_RATE_WINDOW_MS,
  STALL_TIMEOUT_MS,
  type TransferLimits,
} from "./http.ts";
export {
  auditCache,
  cachedPath,
  type CacheLayout,
  cacheLayout,
  digestHex,
  ensureCache,
  hashFile,
} from "./cache.ts";
export {
  type ArtifactSource,
  downloadArtifact,
  type DownloadOptions,
  type DownloadResult,
  MAX_ROUNDS,
  PARALLEL_MIN_BYTES,
  SEGMENT_BYTES,
} from "./download.ts";
export {
  artifactSources,
  type FetchCandidate,
  type FetchedArtifact,
  type FetchedRelease,
  fetchFromCandidates,
  fetchManifest,
  fetchRelease,
  type FetchReleaseOptions,
} from "./fetch.ts";
export {
  decodeDiscoverResult,
  decodeFetchResult,
  type FetchResult,
  type FetchResultArtifact,
} from "./results.ts";
export { type Progress, progressReporter, silentProgress } from "./progress.ts";
export {
  MAX_MOUNTS_BYTES,
  mountOf,
  parseMounts,
  preparePrivateRoot,
  TMPFS_MAGIC,
} from "./private.ts";
export {
  type Candidate,
  DHT_STEP_TIMEOUT_MS,
  dhtCandidates,
  dhtKey,
  discover,
  type DiscoverOptions,
  type DiscoverResult,
  type Health,
  MAX_CANDIDATES,
  MAX_DHT_VALUES,
  MAX_HEALTH_BYTES,
  MDNS_STEP_TIMEOUT_MS,
  type MdnsAnswer,
  mdnsCandidates,
  PROBE_TIMEOUT_MS,
  probeHealth,
  type Rejected,
  type Step,
  stepOrder,
} from "./discover.ts";
export {
  connectRequest,
  parseSocksAddress,
  SOCKS_HANDSHAKE_TIMEOUT_MS,
  socksDialer,
  type SocksDialerOptions,
  socksFetch,
  type SocksProxy,
  TOR_HEADERS_TIMEOUT_MS,
  TOR_LIMITS,
  TOR_PROBE_TIMEOUT_MS,
  TOR_STALL_TIMEOUT_MS,
} from "./socks.ts";
export {
  checkTorrcFragment,
  DEFAULT_TOR_PATHS,
  MAX_TORRC_BYTES,
  startTor,
  TOR_BOOTSTRAP_TIMEOUT_MS,
  TOR_STOP_TIMEOUT_MS,
  type TorHandle,
  TorMissing,
  type TorOptions,
  torrc,
} from "./tor.ts";
export { type Dialer, makeRawHttpFetch, rawHttpFetch, type RawHttpOptions } from "./raw_http.ts";
