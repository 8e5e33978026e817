/**
 * verify/: the trust core and the one owner of Phase's wire formats
 * (docs/formats.md). It checks boot manifests in a fixed order (schema,
 * Ed25519 threshold signatures, channel/arch, expiry, rollback floor, then
 * each artifact's size and SHA-256), parses trust files, records and strict
 * JSON, computes JCS signing bytes and content identifiers, and builds the
 * documents signers sign. It never touches the network, and only this module
 * creates a {@link Verified} value: what boots, caches or serves bytes takes
 * nothing else.
 *
 * @example Verify a release on disk: manifest, trust file, floor and artifacts
 * ```ts
 * import { verifyFiles } from "./mod.ts";
 * import { keygen, loadSigningKey, signRelease } from "../sign/mod.ts";
 *
 * await Deno.mkdir("/tmp/phase", { recursive: true });
 * const dir = await Deno.makeTempDir({ dir: "/tmp/phase", prefix: "verify-doc-" });
 * try {
 *   const { paths } = await keygen(`${dir}/keys`, "release");
 *   const release = `${dir}/artifacts/stable/amd64`;
 *   await Deno.mkdir(release, { recursive: true });
 *   await Deno.writeFile(`${release}/kernel`, new Uint8Array(4096).fill(1));
 *   await Deno.writeFile(`${release}/initramfs`, new Uint8Array(2048).fill(2));
 *   const signed = await signRelease({
 *     root: `${dir}/artifacts`, channel: "stable", arch: "amd64", version: "2026.11.29",
 *     expiresInMs: 86_400_000, now: new Date(),
 *   }, await loadSigningKey(paths.privateKey));
 *
 *   const ok = await verifyFiles({
 *     manifest: signed.path,
 *     trust: paths.trust,
 *     arch: "x86_64", // an alias of amd64
 *     stateDir: `${dir}/state`,
 *     artifacts: new Map([["kernel", `${release}/kernel`]]),
 *   });
 *   console.log(ok.verified.value.version, ok.manifestCid, ok.artifactsChecked);
 * } finally {
 *   await Deno.remove(dir, { recursive: true });
 * }
 * ```
 *
 * @example Strict JSON: a repeated member name is refused, never "last one wins"
 * ```ts
 * import { parseStrictJson, StrictJsonError } from "./mod.ts";
 *
 * try {
 *   parseStrictJson(new TextEncoder().encode('{"version":"1","version":"9"}'));
 *   throw new Error("accepted a duplicate member");
 * } catch (err) {
 *   if (!(err instanceof StrictJsonError)) throw err;
 * }
 * ```
 *
 * @module
 */
export { digestOfRawCid, rawCid, rawCidFromDigest } from "./cid.ts";
export {
  decodeBase64,
  encodeBase64,
  isKeyid,
  keyidOf,
  MAX_KEY_FILE_BYTES,
  privateKeyFromPem,
  publicKeyFromRaw,
  publicRawFromPem,
  rawPublicKey,
  signEd25519,
  verifyStrict,
} from "./ed25519.ts";
export { VerifyError } from "./errors.ts";
export type { VerifyCode } from "./errors.ts";
export {
  enforceFloor,
  FLOOR_FILE,
  floorReset,
  floorShow,
  floorStateDir,
  readFloor,
  recordFloor,
} from "./floor.ts";
export type { FloorChange, FloorEntry, FloorReport, FloorResetResult } from "./floor.ts";
export { canonicalize, signedBytes } from "./jcs.ts";
export {
  canonicalArch,
  decodeManifest,
  decodeSignatures,
  hostArch,
  isArtifactDigest,
  isArtifactName,
  isChannel,
  MAX_MANIFEST_BYTES,
  parseDocument,
  parseUtcTime,
  REQUIRED_ARTIFACTS,
} from "./manifest.ts";
export type { Arch, ArtifactRef, Manifest, SignatureEntry } from "./manifest.ts";
export { isJsonObject, MAX_JSON_DEPTH, parseStrictJson, StrictJsonError } from "./strict_json.ts";
export type { JsonValue } from "./strict_json.ts";
export {
  checkTrustCurrent,
  formatTrust,
  loadTrust,
  MAX_TRUST_BYTES,
  MAX_TRUST_VERSION,
  parseTrust,
  trustExpired,
} from "./trust.ts";
export { MAX_TRUST_STEPS, verifyTrustStep, walkTrustChain } from "./trust_chain.ts";
export type { FetchTrustVersion, TrustStep, TrustWalk, WalkTrustOptions } from "./trust_chain.ts";
export {
  loadStoredTrust,
  MAX_STORED_TRUST_VERSIONS,
  MAX_TRUST_FLOOR_BYTES,
  readTrustFloor,
  recordTrustStep,
  TRUST_FLOOR_FILE,
  TRUST_STATE_DIR,
} from "./trust_store.ts";
export type { StoredTrust, TrustFloorChange } from "./trust_store.ts";
export type { LoadTrustOptions, Trust, TrustedKey } from "./trust.ts";
export { parseArtifactArgs, verifyFiles } from "./workflow.ts";
export type { VerifiedFiles, VerifyFilesOptions } from "./workflow.ts";
export { assertVerified } from "./_verified.ts";
export type { Verified, VerifiedBrand } from "./_verified.ts";
export {
  checkArtifactFile,
  checkThreshold,
  countValidSignatures,
  verifyArtifact,
  verifyManifest,
} from "./verify.ts";
export {
  HASH_CHUNK_BYTES,
  hashFile,
  hashStream,
  readFileHashed,
  SHA256_PREFIX,
  sha256Hex,
} from "./digest.ts";
export {
  buildManifestDocument,
  dhtRecordKey,
  isMode,
  isoSeconds,
  MAX_CMDLINE_FILE_BYTES,
  MODES,
  RELEASE_ARTIFACTS,
} from "./format.ts";
export type { ManifestInput, Mode } from "./format.ts";
export type { VerifyOptions } from "./verify.ts";
export { compareVersions, isVersion } from "./version.ts";
export {
  decodeRecord,
  MAX_RECORD_BYTES,
  MAX_RECORD_SOURCES,
  selectRecordIndex,
  verifyRecord,
} from "./record.ts";
export type { DiscoveryRecord } from "./record.ts";
