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
): Record<string, JsonValue> {
  return {
    manifest_cid: rawCid(manifestBytes),
    version: manifest.version,
    expires_at: manifest.expires_at,
    mirrors: [...mirrors],
    providers: [...providers],
  };
}

/** Signs a new release; writes manifest.json and record.json atomically. */
export async function signRelease(
  opts: ReleaseOptions,
  key: SigningKey,
): Promise<
  {
    path: string;
    manifest: Record<string, JsonValue>;
    record: Record<string, JsonValue>;
    cid: string;
  }
> {
  const doc = await buildManifest(opts);
  const manifest = { ...doc, signatures: [signatureFor(doc, key, false)] };
  const bytes = formatDocument(manifest);
  const dir = releaseDir(opts.root, opts.channel, doc.arch as string);
  const record = buildRecord(
    bytes,
    doc as { version: string; expires_at: string },
    opts.mirrors ?? [],
    opts.providers ?? [],
  );
  const signedRecord = { ...record, signatures: [signatureFor(record, key, true)] };
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

function appendSignature(
  doc: { readonly [k: string]: JsonValue },
  key: SigningKey,
  withPublic: boolean,
  path: string,
): Record<string, JsonValue> {
  const sigs = doc.signatures;
  if (!Array.isArray(sigs)) throw new SignError("E_MANIFEST", `${path} has no signatures array`);
  if (sigs.some((s) => isJsonObject(s) && s.keyid === key.keyid)) {
    throw new SignError("E_EXISTS", `${path} is already signed by ${key.keyid}`);
  }
  return { ...doc, signatures: [...sigs, signatureFor(doc, key, withPublic)] };
}

/**
 * Adds `key`'s signature to an existing release. The signed (JCS) bytes
 * stay the same: only `signatures` changes. The record names the manifest
 * by the CID of its exact bytes, which change with every signature, so it
 * is rebuilt and signed by this key; once every manifest signature is in,
 * other record signers use `addRecordSignature` (`--add-signature --record`).
 */
export async function addSignature(
  root: string,
  channel: string,
  arch: string,
  key: SigningKey,
): Promise<{ path: string; signatures: number }> {
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
  const updated = appendSignature(doc, key, false, path);
  const bytes = formatDocument(updated);
  await writeFileAtomic(path, bytes);
  // The record names the manifest by the CID of its exact bytes, which the
  // new signature changed; rebuild it with the same mirrors and providers.
  let mirrors: string[] = [];
  let providers: string[] = [];
  try {
    const old = await readSigned(`${dir}/record.json`, MAX_RECORD_BYTES);
    if (Array.isArray(old.mirrors)) {
      mirrors = old.mirrors.filter((m): m is string => typeof m === "string");
    }
    if (Array.isArray(old.providers)) {
      providers = old.providers.filter((m): m is string => typeof m === "string");
    }
  } catch { /* no previous record: start empty */ }
  const record = buildRecord(
    bytes,
    updated as unknown as { version: string; expires_at: string },
    mirrors,
    providers,
  );
  await writeFileAtomic(
    `${dir}/record.json`,
    formatDocument({ ...record, signatures: [signatureFor(record, key, true)] }),
  );
  return { path, signatures: (updated.signatures as JsonValue[]).length };
}

/** Adds a signature to an existing record.json (k-of-n records). */
export async function addRecordSignature(path: string, key: SigningKey) {
  const doc = await readSigned(path, MAX_RECORD_BYTES);
  const updated = appendSignature(doc, key, true, path);
  await writeFileAtomic(path, formatDocument(updated));
}
