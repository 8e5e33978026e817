/**
 * Trust files: the keys a machine trusts and how many must sign
 * (formats.md §1). A keyid that does not match its key invalidates the file.
 *
 * @module
 */
import { explainFsError, readFileCapped } from "../core/mod.ts";
import { VerifyError } from "./errors.ts";
import { decodeBase64, isKeyid, keyidOf, PUBLIC_KEY_BYTES } from "./ed25519.ts";
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
}

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
  return Object.freeze({ threshold, keys: out });
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
