/**
 * verify/: the trust core. Ed25519 + SHA-256 + expiry + rollback checks of
 * boot manifests (formats.md §1), strict JSON and JCS, trust files, content
 * identifiers. Never touches the network. Only this module creates a
 * {@link Verified} value.
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
export { FLOOR_FILE, floorKey, readFloor, recordFloor } from "./floor.ts";
export { canonicalize, signedBytes } from "./jcs.ts";
export {
  canonicalArch,
  decodeManifest,
  decodeSignatures,
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
export { formatTrust, loadTrust, MAX_TRUST_BYTES, parseTrust } from "./trust.ts";
export type { LoadTrustOptions, Trust, TrustedKey } from "./trust.ts";
export { parseArtifactArgs, verifyFiles } from "./workflow.ts";
export type { VerifiedFiles, VerifyFilesOptions } from "./workflow.ts";
export { assertVerified } from "./_verified.ts";
export type { Verified } from "./_verified.ts";
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
  SHA256_PREFIX,
  sha256Hex,
  toHex,
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
