/**
 * Trust files: the keys a machine trusts and how many must sign
 * (formats.md §1). A keyid that does not match its key invalidates the file.
 * A trust file has a `version` (absent: 1), may expire, and from version 2
 * on carries signatures that chain it to the previous version
 * (formats.md §1.1, `trust_chain.ts`).
 *
 * @module
 */
import { explainFsError, readFileCapped } from "../core/mod.ts";
import { VerifyError } from "./errors.ts";
import { decodeBase64, isKeyid, keyidOf, PUBLIC_KEY_BYTES } from "./ed25519.ts";
import { decodeSignatures, parseUtcTime, type SignatureEntry } from "./manifest.ts";
import { isJsonObject, type JsonValue, parseStrictJson } from "./strict_json.ts";

/** Largest trust file read, in bytes. */
export const MAX_TRUST_BYTES = 256 * 1024;

/** One trusted key. */
export interface TrustedKey {
  /** `ed25519:` and the hex SHA-256 of {@link TrustedKey.publicKey}. */
  readonly keyid: string;
  /** The 32-byte raw Ed25519 public key. */
  readonly publicKey: Uint8Array;
  /** A label for people (`release-2026`). */
  readonly name: string;
}

/** A parsed trust file. */
export interface Trust {
  /** How many distinct trusted keys must sign. */
  readonly threshold: number;
  /** Trusted keys by keyid. */
  readonly keys: ReadonlyMap<string, TrustedKey>;
  /** Its place in the trust chain: 1 when the file has no `version` (formats.md §1.1). */
  readonly version: number;
  /**
   * From this instant on the file verifies no manifest and no record by
   * itself; it still lets a device walk forward to the next version.
   * Absent: it does not expire (an unversioned or version-1 pinned file).
   */
  readonly expiresAt?: Date;
  /** Its signatures (empty for an unsigned file): checked only by a chain step. */
  readonly signatures: readonly SignatureEntry[];
  /** The whole document as parsed (its signed bytes are JCS without `signatures`). */
  readonly document: { readonly [key: string]: JsonValue };
}

/** Highest trust version accepted (a version is a JSON safe integer; this keeps file names short). */
export const MAX_TRUST_VERSION = 999_999_999;

function invalid(message: string, cause?: unknown): VerifyError {
  return new VerifyError("E_TRUST", `invalid trust file: ${message}`, {
    cause,
    hint:
      'a trust file is {"threshold": N, "keys": {"ed25519:<hex>": {"public": "<base64>"}}}; \'deno task keygen\' writes one',
  });
}

/** Parses and checks a trust file. */
export function parseTrust(bytes: Uint8Array): Trust {
  if (bytes.length > MAX_TRUST_BYTES) throw invalid("too large");
  let doc: JsonValue;
  try {
    doc = parseStrictJson(bytes);
  } catch (err) {
    throw invalid((err as Error).message, err);
  }
  if (!isJsonObject(doc)) throw invalid("not a JSON object");
  const { threshold, keys } = doc;
  let version = 1;
  if (doc.version !== undefined) {
    if (
      typeof doc.version !== "number" || !Number.isSafeInteger(doc.version) || doc.version < 1 ||
      doc.version > MAX_TRUST_VERSION
    ) {
      throw invalid(`'version' must be an integer from 1 to ${MAX_TRUST_VERSION}`);
    }
    version = doc.version;
  }
  let expiresAt: Date | undefined;
  if (doc.expires_at !== undefined) {
    expiresAt = typeof doc.expires_at === "string" ? parseUtcTime(doc.expires_at) : undefined;
    if (!expiresAt) throw invalid("'expires_at' must be RFC 3339 UTC ending in Z");
  }
  // A version after the first exists only as a signed rotation: without
  // an expiry and signatures it could never have been a valid chain step.
  if (version > 1 && expiresAt === undefined) {
    throw invalid(`version ${version} has no 'expires_at' (required from version 2 on)`);
  }
  if (version > 1 && doc.signatures === undefined) {
    throw invalid(`version ${version} has no 'signatures' (required from version 2 on)`);
  }
  const signatures = doc.signatures === undefined
    ? []
    : decodeSignatures(doc.signatures, (m) => invalid(m));
  if (typeof threshold !== "number" || threshold < 1) {
    throw invalid("'threshold' must be an integer >= 1");
  }
  if (!isJsonObject(keys)) throw invalid("'keys' must be an object");
  const out = new Map<string, TrustedKey>();
  for (const [keyid, entry] of Object.entries(keys)) {
    if (!isKeyid(keyid)) throw invalid(`'${keyid}' is not ed25519:<64 hex>`);
    if (!isJsonObject(entry) || typeof entry.public !== "string") {
      throw invalid(`${keyid} has no 'public'`);
    }
    const raw = decodeBase64(entry.public);
    if (!raw || raw.length !== PUBLIC_KEY_BYTES) {
      throw invalid(`${keyid}: 'public' must be base64 of 32 bytes`);
    }
    // TM-09: a mislabelled key could otherwise be counted under another id.
    if (keyidOf(raw) !== keyid) {
      throw invalid(`${keyid}: 'public' does not hash to its keyid`);
    }
    const name = typeof entry.name === "string" ? entry.name : "";
    out.set(keyid, Object.freeze({ keyid, publicKey: raw, name }));
  }
  if (threshold > out.size) {
    throw invalid(`threshold ${threshold} exceeds the ${out.size} trusted keys`);
  }
  return Object.freeze({
    threshold,
    keys: out,
    version,
    expiresAt,
    signatures: Object.freeze(signatures),
    document: doc,
  });
}

