/**
 * Signed discovery records (formats.md §5): what the DHT stores under
 * `/phase/{channel}/{arch}/manifest`. Any DHT node can check a record's
 * self-consistency (signatures match the embedded keys) without a trust
 * file; clients then keep only records their trust file signs (TM-08).
 *
 * @module
 */
import { VerifyError } from "./errors.ts";
import {
  decodeBase64,
  isKeyid,
  keyidOf,
  PUBLIC_KEY_BYTES,
  SIGNATURE_BYTES,
  verifyStrict,
} from "./ed25519.ts";
import { signedBytes } from "./jcs.ts";
import { parseDocument, parseUtcTime, type SignatureEntry } from "./manifest.ts";
import { isJsonObject, type JsonValue } from "./strict_json.ts";
import { checkTrustCurrent, MAX_TRUST_VERSION, type Trust } from "./trust.ts";
import { checkThreshold } from "./verify.ts";
import { compareVersions, isVersion } from "./version.ts";
import { _seal, type Verified } from "./_verified.ts";

/** Largest record accepted, in bytes (DHT values are small). */
export const MAX_RECORD_BYTES = 16 * 1024;
/** Most mirrors or providers one record may list. */
export const MAX_RECORD_SOURCES = 32;

/** A decoded discovery record. */
export interface DiscoveryRecord {
  /** CIDv1 (raw, sha2-256, base32) of the manifest bytes the record points at. */
  readonly manifestCid: string;
  /** The manifest's version. */
  readonly version: string;
  /** The record is ignored at and after this instant. */
  readonly expiresAt: Date;
  /** Manifest URLs known when the release was signed. */
  readonly mirrors: readonly string[];
  /** libp2p multiaddrs of long-lived providers. */
  readonly providers: readonly string[];
  /**
   * The newest trust version the release keys knew at release time
   * (optional: records without it stay valid; formats.md §5). A client
   * that cannot walk its trust chain this far says so.
   */
  readonly trustVersion?: number;
  /** Signatures with the public key each claims (self-consistency). */
  readonly signatures: readonly (SignatureEntry & { readonly publicKey: Uint8Array })[];
  /** The whole document as parsed. */
  readonly document: { readonly [key: string]: JsonValue };
}

function bad(message: string): VerifyError {
  return new VerifyError("E_SCHEMA", `discovery record: ${message}`, {
    hint: "records are written by 'deno task sign' (formats.md §5)",
  });
}

function strings(v: JsonValue | undefined, field: string): string[] {
  if (
    !Array.isArray(v) || v.length > MAX_RECORD_SOURCES || !v.every((s) => typeof s === "string")
  ) {
    throw bad(`'${field}' must be an array of at most ${MAX_RECORD_SOURCES} strings`);
  }
  return [...v] as string[];
}

/**
 * Decodes a record and checks every signature against its embedded key,
 * and expiry against `now`. This is what a DHT validator runs.
 */
export function decodeRecord(bytes: Uint8Array, now: Date): DiscoveryRecord {
  const doc = parseDocument(bytes, "discovery record", MAX_RECORD_BYTES);
  const cid = doc.manifest_cid;
  // Syntax only: the CID is a locator; trust comes from the manifest's own
  // signatures, and fetchers compare the digest inside it when they use it.
  if (typeof cid !== "string" || !/^b[a-z2-7]{1,127}$/.test(cid)) {
    throw bad("'manifest_cid' must be a base32 CIDv1 (bafkrei...)");
  }
  const version = doc.version;
  if (typeof version !== "string" || !isVersion(version)) throw bad("'version' is invalid");
  const expiresAt = typeof doc.expires_at === "string" ? parseUtcTime(doc.expires_at) : undefined;
  if (!expiresAt) throw bad("'expires_at' must be RFC 3339 UTC");
  const mirrors = strings(doc.mirrors, "mirrors");
  for (const m of mirrors) {
    if (!/^https?:\/\/[^\s]+$/.test(m)) throw bad(`mirror '${m}' is not an http(s) URL`);
  }
  const providers = strings(doc.providers, "providers");
  let trustVersion: number | undefined;
  if (doc.trust_version !== undefined) {
    const tv = doc.trust_version;
    if (typeof tv !== "number" || !Number.isSafeInteger(tv) || tv < 1 || tv > MAX_TRUST_VERSION) {
      throw bad(`'trust_version' must be an integer from 1 to ${MAX_TRUST_VERSION}`);
    }
    trustVersion = tv;
  }
  if (!Array.isArray(doc.signatures) || doc.signatures.length === 0) throw bad("no signatures");
  const message = signedBytes(doc);
  const signatures = doc.signatures.map((entry, i) => {
    if (!isJsonObject(entry)) throw bad(`signatures[${i}] must be an object`);
    const { keyid, sig, public: pub } = entry;
    if (typeof keyid !== "string" || !isKeyid(keyid)) {
      throw bad(`signatures[${i}].keyid is invalid`);
    }
    const publicKey = typeof pub === "string" ? decodeBase64(pub) : undefined;
    if (!publicKey || publicKey.length !== PUBLIC_KEY_BYTES || keyidOf(publicKey) !== keyid) {
      throw bad(`signatures[${i}].public does not match its keyid`);
    }
    const raw = typeof sig === "string" ? decodeBase64(sig) : undefined;
    if (!raw || raw.length !== SIGNATURE_BYTES || !verifyStrict(publicKey, message, raw)) {
      throw new VerifyError(
        "E_SIGNATURE",
        `discovery record: signatures[${i}] does not verify under its embedded key`,
      );
    }
    return Object.freeze({ keyid, sig: raw, publicKey });
  });
  if (now.getTime() >= expiresAt.getTime()) {
    throw new VerifyError("E_EXPIRED", `discovery record expired at ${expiresAt.toISOString()}`);
  }
  return Object.freeze({
    manifestCid: cid,
    version,
    expiresAt,
    mirrors: Object.freeze(mirrors),
    providers: Object.freeze(providers),
    ...(trustVersion !== undefined ? { trustVersion } : {}),
    signatures: Object.freeze(signatures),
    document: doc,
  });
}

/** Decodes a record and requires the trust file's threshold of signers. */
export function verifyRecord(
  bytes: Uint8Array,
  trust: Trust,
  now: Date,
): Verified<DiscoveryRecord> {
  const record = decodeRecord(bytes, now);
  checkTrustCurrent(trust, now); // TM-09
  const signers = checkThreshold(record.document, record.signatures, trust, "discovery record");
  return _seal(record, bytes, signers);
}

/**
 * Picks the best of several records: highest version, then latest expiry.
 * Callers pass only trusted records, so a forged higher version from an
 * untrusted key never wins (TM-08). Returns -1 for an empty list.
 */
export function selectRecordIndex(records: readonly DiscoveryRecord[]): number {
  let best = -1;
  for (let i = 0; i < records.length; i++) {
    if (best < 0) {
      best = i;
      continue;
    }
    const c = compareVersions(records[i].version, records[best].version);
    if (c > 0 || (c === 0 && records[i].expiresAt > records[best].expiresAt)) best = i;
  }
  return best;
}
