/**
 * The Phase client: finds providers and fetches a signed release into a
 * content-addressed cache, verifying before it trusts anything.
 *
 * - {@link loadPolicy}, {@link parsePolicy}, {@link applyCmdline},
 *   {@link policyFromValues}: the effective {@link Policy} (boot mode,
 *   channel, manual provider, DHT bootstrap peers), from the policy file,
 *   the kernel command line or values already checked elsewhere.
 * - {@link discover}: asks the LAN (mDNS), then the WAN (DHT), then a
 *   manual URL, and returns ranked {@link Candidate}s. A candidate is only
 *   a hint: each origin is probed at `/health` and a captive portal is
 *   reported in `rejected`, never used.
 * - {@link fetchRelease} / {@link fetchFromCandidates}: fetches the
 *   manifest, verifies its signatures against the trust file before any
 *   artifact is requested, then downloads every artifact (resumable,
 *   capped, failing over across mirrors, providers and IPFS gateways) into
 *   `<cache>/cas/sha256/<hex>`. It returns only when every artifact hashed
 *   to its digest, and then raises the rollback floor.
 * - {@link preparePrivateRoot} / {@link checkPrivateTree}: private mode's
 *   cache root, refused unless it is on a tmpfs.
 * - {@link decodeDiscoverResult} / {@link decodeFetchResult}: strict
 *   decoders of the result lines the discover and fetch programs print.
 *
 * @example Build a policy, let the kernel command line override it, and discover
 * ```ts
 * import { applyCmdline, discover, parsePolicy } from "./mod.ts";
 * import { parseTrust } from "../verify/mod.ts";
 *
 * const fromFile = parsePolicy('mode = "local"\nchannel = "stable"\n');
 * const url = "http://127.0.0.1:8080/stable/amd64/manifest.json";
 * const { policy, ignored } = applyCmdline(
 *   fromFile,
 *   `quiet phase.mode=internet phase.provider=${url} phase.debug=1`,
 * );
 * // internet true [ "phase.debug=1" ]: unknown phase.* words are returned, not fatal
 * console.log(policy.mode, policy.providerFromCmdline, ignored);
 *
 * // No LAN querier and no DHT here: only the manual step finds something.
 * const trust = parseTrust(new TextEncoder().encode(JSON.stringify({
 *   threshold: 1,
 *   keys: {
 *     "ed25519:1adc1d0438aa54910da878055c2d50aedc70b8ebfbff611b2019f354a6e84448": {
 *       public: "ca59bvkMy2bJqeunNBS8Ew9cNHANy/GsF+r1K03sGnA=",
 *     },
 *   },
 * })));
 * const found = await discover({ policy, trust, arch: "amd64", probe: false });
 * if (found.candidates[0]?.source !== "cmdline") throw new Error("expected the command-line URL");
 * ```
 *
 * @example Fetch a signed release from a provider into a cache
 * ```ts
 * import { fetchRelease } from "./mod.ts";
 * import { keygen, loadSigningKey, signRelease } from "../sign/mod.ts";
 * import { parseTrust } from "../verify/mod.ts";
 *
 * await Deno.mkdir("/tmp/phase", { recursive: true });
 * const dir = await Deno.makeTempDir({ dir: "/tmp/phase", prefix: "client-doc-" });
 * try {
 *   // A signed release with a tiny kernel and initramfs...
 *   const { paths } = await keygen(`${dir}/keys`, "release");
 *   const release = `${dir}/artifacts/stable/amd64`;
 *   await Deno.mkdir(release, { recursive: true });
 *   await Deno.writeFile(`${release}/kernel`, new Uint8Array(4096).fill(1));
 *   await Deno.writeFile(`${release}/initramfs`, new Uint8Array(2048).fill(2));
 *   await signRelease({
 *     root: `${dir}/artifacts`, channel: "stable", arch: "amd64", version: "2026.1.0",
 *     expiresInMs: 86_400_000, now: new Date(),
 *   }, await loadSigningKey(paths.privateKey));
 *
 *   // ...served as static files on loopback.
 *   const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
 *     try {
 *       return new Response(await Deno.readFile(`${dir}/artifacts${new URL(req.url).pathname}`));
 *     } catch {
 *       return new Response("not found", { status: 404 });
 *     }
 *   });
 *   try {
 *     const fetched = await fetchRelease({
 *       manifestUrl: `http://127.0.0.1:${server.addr.port}/stable/amd64/manifest.json`,
 *       trust: parseTrust(await Deno.readFile(paths.trust)),
 *       cacheDir: `${dir}/cache`,
 *       channel: "stable",
 *       arch: "amd64",
 *     });
 *     if (fetched.verified.value.version !== "2026.1.0") throw new Error("unexpected version");
 *     console.log(fetched.artifacts.kernel.path); // <dir>/cache/cas/sha256/<hex of the kernel>
 *   } finally {
 *     await server.shutdown();
 *   }
 * } finally {
 *   await Deno.remove(dir, { recursive: true });
 * }
 * ```
 *
 * @module
 */
export { type ClientCode, ClientError } from "./errors.ts";
export {
  applyCmdline,
  DEFAULT_POLICY,
  type LoadedPolicy,
  loadPolicy,
  type LoadPolicyOptions,
  parsePolicy,
  type Policy,
  policyFromValues,
  type PolicyValues,
  SEED_ROOTFS_KEY,
  SEED_VERITY_KEYS,
} from "./policy.ts";
export { auditCache, cachedPath, type CacheLayout, cacheLayout, ensureCache } from "./cache.ts";
export {
  type ArtifactSource,
  BUSY_BUDGET_MS,
  BusyError,
  busyWaitMs,
  downloadArtifact,
  type DownloadOptions,
  type DownloadResult,
  MAX_ADDED_SOURCES,
  MAX_BUSY_WAIT_MS,
  MIN_BUSY_WAIT_MS,
  type MoreSources,
  type SentRange,
} from "./download.ts";
export {
  type FetchCandidate,
  type FetchedArtifact,
  type FetchedRelease,
  fetchFromCandidates,
  fetchRelease,
  type FetchReleaseOptions,
  MAX_REDISCOVERED,
  type Rediscover,
  REDISCOVER_INTERVAL_MS,
  REDISCOVER_TIMEOUT_MS,
} from "./fetch.ts";
export {
  decodeDiscoverResult,
  decodeFetchResult,
  type FetchResult,
  type FetchResultArtifact,
  type FetchResultFloor,
} from "./results.ts";
export {
  type PlannedArtifact,
  type Progress,
  type ProgressReporter,
  progressReporter,
  type ProgressReporterOptions,
  type ProgressSnapshot,
} from "./progress.ts";
export { checkPrivateTree, preparePrivateRoot, type PrivateRootOptions } from "./private.ts";
export {
  type Candidate,
  discover,
  type DiscoverOptions,
  discoverProviders,
  type DiscoverResult,
  type DiscoverStep,
  type DiscoverTrustWalk,
  type MdnsAnswer,
  PROBE_TIMEOUT_MS,
  type Rejected,
  spread,
  type Step,
} from "./discover.ts";
export { MAX_TRUST_ORIGINS, reachTrust, resolveTrust } from "./trust.ts";
export type {
  ReachedTrust,
  ReachTrustOptions,
  ResolveTrustOptions,
  TrustChainOptions,
  TrustOrigin,
} from "./trust.ts";
