/**
 * The v1 boot manifest, decoded strictly into readonly types (formats.md §1).
 *
 * @module
 */
import { VerifyError } from "./errors.ts";
import { decodeBase64, isKeyid, SIGNATURE_BYTES } from "./ed25519.ts";
import { isJsonObject, type JsonValue, parseStrictJson } from "./strict_json.ts";
import { isVersion } from "./version.ts";

/** Largest manifest accepted, in bytes (TM-05: endless data). */
export const MAX_MANIFEST_BYTES = 1024 * 1024;

/** Canonical architecture names. */
export type Arch = "amd64" | "arm64";

const ARCH_ALIASES: Readonly<Record<string, Arch>> = {
  amd64: "amd64",
  x86_64: "amd64",
  arm64: "arm64",
  aarch64: "arm64",
};

/** Canonical arch for a name or alias; `undefined` when unknown. */
export function canonicalArch(name: string): Arch | undefined {
  return Object.hasOwn(ARCH_ALIASES, name) ? ARCH_ALIASES[name] : undefined;
}

/** This machine's arch, canonical (`amd64` for one Phase has no name for). */
export function hostArch(): Arch {
  return canonicalArch(Deno.build.arch) ?? "amd64";
}

const CHANNEL_RE = /^[a-z0-9][a-z0-9-]{0,31}$/;
/** True for a valid channel name. */
export function isChannel(s: string): boolean {
  return CHANNEL_RE.test(s);
}

const TIME_RE = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?Z$/;
/** Parses an RFC 3339 UTC time with `Z`; `undefined` when invalid. */
export function parseUtcTime(s: string): Date | undefined {
  const m = TIME_RE.exec(s);
  if (!m) return undefined;
  const [y, mo, d, h, mi, se] = m.slice(1, 7).map(Number);
  const t = Date.UTC(y, mo - 1, d, h, mi, se) +
    (m[7] ? Math.floor(Number(m[7]) * 1000) : 0);
  const back = new Date(t);
  if (
    back.getUTCFullYear() !== y || back.getUTCMonth() !== mo - 1 ||
    back.getUTCDate() !== d || h > 23 || mi > 59 || se > 59
  ) return undefined;
  return back;
}

const DIGEST_RE = /^sha256:[0-9a-f]{64}$/;
const ARTIFACT_NAME_RE = /^[a-z0-9][a-z0-9._-]{0,63}$/;

/** True for an artifact digest as a manifest writes it: `sha256:` and 64 lowercase hex digits. */
export function isArtifactDigest(s: string): boolean {
  return DIGEST_RE.test(s);
}

/** True for an allowed artifact name (`[a-z0-9][a-z0-9._-]{0,63}`: no path, no dotfile; TM-10). */
export function isArtifactName(s: string): boolean {
  return ARTIFACT_NAME_RE.test(s);
}

/** Artifacts every manifest must list: what kexec loads (formats.md §1). */
export const REQUIRED_ARTIFACTS = ["kernel", "initramfs"] as const;

/** One artifact reference. */
export interface ArtifactRef {
  /** `sha256:` and 64 lowercase hex digits. */
  readonly digest: string;
  /** Exact length in bytes. */
  readonly size: number;
}

/** One signature entry. */
export interface SignatureEntry {
  /** `ed25519:` and the hex SHA-256 of the raw public key. */
  readonly keyid: string;
  /** The 64-byte Ed25519 signature. */
  readonly sig: Uint8Array;
}

/** A decoded v1 manifest. */
export interface Manifest {
  /** Always 1 in this version of the format. */
  readonly schema: 1;
  /** Dot-separated decimal runs, compared segment by segment. */
  readonly version: string;
  /** Release channel, e.g. `stable`. */
  readonly channel: string;
  /** Canonical architecture. */
  readonly arch: Arch;
  /** When the release was signed. */
  readonly issuedAt: Date;
  /** The manifest is refused at and after this instant (E_EXPIRED). */
  readonly expiresAt: Date;
  /** Kernel command line for the target. */
  readonly cmdline: string;
  /** Artifacts by name (a prototype-free map). */
  readonly artifacts: Readonly<Record<string, ArtifactRef>>;
  /** Every signature entry, trusted or not. */
  readonly signatures: readonly SignatureEntry[];
  /** The whole document as parsed (unknown members included). */
  readonly document: { readonly [key: string]: JsonValue };
}

function schema(message: string, cause?: unknown): VerifyError {
  return new VerifyError("E_SCHEMA", message, {
    cause,
    hint:
      "the manifest is not a well-formed v1 manifest (formats.md §1); re-sign it with 'deno task sign'",
  });
}