/** True when `trust` has expired at `now` (it then verifies no manifest by itself). */
export function trustExpired(trust: Trust, now: Date): boolean {
  return trust.expiresAt !== undefined && now.getTime() >= trust.expiresAt.getTime();
}

/**
 * Refuses an expired trust file for verifying a manifest or a record
 * (formats.md §1.1): only a newer version, reached by walking the chain,
 * verifies again (TM-09).
 */
export function checkTrustCurrent(trust: Trust, now: Date): void {
  if (!trustExpired(trust, now)) return;
  throw new VerifyError(
    "E_TRUST",
    `trust version ${trust.version} expired at ${trust.expiresAt!.toISOString()} ` +
      `(now ${now.toISOString()}): it verifies nothing by itself`,
    {
      hint: "fetch from a provider that serves the next trust version (/trust/<version>.json), " +
        "or check this machine's clock",
    },
  );
}

/** Options of {@link loadTrust}. */
export interface LoadTrustOptions {
  /** The permission set of the running entrypoint, named when it denied the read. */
  readonly permissionSet?: string;
}

/**
 * Reads a trust file (at most {@link MAX_TRUST_BYTES}) and parses it. Every
 * failure is a `VerifyError` with code `E_TRUST`: an unreadable file (missing,
 * outside the permission set, too large) and an invalid one alike, each with
 * a hint.
 *
 * @example
 * ```ts ignore
 * const trust = await loadTrust("./.phase/keys/trust.json");
 * ```
 */
export async function loadTrust(path: string, opts: LoadTrustOptions = {}): Promise<Trust> {
  let bytes: Uint8Array;
  try {
    bytes = await readFileCapped(path, MAX_TRUST_BYTES);
  } catch (err) {
    const why = opts.permissionSet !== undefined
      ? explainFsError(err, path, opts.permissionSet)
      : `${path}: ${err instanceof Error ? err.message : String(err)}`;
    throw new VerifyError("E_TRUST", `cannot read the trust file: ${why}`, {
      cause: err,
      hint:
        "pass --trust the trust.json 'deno task keygen' wrote, in a directory this command may read",
    });
  }
  return parseTrust(bytes);
}

/** Serialises a trust file (pretty, stable order). */
export function formatTrust(
  threshold: number,
  keys: readonly { keyid: string; publicKey: Uint8Array; name: string }[],
  encode: (b: Uint8Array) => string,
): string {
  const obj: Record<string, { public: string; name: string }> = {};
  for (const k of [...keys].sort((a, b) => a.keyid < b.keyid ? -1 : 1)) {
    obj[k.keyid] = { public: encode(k.publicKey), name: k.name };
  }
  return JSON.stringify({ threshold, keys: obj }, null, 2) + "\n";
}
