/**
 * Manifest verification (formats.md §1). Checks run in the spec's order
 * and the first failure throws a {@link VerifyError}; success returns a
 * `Verified<Manifest>`. Never touches the network.
 *
 * @module
 */
import { hashFile } from "./digest.ts";
import { VerifyError } from "./errors.ts";
import { verifyStrict } from "./ed25519.ts";
import { signedBytes } from "./jcs.ts";
import {
  canonicalArch,
  decodeManifest,
  isChannel,
  type Manifest,
  MAX_MANIFEST_BYTES,
  parseDocument,
  type SignatureEntry,
} from "./manifest.ts";
import type { JsonValue } from "./strict_json.ts";
import { checkTrustCurrent, type Trust } from "./trust.ts";
import { compareVersions, isVersion } from "./version.ts";
import { _seal, assertVerified, type Verified } from "./_verified.ts";

/** What a caller asks of a manifest beyond authenticity. */
export interface VerifyOptions {
  /** Expected channel (none: any). */
  readonly channel?: string;
  /** Expected arch or alias (none: any). */
  readonly arch?: string;
  /** The clock (TM-03: freeze). Injected; defaults to the system clock. */
  readonly now?: Date;
  /** Lowest acceptable version (TM-02: rollback). */
  readonly minVersion?: string;
  /** Highest version accepted before on this machine for this channel/arch. */
  readonly floor?: string;
}

/**
 * Counts distinct trusted keyids with a valid signature over `message`.
 * Keys not in the trust file are ignored; a keyid counts once (TM-09).
 */
export function countValidSignatures(
  message: Uint8Array,
  signatures: readonly SignatureEntry[],
  trust: Trust,
): string[] {
  const good = new Set<string>();
  for (const { keyid, sig } of signatures) {
    if (good.has(keyid)) continue;
    const key = trust.keys.get(keyid);
    if (!key) continue;
    if (verifyStrict(key.publicKey, message, sig)) good.add(keyid);
  }
  return [...good];
}

/** Checks the signature threshold of any signed document, or throws E_SIGNATURE. */
export function checkThreshold(
  doc: { readonly [key: string]: JsonValue },
  signatures: readonly SignatureEntry[],
  trust: Trust,
  what: string,
): string[] {
  const signers = countValidSignatures(signedBytes(doc), signatures, trust);
  if (signers.length < trust.threshold) {
    throw new VerifyError(
      "E_SIGNATURE",
      `${what} has ${signers.length} valid trusted signature(s), ${trust.threshold} required`,
      {
        hint: "it was altered after signing, or signed by a key your trust file does not list",
      },
    );
  }
  return signers;
}

function usageMismatch(message: string): VerifyError {
  return new VerifyError("E_MISMATCH", message, {
    hint: "ask for the channel/arch this manifest was signed for, or fetch the right manifest",
  });
}

function checkNotBelow(version: string, lower: string | undefined, label: string): void {
  if (lower === undefined) return;
  if (!isVersion(lower)) {
    throw new VerifyError("E_ROLLBACK", `${label} '${lower}' is not a version`);
  }
  if (compareVersions(version, lower) < 0) {
    throw new VerifyError(
      "E_ROLLBACK",
      `version ${version} is below the ${label} ${lower} (TM-02)`,
      {
        hint: "a provider offers an older release than this machine accepts; find a current one",
      },
    );
  }
}

/**
 * The rollback check alone, for a manifest already verified without a
 * floor: the last check of {@link verifyManifest}, so the order of checks
 * (and of errors) is the same as passing `floor` there (TM-02).
 */
export function checkFloor(verified: Verified<Manifest>, floor: string | undefined): void {
  checkNotBelow(assertVerified(verified).value.version, floor, "accepted floor");
}

/** Verifies manifest bytes against a trust file. */
export function verifyManifest(
  bytes: Uint8Array,
  trust: Trust,
  opts: VerifyOptions = {},
): Verified<Manifest> {
  const doc = parseDocument(bytes, "manifest", MAX_MANIFEST_BYTES);
  const manifest = decodeManifest(doc);
  const now = opts.now ?? new Date();
  // TM-09: an expired trust version verifies nothing by itself.
  checkTrustCurrent(trust, now);
  const signers = checkThreshold(doc, manifest.signatures, trust, "manifest");
  if (opts.channel !== undefined) {
    if (!isChannel(opts.channel)) throw usageMismatch(`invalid channel '${opts.channel}'`);
    if (opts.channel !== manifest.channel) {
      throw usageMismatch(
        `manifest is for channel '${manifest.channel}', not '${opts.channel}' (TM-04)`,
      );
    }
  }
  if (opts.arch !== undefined) {
    const want = canonicalArch(opts.arch);
    if (want !== manifest.arch) {
      throw usageMismatch(
        `manifest is for arch '${manifest.arch}', not '${opts.arch}' (TM-04)`,
      );
    }
  }
  if (now.getTime() >= manifest.expiresAt.getTime()) {
    throw new VerifyError(
      "E_EXPIRED",
      `manifest expired at ${manifest.expiresAt.toISOString()} (now ${now.toISOString()})`,
      {
        hint:
          "the provider serves a stale (frozen) release; ask it to re-sign, or check this machine's clock",
      },
    );
  }
  checkNotBelow(manifest.version, opts.minVersion, "min_version");
  checkNotBelow(manifest.version, opts.floor, "accepted floor");
  return _seal(manifest, bytes, signers);
}

/** Checks an open file's size and digest against a verified artifact. */
export async function checkArtifactFile(
  verified: Verified<Manifest>,
  name: string,
  file: Deno.FsFile,
): Promise<void> {
  const artifacts = assertVerified(verified).value.artifacts;
  // A name from the command line or the network: only the manifest's own
  // members count, never Object.prototype's (`constructor`, `__proto__`).
  if (!Object.hasOwn(artifacts, name)) {
    throw new VerifyError("E_SCHEMA", `manifest has no artifact '${name}'`, {
      hint: `it lists: ${Object.keys(artifacts).join(", ")}`,
    });
  }
  const ref = artifacts[name];
  const { size, digest, overflow } = await hashFile(file, ref.size);
  if (overflow || size !== ref.size) {
    throw new VerifyError(
      "E_SIZE",
      `artifact '${name}' has ${
        overflow ? "more than " + ref.size : size
      } bytes, manifest says ${ref.size}`,
      { hint: "the artifact is truncated or padded: fetch it again" },
    );
  }
  if (digest !== ref.digest) {
    throw new VerifyError(
      "E_DIGEST",
      `artifact '${name}' hashes to ${digest}, manifest says ${ref.digest} (TM-01)`,
      { hint: "the artifact was tampered with or corrupted: fetch it again from another provider" },
    );
  }
}

/** Checks the artifact at `path` (opened once, hashed by streaming). */
export async function verifyArtifact(
  verified: Verified<Manifest>,
  name: string,
  path: string,
): Promise<void> {
  let file: Deno.FsFile;
  try {
    file = await Deno.open(path, { read: true });
  } catch (err) {
    throw new VerifyError(
      "E_IO",
      `cannot open artifact '${name}' at ${path}: ${(err as Error).message}`,
      { cause: err },
    );
  }
  try {
    if (!(await file.stat()).isFile) {
      throw new VerifyError("E_IO", `artifact '${name}' at ${path} is not a regular file`, {
        hint: "give --artifact NAME=PATH the path of the artifact file itself, not a directory",
      });
    }
    await checkArtifactFile(verified, name, file);
  } finally {
    file.close();
  }
}