/** Parses bytes strictly into a JSON object, or throws E_SCHEMA. */
export function parseDocument(
  bytes: Uint8Array,
  what: string,
  maxBytes: number,
): { readonly [key: string]: JsonValue } {
  if (bytes.length > maxBytes) {
    throw schema(`${what} is ${bytes.length} bytes, above the ${maxBytes}-byte cap`);
  }
  let doc: JsonValue;
  try {
    doc = parseStrictJson(bytes);
  } catch (err) {
    throw schema(`${what} is not strict JSON: ${(err as Error).message}`, err);
  }
  if (!isJsonObject(doc)) throw schema(`${what} is not a JSON object`);
  return doc;
}

/** Decodes the `signatures` array shared by manifests, records, receipts. */
export function decodeSignatures(
  v: JsonValue | undefined,
  fail: (m: string) => Error,
): SignatureEntry[] {
  if (!Array.isArray(v)) throw fail("signatures must be an array");
  return v.map((entry, i) => {
    if (!isJsonObject(entry)) throw fail(`signatures[${i}] must be an object`);
    const { keyid, sig } = entry;
    if (typeof keyid !== "string" || !isKeyid(keyid)) {
      throw fail(`signatures[${i}].keyid must be ed25519:<64 hex>`);
    }
    const raw = typeof sig === "string" ? decodeBase64(sig) : undefined;
    if (!raw || raw.length !== SIGNATURE_BYTES) {
      throw fail(`signatures[${i}].sig must be base64 of 64 bytes`);
    }
    return Object.freeze({ keyid, sig: raw });
  });
}

function str(doc: { readonly [k: string]: JsonValue }, key: string): string {
  const v = doc[key];
  if (typeof v !== "string") throw schema(`'${key}' must be a string`);
  return v;
}

/** Decodes a parsed document as a v1 manifest, or throws E_SCHEMA. */
export function decodeManifest(
  doc: { readonly [key: string]: JsonValue },
): Manifest {
  if (doc.schema !== 1) throw schema("'schema' must be the integer 1");
  const version = str(doc, "version");
  if (!isVersion(version)) {
    throw schema(`'version' must be 1 to 8 dot-separated digit runs, got '${version}'`);
  }
  const channel = str(doc, "channel");
  if (!isChannel(channel)) throw schema(`'channel' is invalid: '${channel}'`);
  const arch = str(doc, "arch");
  if (arch !== "amd64" && arch !== "arm64") {
    throw schema(`'arch' must be amd64 or arm64, got '${arch}'`);
  }
  const issuedAt = parseUtcTime(str(doc, "issued_at"));
  if (!issuedAt) throw schema("'issued_at' must be RFC 3339 UTC ending in Z");
  const expiresAt = parseUtcTime(str(doc, "expires_at"));
  if (!expiresAt) throw schema("'expires_at' must be RFC 3339 UTC ending in Z");
  let cmdline = "";
  if (doc.cmdline !== undefined) cmdline = str(doc, "cmdline");
  const arts = doc.artifacts;
  if (!isJsonObject(arts)) throw schema("'artifacts' must be an object");
  // Prototype-free: a lookup by a name from input finds only listed artifacts.
  const artifacts: Record<string, ArtifactRef> = Object.create(null);
  for (const [name, ref] of Object.entries(arts)) {
    if (!isArtifactName(name)) {
      throw schema(`artifact name '${name}' is not allowed`);
    }
    if (!isJsonObject(ref)) throw schema(`artifacts.${name} must be an object`);
    const { digest, size } = ref;
    if (typeof digest !== "string" || !DIGEST_RE.test(digest)) {
      throw schema(`artifacts.${name}.digest must be sha256:<64 lowercase hex>`);
    }
    if (
      typeof size !== "number" || !Number.isSafeInteger(size) || size < 0
    ) {
      throw schema(`artifacts.${name}.size must be a non-negative integer`);
    }
    artifacts[name] = Object.freeze({ digest, size });
  }
  for (const required of REQUIRED_ARTIFACTS) {
    if (!Object.hasOwn(artifacts, required)) throw schema(`artifact '${required}' is required`);
  }
  const signatures = decodeSignatures(doc.signatures, (m) => schema(m));
  return Object.freeze({
    schema: 1 as const,
    version,
    channel,
    arch,
    issuedAt,
    expiresAt,
    cmdline,
    artifacts: Object.freeze(artifacts),
    signatures: Object.freeze(signatures),
    document: doc,
  });
}
