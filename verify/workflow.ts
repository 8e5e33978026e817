/**
 * "Verify these files": the one workflow every command that acts on a
 * manifest from disk runs (trust file → manifest → floor → checks →
 * artifacts), so the verifier and kexec cannot disagree on it.
 *
 * @module
 */
import { explainFsError, readFileCapped, UsageError } from "../core/mod.ts";
import { rawCid } from "./cid.ts";
import { VerifyError } from "./errors.ts";
import { enforceFloor } from "./floor.ts";
import { type Manifest, MAX_MANIFEST_BYTES } from "./manifest.ts";
import { loadTrust } from "./trust.ts";
import { loadStoredTrust } from "./trust_store.ts";
import { verifyArtifact, verifyManifest } from "./verify.ts";
import type { Verified } from "./_verified.ts";

/** What to verify: files on disk and the caller's expectations. */
export interface VerifyFilesOptions {
  /** Path of the manifest (read up to {@link MAX_MANIFEST_BYTES}). */
  readonly manifest: string;
  /**
   * Path of the trust file (see {@link loadTrust}): the pinned one. With
   * `stateDir`, the newest trust version accepted there applies instead.
   */
  readonly trust: string;
  /** Expected channel (none: the manifest's own). */
  readonly channel?: string;
  /** Expected arch or alias (none: the manifest's own). */
  readonly arch?: string;
  /** The clock (TM-03); defaults to the system clock. */
  readonly now?: Date;
  /** Lowest acceptable version (TM-02). */
  readonly minVersion?: string;
  /**
   * State directory holding the rollback floor. When given, the floor of
   * the manifest's own channel/arch always applies, with or without
   * `channel`/`arch` (TM-02).
   */
  readonly stateDir?: string;
  /** Artifacts to check against the manifest: name → path. */
  readonly artifacts?: ReadonlyMap<string, string>;
  /** The running entrypoint's permission set, named when it denied a read. */
  readonly permissionSet?: string;
}

/** What {@link verifyFiles} established. */
export interface VerifiedFiles {
  /** The verified manifest. */
  readonly verified: Verified<Manifest>;
  /** CID of the exact manifest bytes (formats.md §5). */
  readonly manifestCid: string;
  /** The floor that applied, if one was recorded. */
  readonly floor?: string;
  /** Names of the artifacts checked, in the order given. */
  readonly artifactsChecked: readonly string[];
}

/**
 * Parses repeated `--artifact NAME=PATH` values into a prototype-free map
 * (a name such as `constructor` is just a name). Throws `UsageError` on a
 * malformed or repeated name.
 */
export function parseArtifactArgs(
  values: readonly string[],
  usage: string,
): Map<string, string> {
  const out = new Map<string, string>();
  for (const a of values) {
    const eq = a.indexOf("=");
    if (eq <= 0 || eq === a.length - 1) {
      throw new UsageError(`--artifact takes NAME=PATH, got '${a}'`, usage);
    }
    const name = a.slice(0, eq);
    if (out.has(name)) throw new UsageError(`--artifact ${name} given twice`, usage);
    out.set(name, a.slice(eq + 1));
  }
  return out;
}

async function readManifest(path: string, set: string | undefined): Promise<Uint8Array> {
  try {
    return await readFileCapped(path, MAX_MANIFEST_BYTES);
  } catch (err) {
    const why = set !== undefined
      ? explainFsError(err, path, set)
      : `${path}: ${err instanceof Error ? err.message : String(err)}`;
    throw new VerifyError("E_IO", `cannot read ${why}`, {
      cause: err,
      hint: "check the path; a command reads only the directories its permission set lists",
    });
  }
}

/**
 * Verifies a manifest file and, optionally, artifact files: loads the trust
 * file, reads the manifest, runs every check of {@link verifyManifest}
 * (the rollback floor of the manifest's canonical channel/arch included
 * when `stateDir` is given), then hashes each artifact. Throws
 * `VerifyError` (or `UsageError` for an artifact the manifest does not
 * list) at the first failure.
 *
 * @example
 * ```ts ignore
 * const { verified } = await verifyFiles({
 *   manifest: "./artifacts/stable/amd64/manifest.json",
 *   trust: "./.phase/keys/trust.json",
 *   stateDir: "./.phase",
 *   artifacts: new Map([["kernel", "./artifacts/stable/amd64/kernel"]]),
 * });
 * ```
 */
export async function verifyFiles(opts: VerifyFilesOptions): Promise<VerifiedFiles> {
  const pinned = await loadTrust(opts.trust, { permissionSet: opts.permissionSet });
  const now = opts.now ?? new Date();
  // TM-09: with a state directory, the newest trust version this machine
  // accepted (re-verified from the pinned file) replaces the pinned one.
  const trust = opts.stateDir !== undefined
    ? (await loadStoredTrust(opts.stateDir, pinned, now)).trust
    : pinned;
  const bytes = await readManifest(opts.manifest, opts.permissionSet);
  const verified = verifyManifest(bytes, trust, {
    channel: opts.channel,
    arch: opts.arch,
    now,
    minVersion: opts.minVersion,
  });
  let floor: string | undefined;
  if (opts.stateDir !== undefined) {
    // TM-02: the floor is looked up by what the manifest IS (its channel and
    // canonical arch), never by the flags: without flags, or with an alias,
    // a floor that exists still applies.
    floor = await enforceFloor(opts.stateDir, verified);
  }
  const artifacts = opts.artifacts ?? new Map<string, string>();
  const listed = verified.value.artifacts;
  for (const name of artifacts.keys()) {
    if (!Object.hasOwn(listed, name)) {
      throw new UsageError(
        `manifest has no artifact '${name}'`,
        `it lists: ${Object.keys(listed).join(", ")}`,
      );
    }
  }
  for (const [name, path] of artifacts) await verifyArtifact(verified, name, path);
  return {
    verified,
    manifestCid: rawCid(bytes),
    floor,
    artifactsChecked: [...artifacts.keys()],
  };
}
