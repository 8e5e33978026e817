/**
 * Signing a release: hash `<root>/<channel>/<arch>/{kernel,initramfs,rootfs?}`
 * by streaming, write a signed `manifest.json` and a signed discovery
 * `record.json` (formats.md §1, §5). `addSignature` adds another key's
 * signature without changing the signed bytes (k-of-n releases).
 *
 * @module
 */
import { readFileCapped, writeFileAtomic } from "../core/mod.ts";
import {
  buildManifestDocument,
  canonicalArch,
  decodeManifest,
  encodeBase64,
  hashFile,
  isChannel,
  isJsonObject,
  isVersion,
  type JsonValue,
  MAX_CMDLINE_FILE_BYTES,
  MAX_MANIFEST_BYTES,
  MAX_RECORD_BYTES,
  parseDocument,
  rawCid,
  RELEASE_ARTIFACTS,
  signEd25519,
  signedBytes,
  VerifyError,
} from "../verify/mod.ts";
import { SignError } from "./errors.ts";
import type { SigningKey } from "./keys.ts";

/** What a release is. */
export interface ReleaseOptions {
  /** The artifact tree: the release is `<root>/<channel>/<arch>/`. */
  readonly root: string;
  /** Release channel, e.g. `stable`. */
  readonly channel: string;
  /** Architecture (`amd64`, `arm64` or an alias; written canonical). */
  readonly arch: string;
  /** Version to sign, dot-separated decimal runs. */
  readonly version: string;
  /** How long the manifest stays valid after `now`, in milliseconds. */
  readonly expiresInMs: number;
  /** The signing time (`issued_at`). */
  readonly now: Date;
  /** Kernel command line; default: the release's `cmdline` file, or empty. */
  readonly cmdline?: string;
  /** Artifact files beyond kernel, initramfs and rootfs to list. */
  readonly extraArtifacts?: readonly string[];
  /** Manifest URLs to put into the discovery record. */
  readonly mirrors?: readonly string[];
  /** libp2p multiaddrs of long-lived providers for the record. */
  readonly providers?: readonly string[];
}

/** Hashes one artifact file (no cap: the signer reads its own release). */
async function hashArtifact(path: string): Promise<{ digest: string; size: number }> {
  using f = await Deno.open(path, { read: true });
  const { digest, size } = await hashFile(f, Number.MAX_SAFE_INTEGER);
  return { digest, size };
}

/** Directory of a release. */
export function releaseDir(root: string, channel: string, arch: string): string {
  return `${root}/${channel}/${arch}`;
}

/** Builds the unsigned manifest document for a release. */
export async function buildManifest(opts: ReleaseOptions): Promise<Record<string, JsonValue>> {
  if (!isChannel(opts.channel)) {
    throw new SignError("E_MANIFEST", `invalid channel '${opts.channel}'`, {
      hint: "[a-z0-9][a-z0-9-]{0,31}",
    });
  }
  const arch = canonicalArch(opts.arch);
  if (!arch) {
    throw new SignError("E_MANIFEST", `unknown arch '${opts.arch}'`, { hint: "amd64 or arm64" });
  }
  if (!isVersion(opts.version)) {
    throw new SignError("E_MANIFEST", `invalid version '${opts.version}'`, {
      hint: "e.g. 2026.11.20",
    });
  }
  const dir = releaseDir(opts.root, opts.channel, arch);
  const artifacts = new Map<string, { digest: string; size: number }>();
  for (const name of [...RELEASE_ARTIFACTS, ...(opts.extraArtifacts ?? [])]) {
    try {
      artifacts.set(name, await hashArtifact(`${dir}/${name}`));
    } catch (err) {
      if (err instanceof Deno.errors.NotFound && name === "rootfs") continue;
      throw new SignError("E_ARTIFACT", `cannot hash ${dir}/${name}: ${(err as Error).message}`, {
        cause: err,
        hint: `a release needs ${dir}/kernel and ${dir}/initramfs`,
      });
    }
  }
  let cmdline = opts.cmdline;
  if (cmdline === undefined) {
    try {
      cmdline = new TextDecoder().decode(
        await readFileCapped(`${dir}/cmdline`, MAX_CMDLINE_FILE_BYTES),
      )
        .trim();
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
      cmdline = "";
    }
  }
  try {
    return buildManifestDocument({ ...opts, arch, cmdline, artifacts });
  } catch (err) {
    if (!(err instanceof VerifyError)) throw err;
    throw new SignError("E_MANIFEST", err.message, { cause: err });
  }
}

