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
  MAX_POLICY_BYTES,
  parsePolicy,
  type Policy,
  policyFromValues,
  type PolicyValues,
  splitCmdline,
} from "./policy.ts";
export {
  auditCache,
  cachedPath,
  type CacheLayout,
  cacheLayout,
  digestHex,
  ensureCache,
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
  checkPrivateTree,
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