/** Signs a document's JCS bytes with `key` (formats.md §1, §5); records embed the public key. */
export function signatureFor(
  doc: { readonly [k: string]: JsonValue },
  key: SigningKey,
  withPublic: boolean,
): Record<string, string> {
  const sig = encodeBase64(signEd25519(key.key, signedBytes(doc)));
  return withPublic
    ? { keyid: key.keyid, public: encodeBase64(key.publicRaw), sig }
    : { keyid: key.keyid, sig };
}

/** Serialises a signed document the way Phase writes them. */
export function formatDocument(doc: unknown): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(doc, null, 2) + "\n");
}

/** Builds the discovery record for manifest bytes (formats.md §5). */
export function buildRecord(
  manifestBytes: Uint8Array,
  manifest: { version: string; expires_at: string },
  mirrors: readonly string[],
  providers: readonly string[],
  trustVersion?: number,
): Record<string, JsonValue> {
  return {
    manifest_cid: rawCid(manifestBytes),
    version: manifest.version,
    expires_at: manifest.expires_at,
    mirrors: [...mirrors],
    providers: [...providers],
    // formats.md §5: optional, so records without it keep their meaning.
    ...(trustVersion !== undefined ? { trust_version: trustVersion } : {}),
  };
}

/** Most entries of `<root>/trust/` looked at for the newest trust version. */
const MAX_TRUST_DIR_ENTRIES = 4096;

/**
 * The newest trust version a release root serves (`<root>/trust/<v>.json`,
 * formats.md §1.1), or `undefined` when it serves no chain: what the
 * release keys sign into the record as `trust_version`.
 */
export async function newestTrustVersion(root: string): Promise<number | undefined> {
  let max: number | undefined;
  let count = 0;
  try {
    for await (const e of Deno.readDir(`${root}/trust`)) {
      if (++count > MAX_TRUST_DIR_ENTRIES) break;
      const m = /^([1-9][0-9]{0,8})\.json$/.exec(e.name);
      if (m && e.isFile && (max === undefined || Number(m[1]) > max)) max = Number(m[1]);
    }
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound || err instanceof Deno.errors.NotADirectory)) {
      throw err;
    }
  }
  return max;
}

/** One key or several, each at most once (first wins). */
function keyList(keys: SigningKey | readonly SigningKey[]): SigningKey[] {
  const list = Array.isArray(keys) ? keys : [keys as SigningKey];
  if (list.length === 0) throw new SignError("E_KEY", "no signing key given");
  return list.filter((k, i) => list.findIndex((o) => o.keyid === k.keyid) === i);
}

/**
 * Signs a new release with one key or several (the signers present
 * together: each signs the manifest and the record); writes manifest.json
 * and record.json atomically.
 */
export async function signRelease(
  opts: ReleaseOptions,
  keys: SigningKey | readonly SigningKey[],
): Promise<
  {
    path: string;
    manifest: Record<string, JsonValue>;
    record: Record<string, JsonValue>;
    cid: string;
  }
> {
  const signers = keyList(keys);
  const doc = await buildManifest(opts);
  const manifest = { ...doc, signatures: signers.map((k) => signatureFor(doc, k, false)) };
  const bytes = formatDocument(manifest);
  const dir = releaseDir(opts.root, opts.channel, doc.arch as string);
  const record = buildRecord(
    bytes,
    doc as { version: string; expires_at: string },
    opts.mirrors ?? [],
    opts.providers ?? [],
    await newestTrustVersion(opts.root),
  );
  const signedRecord = { ...record, signatures: signers.map((k) => signatureFor(record, k, true)) };
  try {
    await writeFileAtomic(`${dir}/manifest.json`, bytes);
    await writeFileAtomic(`${dir}/record.json`, formatDocument(signedRecord));
  } catch (err) {
    throw new SignError("E_IO", `cannot write to ${dir}: ${(err as Error).message}`, {
      cause: err,
    });
  }
  return {
    path: `${dir}/manifest.json`,
    manifest,
    record: signedRecord,
    cid: record.manifest_cid as string,
  };
}

async function readSigned(path: string, cap: number) {
  try {
    return parseDocument(await readFileCapped(path, cap), path, cap);
  } catch (err) {
    if (err instanceof VerifyError) {
      throw new SignError("E_MANIFEST", err.message, {
        cause: err,
        hint: "only a well-formed v1 document can take another signature",
      });
    }
    throw new SignError("E_IO", `cannot read ${path}: ${(err as Error).message}`, { cause: err });
  }
}

function signaturesOf(doc: { readonly [k: string]: JsonValue }, path: string): JsonValue[] {
  const sigs = doc.signatures;
  if (!Array.isArray(sigs)) throw new SignError("E_MANIFEST", `${path} has no signatures array`);
  return sigs;
}

function signerIds(sigs: readonly JsonValue[]): string[] {
  return sigs.flatMap((s) => isJsonObject(s) && typeof s.keyid === "string" ? [s.keyid] : []);
}

/**
 * Appends the signatures of the keys that have not signed `doc` yet; keeps
 * every signature already there. Refuses (E_EXISTS) when every key has.
 */
function appendSignatures(
  doc: { readonly [k: string]: JsonValue },
  keys: readonly SigningKey[],
  withPublic: boolean,
  path: string,
): { doc: Record<string, JsonValue>; added: string[] } {
  const sigs = signaturesOf(doc, path);
  const present = new Set(signerIds(sigs));
  const fresh = keys.filter((k) => !present.has(k.keyid));
  if (fresh.length === 0) {
    throw new SignError(
      "E_EXISTS",
      `${path} is already signed by ${keys.map((k) => k.keyid).join(", ")}`,
      {
        hint: withPublic
          ? "each key signs the record once"
          : "each key signs the manifest once; to sign only the record: --add-signature --record",
      },
    );
  }
  const { signatures: _, ...body } = doc;
  return {
    doc: { ...doc, signatures: [...sigs, ...fresh.map((k) => signatureFor(body, k, withPublic))] },
    added: fresh.map((k) => k.keyid),
  };
}

/** What {@link addSignature} did. */
export interface AddSignatureResult {
  /** The manifest. */
  readonly path: string;
  /** How many signatures the manifest carries now. */
  readonly signatures: number;
  /** Keyids whose manifest signatures were added. */
  readonly added: readonly string[];
  /** The rebuilt record. */
  readonly recordPath: string;
  /** Keyids that signed the rebuilt record (every key given). */
  readonly recordSigners: readonly string[];
  /**
   * Keyids whose earlier record signatures no longer hold (the record now
   * names other manifest bytes) and who were not among the keys given: each
   * must sign the record again (`addRecordSignature`).
   */
  readonly lostRecordSigners: readonly string[];
}

/**
 * Adds signatures to an existing release (k-of-n). The manifest's signed
 * (JCS) bytes stay the same: only `signatures` grows, and every earlier
 * signature is kept. The record names the manifest by the CID of its exact
 * bytes, which change with every manifest signature, so earlier record
 * signatures cannot stay valid: the record is rebuilt (same mirrors and
 * providers) and signed by every key given. Earlier record signers not
 * among them are returned in `lostRecordSigners`: they must sign again with
 * {@link addRecordSignature}. Hence the order of a k-of-n release: all
 * manifest signatures first, record signatures last.
 */
export async function addSignature(
  root: string,
  channel: string,
  arch: string,
  keys: SigningKey | readonly SigningKey[],
): Promise<AddSignatureResult> {
  const signers = keyList(keys);
  const canonical = canonicalArch(arch);
  if (!canonical) throw new SignError("E_MANIFEST", `unknown arch '${arch}'`);
  const dir = releaseDir(root, channel, canonical);
  const path = `${dir}/manifest.json`;
  const doc = await readSigned(path, MAX_MANIFEST_BYTES);
  try {
    decodeManifest(doc);
  } catch (err) {
    throw new SignError("E_MANIFEST", `${path}: ${(err as Error).message}`, { cause: err });
  }
  const { doc: updated, added } = appendSignatures(doc, signers, false, path);
  const bytes = formatDocument(updated);
  // The record names the manifest by the CID of its exact bytes, which the
  // new signature changed; rebuild it with the same mirrors and providers.
  let mirrors: string[] = [];
  let providers: string[] = [];
  let earlier: string[] = [];
  let trustVersion: number | undefined;
  const recordPath = `${dir}/record.json`;
  try {
    const old = await readSigned(recordPath, MAX_RECORD_BYTES);
    if (Array.isArray(old.mirrors)) {
      mirrors = old.mirrors.filter((m): m is string => typeof m === "string");
    }
    if (Array.isArray(old.providers)) {
      providers = old.providers.filter((m): m is string => typeof m === "string");
    }
    if (Array.isArray(old.signatures)) earlier = signerIds(old.signatures);
    if (typeof old.trust_version === "number") trustVersion = old.trust_version;
  } catch { /* no previous record: start empty */ }
  const record = buildRecord(
    bytes,
    updated as unknown as { version: string; expires_at: string },
    mirrors,
    providers,
    trustVersion,
  );
  try {
    await writeFileAtomic(path, bytes);
    await writeFileAtomic(
      recordPath,
      formatDocument({ ...record, signatures: signers.map((k) => signatureFor(record, k, true)) }),
    );
  } catch (err) {
    throw new SignError("E_IO", `cannot write to ${dir}: ${(err as Error).message}`, {
      cause: err,
    });
  }
  const recordSigners = signers.map((k) => k.keyid);
  return {
    path,
    signatures: (updated.signatures as JsonValue[]).length,
    added,
    recordPath,
    recordSigners,
    lostRecordSigners: [...new Set(earlier)].filter((id) => !recordSigners.includes(id)),
  };
}

/**
 * Adds signatures to an existing record.json (k-of-n records), keeping
 * every signature already there. Refuses a record that names other bytes
 * than the `manifest.json` beside it: a signature over it would be worthless.
 */
export async function addRecordSignature(
  path: string,
  keys: SigningKey | readonly SigningKey[],
): Promise<{ path: string; added: readonly string[]; signatures: number }> {
  const doc = await readSigned(path, MAX_RECORD_BYTES);
  const manifestPath = `${path.slice(0, path.lastIndexOf("/") + 1) || "./"}manifest.json`;
  let manifestBytes: Uint8Array | undefined;
  try {
    manifestBytes = await readFileCapped(manifestPath, MAX_MANIFEST_BYTES);
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) {
      throw new SignError("E_IO", `cannot read ${manifestPath}: ${(err as Error).message}`, {
        cause: err,
      });
    }
  }
  if (manifestBytes && doc.manifest_cid !== rawCid(manifestBytes)) {
    throw new SignError(
      "E_MANIFEST",
      `${path} names another manifest than ${manifestPath} (manifest_cid differs)`,
      {
        hint: "rebuild it: 'deno task sign --add-signature' with the keys at hand re-signs the " +
          "record for the current manifest",
      },
    );
  }
  const { doc: updated, added } = appendSignatures(doc, keyList(keys), true, path);
  await writeFileAtomic(path, formatDocument(updated));
  return { path, added, signatures: (updated.signatures as JsonValue[]).length };
}
