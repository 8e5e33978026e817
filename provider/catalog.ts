/**
 * The catalog: every `<root>/<channel>/<arch>` release the provider serves.
 * A pre-signed `manifest.json` is verified against the trust file and its
 * artifacts are hashed against it; otherwise, when the provider holds a
 * key, it generates and signs a manifest (in memory: the root is never
 * written). An invalid release is refused with a log line and never served.
 *
 * Hashes are cached by file identity (device, inode, size, mtime, ctime),
 * so a rescan re-hashes only what changed.
 *
 * @module
 */
import { readFileCapped } from "../core/mod.ts";
import type { Logger } from "../core/mod.ts";
import {
  buildManifestDocument,
  canonicalArch,
  compareVersions,
  isChannel,
  isoSeconds,
  type Manifest,
  MAX_CMDLINE_FILE_BYTES,
  MAX_MANIFEST_BYTES,
  MAX_RECORD_BYTES,
  MAX_TRUST_BYTES,
  parseTrust,
  rawCid,
  RELEASE_ARTIFACTS,
  SHA256_PREFIX,
  sha256Hex,
  type Trust,
  verifyManifest,
  verifyRecord,
} from "../verify/mod.ts";
import { buildRecord, formatDocument, signatureFor, type SigningKey } from "../sign/mod.ts";
import {
  type FileIdentity,
  HASH_CHUNK_BYTES,
  HashCache,
  hashIdentified,
  identityOf,
  sameIdentity,
  snapshotIdentified,
} from "./_hash_cache.ts";

export { HASH_CHUNK_BYTES, hashIdentified, identityOf, sameIdentity, snapshotIdentified };
export type { FileIdentity };

/** Most releases one provider loads (bounds a scan of a hostile tree). */
export const MAX_RELEASES = 256;
/** Most directory entries looked at per directory level. */
export const MAX_DIR_ENTRIES = 4096;
/** Default validity of a generated manifest, in milliseconds (7 days). */
export const DEFAULT_EXPIRES_MS = 7 * 86_400_000;

const ARTIFACT_NAME_RE = /^[a-z0-9][a-z0-9._-]{0,63}$/;
const RESERVED_NAMES = new Set(["manifest.json", "record.json", "cmdline"]);

/** One servable artifact: a file whose bytes hashed to `digest`. */
export interface Artifact {
  /** Artifact name in the manifest (`kernel`, `initramfs`, `rootfs`). */
  readonly name: string;
  /** Channel of the release it belongs to (`stable`, ...). */
  readonly channel: string;
  /** Canonical architecture of the release (`amd64`, `arm64`). */
  readonly arch: string;
  /** Path opened to serve it: the private snapshot, or the file in the root. */
  readonly path: string;
  /** The file in the root it came from (symlinks resolved, inside the root). */
  readonly source: string;
  /**
   * True when `path` is a private content-addressed snapshot only the
   * provider writes: it can be streamed by the fast path (TM-19 holds
   * because nobody rewrites it). False: served with a check per chunk.
   */
  readonly immutable: boolean;
  /** Lowercase hex SHA-256. */
  readonly digest: string;
  /** Size, in bytes. */
  readonly size: number;
  /** Identity of the file when it was hashed; serving re-checks it (TM-19). */
  readonly identity: FileIdentity;
}

/** One release as served. */
export interface Release {
  /** Channel (`stable`, ...): the first directory level under the root. */
  readonly channel: string;
  /** Canonical architecture (`amd64`, `arm64`): the second directory level. */
  readonly arch: string;
  /**
   * `pre-signed`: the root holds a `manifest.json` that verified against the
   * trust file; `generated`: the provider built and signed it with its key.
   */
  readonly origin: "pre-signed" | "generated";
  /** The decoded, verified manifest. */
  readonly manifest: Manifest;
  /** The exact signed manifest bytes served as `manifest.json`. */
  readonly manifestBytes: Uint8Array;
  /** Lowercase hex SHA-256 of the manifest bytes. */
  readonly manifestDigest: string;
  /** Raw-codec CIDv1 of the manifest bytes (`/ipfs/<cid>`). */
  readonly manifestCid: string;
  /** Signed discovery record bytes (formats.md §5), when there is one. */
  readonly record?: Uint8Array;
  /** The release's artifacts, by name. */
  readonly artifacts: ReadonlyMap<string, Artifact>;
  /** Keyids whose valid signatures the manifest carries (trusted ones). */
  readonly signers: readonly string[];
  /** Pre-signed: the trust file that verified it (a {@link TrustSource} path). */
  readonly trustedBy?: string;
}

/** A release directory that was not served, and why. */
export interface Refusal {
  /** The release directory (absolute, symlinks resolved). */
  readonly dir: string;
  /** Why it was refused; logged, never shown over HTTP. */
  readonly reason: string;
  /** The error's code (`E_SIGNATURE`, ...), shown over HTTP instead of the reason. */
  readonly code?: string;
  /**
   * What was refused when it is not the whole release (`record.json`: the
   * release is served without its record); shown over HTTP.
   */
  readonly item?: string;
}

/** An immutable snapshot of what is served. */
export interface Catalog {
  /** Releases by `<channel>/<arch>`. */
  readonly releases: ReadonlyMap<string, Release>;
  /** Artifacts by hex digest (`/cas/sha256/<hex>`, `/ipfs/<cid>`). */
  readonly byDigest: ReadonlyMap<string, Artifact>;
  /** Manifests by hex digest of their bytes (`/ipfs/<manifest_cid>`). */
  readonly manifestsByDigest: ReadonlyMap<string, Release>;
  /** Release directories found but not served, and why. */
  readonly refused: readonly Refusal[];
  /** When this catalog was loaded (the clock of the loader). */
  readonly loadedAt: Date;
  /**
   * The trust chain served as `/trust/<version>.json` (formats.md §1.1):
   * exact bytes and hex SHA-256 by version. Absent or empty: no chain.
   */
  readonly trustChain?: ReadonlyMap<
    number,
    { readonly bytes: Uint8Array; readonly digest: string }
  >;
}

/** The newest trust version a catalog serves, or `undefined` when it serves no chain. */
export function latestTrustVersion(catalog: Catalog): number | undefined {
  let max: number | undefined;
  for (const v of catalog.trustChain?.keys() ?? []) if (max === undefined || v > max) max = v;
  return max;
}

const TRUST_FILE_RE = /^([1-9][0-9]{0,8})\.json$/;

/** An empty catalog. */
export function emptyCatalog(now: Date = new Date()): Catalog {
  return {
    releases: new Map(),
    byDigest: new Map(),
    manifestsByDigest: new Map(),
    refused: [],
    loadedAt: now,
  };
}

/** How the catalog is built. */
export interface CatalogOptions {
  /** Directory of releases, `<root>/<channel>/<arch>/`; it is only read. */
  readonly root: string;
  /** Trust for pre-signed manifests and records; none: pre-signed ones are refused. */
  readonly trust?: Trust;
  /**
   * More trust sources, each with the file it came from: a pre-signed
   * manifest is served when it verifies against any one of them (or
   * {@link CatalogOptions.trust}). Each keeps its own threshold: sources
   * are never merged into one key set, so no k-of-n file is weakened.
   * A refusal names every file and the keyids it expected.
   */
  readonly trustSources?: readonly TrustSource[];
  /** Key to sign generated manifests with; none (`--no-sign`): only pre-signed ones. */
  readonly key?: SigningKey;
  /** Where refused releases and hashing are logged. */
  readonly logger: Logger;
  /**
   * Directory of the trust chain served as `/trust/<version>.json`
   * (default `<root>/trust`): files `<version>.json`, each a trust file of
   * that version. Clients verify every step; the provider only refuses
   * files that are not what their name says.
   */
  readonly trustChainDir?: string;
  /** Clock for expiry checks and generated manifests; default the system clock. */
  readonly now?: () => Date;
  /** Validity of generated manifests, in milliseconds; default {@link DEFAULT_EXPIRES_MS}. */
  readonly expiresInMs?: number;
  /** Base URL put in generated records' `mirrors` (e.g. `http://10.0.0.1:8080`). */
  readonly mirrorBase?: string;
  /**
   * Directory of private snapshots (`<state>/snapshots`): each artifact is
   * copied there while it is hashed, so the bytes served are exactly the
   * bytes hashed even if the root is rewritten in place (TM-19). None:
   * serve from the root with a check per chunk (slower).
   */
  readonly snapshotDir?: string;
}

/** A trust file the catalog verifies pre-signed manifests against. */
export interface TrustSource {
  /** Where it was read from, as shown in refusals (`./.phase/trust/trust.json`). */
  readonly path: string;
  /** Its parsed keys and threshold. */
  readonly trust: Trust;
}

/** Keyids of a manifest's signatures, read without verifying (for refusal messages only). */
export function signatureKeyids(bytes: Uint8Array): string[] {
  try {
    const doc = JSON.parse(new TextDecoder().decode(bytes));
    const sigs = Array.isArray(doc?.signatures) ? doc.signatures : [];
    return sigs.map((s: { keyid?: unknown }) => String(s?.keyid)).slice(0, 16);
  } catch {
    return [];
  }
}

/**
 * The text appended to a signature refusal: which trust files were used,
 * the keyids each expects (and how many of them), and the keyids that
 * signed the manifest, so a wrong `--trust` is visible at a glance (issue 11).
 */
export function trustMismatch(
  sources: readonly TrustSource[],
  signedBy: readonly string[],
): string {
  const expected = sources.map((s) =>
    `${s.path} expects ${s.trust.threshold} of [${[...s.trust.keys.keys()].join(", ")}]`
  );
  return `trust files used: ${expected.join("; ") || "none"}; the manifest is signed by [${
    signedBy.join(", ")
  }]`;
}

function versionAt(d: Date): string {
  const secs = d.getUTCHours() * 3600 + d.getUTCMinutes() * 60 + d.getUTCSeconds();
  return `${d.getUTCFullYear()}.${String(d.getUTCMonth() + 1).padStart(2, "0")}.${
    String(d.getUTCDate()).padStart(2, "0")
  }.${secs}`;
}

function bumpVersion(v: string): string {
  const parts = v.split(".");
  parts[parts.length - 1] = String(Number(parts[parts.length - 1]) + 1);
  return parts.join(".");
}

function trustOfKey(key: SigningKey): Trust {
  return {
    threshold: 1,
    keys: new Map([[key.keyid, { keyid: key.keyid, publicKey: key.publicRaw, name: "provider" }]]),
    version: 1,
    signatures: [],
    document: {},
  };
}

/**
 * Loads catalogs from a root; keeps hashes and generated manifests between
 * loads so unchanged files are not re-hashed and unchanged releases keep
 * their signed bytes.
 */
export class CatalogLoader {
  readonly #opts: CatalogOptions;
  readonly #cache: HashCache;
  #previous: Catalog = emptyCatalog();
  /** How many files were hashed in total (tests check re-hashing). */
  get hashedFiles(): number {
    return this.#cache.hashedFiles;
  }

  /** A loader for `opts.root`; nothing is read until {@link CatalogLoader.load}. */
  constructor(opts: CatalogOptions) {
    this.#opts = opts;
    this.#cache = new HashCache(opts.snapshotDir);
  }

  /** Changes the mirror base (known once the server listens). */
  setMirrorBase(base: string | undefined): void {
    (this.#opts as { mirrorBase?: string }).mirrorBase = base;
  }

  /** The last catalog loaded. */
  get current(): Catalog {
    return this.#previous;
  }

  /** Scans the root and returns a new catalog (the old one stays valid). */
  async load(): Promise<Catalog> {
    const now = (this.#opts.now ?? (() => new Date()))();
    const log = this.#opts.logger;
    const refused: Refusal[] = [];
    const releases = new Map<string, Release>();
    let rootReal: string;
    try {
      rootReal = await Deno.realPath(this.#opts.root);
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) {
        this.#previous = emptyCatalog(now);
        return this.#previous;
      }
      throw err;
    }
    const seen = new Set<string>();
    for (const channel of await this.#dirs(rootReal, rootReal)) {
      if (!isChannel(channel)) continue;
      for (const archName of await this.#dirs(`${rootReal}/${channel}`, rootReal)) {
        const arch = canonicalArch(archName);
        if (!arch || arch !== archName) continue;
        const dir = `${rootReal}/${channel}/${arch}`;
        if (releases.size >= MAX_RELEASES) {
          refused.push({ dir, reason: `more than ${MAX_RELEASES} releases` });
          continue;
        }
        try {
          const release = await this.#loadRelease(dir, rootReal, channel, arch, now, seen);
          if (release) releases.set(`${channel}/${arch}`, release);
        } catch (err) {
          const reason = err instanceof Error ? err.message : String(err);
          const code = (err as { code?: unknown }).code;
          refused.push({ dir, reason, code: typeof code === "string" ? code : undefined });
          log.warn("release_refused", { dir, reason });
        }
      }
    }
    // Forget hashes of files no longer present.
    this.#cache.keepOnly(seen);
    const byDigest = new Map<string, Artifact>();
    const manifestsByDigest = new Map<string, Release>();
    for (const r of releases.values()) {
      manifestsByDigest.set(r.manifestDigest, r);
      for (const a of r.artifacts.values()) if (!byDigest.has(a.digest)) byDigest.set(a.digest, a);
    }
    const trustChain = await this.#loadTrustChain(this.#opts.trustChainDir ?? `${rootReal}/trust`);
    this.#previous = { releases, byDigest, manifestsByDigest, refused, loadedAt: now, trustChain };
    await this.#cache.collectSnapshots(new Set(this.#previous.byDigest.keys()));
    return this.#previous;
  }

  /** Reads `<dir>/<version>.json` files (regular files only, capped, checked by name). */
  async #loadTrustChain(dir: string) {
    const out = new Map<number, { bytes: Uint8Array; digest: string }>();
    const log = this.#opts.logger;
    let count = 0;
    try {
      for await (const e of Deno.readDir(dir)) {
        if (++count > MAX_DIR_ENTRIES) break;
        const m = TRUST_FILE_RE.exec(e.name);
        // TM-10: regular files only; a symlink is never followed.
        if (!m || !e.isFile) continue;
        const path = `${dir}/${e.name}`;
        try {
          const bytes = await readFileCapped(path, MAX_TRUST_BYTES);
          const trust = parseTrust(bytes);
          if (trust.version !== Number(m[1])) {
            throw new Error(`it is trust version ${trust.version}, not ${m[1]}`);
          }
          out.set(trust.version, { bytes, digest: sha256Hex(bytes) });
        } catch (err) {
          log.warn("trust_version_refused", { path, reason: (err as Error).message });
        }
      }
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound || err instanceof Deno.errors.NotADirectory)) {
        throw err;
      }
    }
    return out;
  }

  async #dirs(path: string, rootReal: string): Promise<string[]> {
    const out: string[] = [];
    let count = 0;
    try {
      for await (const e of Deno.readDir(path)) {
        if (++count > MAX_DIR_ENTRIES) break;
        if (e.name.startsWith(".")) continue;
        if (e.isDirectory) out.push(e.name);
        else if (e.isSymlink) {
          // TM-10: a symlinked directory must stay inside the root.
          const real = await Deno.realPath(`${path}/${e.name}`).catch(() => "");
          if (real.startsWith(rootReal + "/") && (await Deno.stat(real)).isDirectory) {
            out.push(e.name);
          } else {
            this.#opts.logger.warn("symlink_outside_root", { path: `${path}/${e.name}` });
          }
        }
      }
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound || err instanceof Deno.errors.NotADirectory)) {
        throw err;
      }
    }
    return out.sort();
  }

  /** Resolves an artifact file inside the root, or returns undefined. */
  async #artifactFile(dir: string, name: string, rootReal: string): Promise<string | undefined> {
    const path = `${dir}/${name}`;
    let info: Deno.FileInfo;
    try {
      info = await Deno.lstat(path);
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) return undefined;
      throw err;
    }
    let real = path;
    if (info.isSymlink) {
      real = await Deno.realPath(path).catch(() => "");
      // TM-10: symlinks that lead out of the root are never followed.
      if (!real.startsWith(rootReal + "/")) {
        this.#opts.logger.warn("symlink_outside_root", { path });
        return undefined;
      }
      info = await Deno.stat(real);
    }
    if (!info.isFile) return undefined;
    return real;
  }

  async #loadRelease(
    dir: string,
    rootReal: string,
    channel: string,
    arch: string,
    now: Date,
    seen: Set<string>,
  ): Promise<Release | undefined> {
    const manifestPath = await this.#artifactFile(dir, "manifest.json", rootReal);
    if (manifestPath) {
      return await this.#loadPreSigned(dir, manifestPath, rootReal, channel, arch, now, seen);
    }
    if (!this.#opts.key) {
      throw new Error("no manifest.json and signing is off (--no-sign): not served");
    }
    return await this.#generate(dir, rootReal, channel, arch, now, seen);
  }

  async #collect(
    dir: string,
    names: readonly string[],
    rootReal: string,
    channel: string,
    arch: string,
    seen: Set<string>,
    required: (name: string) => boolean,
  ): Promise<Map<string, Artifact>> {
    const out = new Map<string, Artifact>();
    for (const name of names) {
      if (!ARTIFACT_NAME_RE.test(name) || RESERVED_NAMES.has(name)) {
        throw new Error(`artifact name '${name}' cannot be served`);
      }
      const path = await this.#artifactFile(dir, name, rootReal);
      if (!path) {
        if (required(name)) throw new Error(`${dir}/${name} is missing`);
        continue;
      }
      const h = await this.#cache.hash(path, seen);
      out.set(name, {
        name,
        channel,
        arch,
        path: h.servePath,
        source: path,
        immutable: h.servePath !== path,
        digest: h.digest,
        size: h.serveIdentity.size,
        identity: h.serveIdentity,
      });
    }
    return out;
  }

  async #loadPreSigned(
    dir: string,
    manifestPath: string,
    rootReal: string,
    channel: string,
    arch: string,
    now: Date,
    seen: Set<string>,
  ): Promise<Release> {
    const sources: TrustSource[] = [
      ...(this.#opts.trust ? [{ path: "(given trust)", trust: this.#opts.trust }] : []),
      ...(this.#opts.trustSources ?? []),
    ];
    if (sources.length === 0) {
      throw Object.assign(
        new Error(
          "pre-signed manifest.json but no trust file to verify it (pass --trust FILE, or run 'deno task keygen' to write ./.phase/trust/trust.json)",
        ),
        { code: "E_TRUST" },
      );
    }
    const bytes = await readFileCapped(manifestPath, MAX_MANIFEST_BYTES);
    // The first source that verifies it wins; each keeps its own threshold.
    let verified: ReturnType<typeof verifyManifest> | undefined;
    let trust: Trust = sources[0].trust;
    let trustedBy = sources[0].path;
    let first: unknown;
    for (const s of sources) {
      try {
        verified = verifyManifest(bytes, s.trust, { channel, arch, now });
        trust = s.trust;
        trustedBy = s.path;
        break;
      } catch (err) {
        first ??= err;
      }
    }
    if (!verified) {
      const code = (first as { code?: string }).code;
      if (code !== "E_SIGNATURE") throw first;
      throw Object.assign(
        new Error(
          `${(first as Error).message}; ${trustMismatch(sources, signatureKeyids(bytes))}`,
        ),
        { code },
      );
    }
    const manifest = verified.value;
    const artifacts = await this.#collect(
      dir,
      Object.keys(manifest.artifacts),
      rootReal,
      channel,
      arch,
      seen,
      () => true,
    );
    for (const [name, ref] of Object.entries(manifest.artifacts)) {
      const a = artifacts.get(name)!;
      // TM-01: never serve bytes under a manifest that does not describe them.
      if (a.size !== ref.size || `sha256:${a.digest}` !== ref.digest) {
        throw new Error(`${dir}/${name} does not match the signed manifest (size or digest)`);
      }
    }
    const manifestCid = rawCid(bytes);
    let record: Uint8Array | undefined;
    const recordPath = await this.#artifactFile(dir, "record.json", rootReal);
    if (recordPath) {
      try {
        const rb = await readFileCapped(recordPath, MAX_RECORD_BYTES);
        const rec = verifyRecord(rb, trust, now);
        if (rec.value.manifestCid !== manifestCid) {
          throw new Error("record.json names another manifest (manifest_cid differs)");
        }
        record = rb;
      } catch (err) {
        this.#opts.logger.warn("record_refused", {
          path: recordPath,
          reason: err instanceof Error ? err.message : String(err),
        });
      }
    }
    if (!record && this.#opts.key) {
      record = this.#signRecord(bytes, manifest, channel, arch);
    }
    return {
      channel,
      arch,
      origin: "pre-signed",
      manifest,
      manifestBytes: bytes,
      manifestDigest: sha256Hex(bytes),
      manifestCid,
      record,
      artifacts,
      signers: verified.signers,
      trustedBy,
    };
  }

  #signRecord(bytes: Uint8Array, manifest: Manifest, channel: string, arch: string): Uint8Array {
    const key = this.#opts.key!;
    const base = this.#opts.mirrorBase;
    const mirrors = base ? [`${base}/${channel}/${arch}/manifest.json`] : [];
    const doc = buildRecord(
      bytes,
      { version: manifest.version, expires_at: isoSeconds(manifest.expiresAt) },
      mirrors,
      [],
    );
    return formatDocument({ ...doc, signatures: [signatureFor(doc, key, true)] });
  }

  async #generate(
    dir: string,
    rootReal: string,
    channel: string,
    arch: string,
    now: Date,
    seen: Set<string>,
  ): Promise<Release> {
    const key = this.#opts.key!;
    const artifacts = await this.#collect(
      dir,
      RELEASE_ARTIFACTS,
      rootReal,
      channel,
      arch,
      seen,
      (n) => n !== "rootfs",
    );
    let cmdline = "";
    const cmdPath = await this.#artifactFile(dir, "cmdline", rootReal);
    if (cmdPath) {
      cmdline = new TextDecoder().decode(await readFileCapped(cmdPath, MAX_CMDLINE_FILE_BYTES))
        .trim();
    }
    const refs = [...artifacts].map((
      [name, a],
    ) => [name, { digest: SHA256_PREFIX + a.digest, size: a.size }] as const);
    const artifactDoc = Object.fromEntries(refs);
    const expiresInMs = this.#opts.expiresInMs ?? DEFAULT_EXPIRES_MS;
    const prev = this.#previous.releases.get(`${channel}/${arch}`);
    // Keep the signed bytes while nothing changed and half the validity remains.
    if (
      prev && prev.origin === "generated" && prev.manifest.cmdline === cmdline &&
      JSON.stringify(prev.manifest.document.artifacts) === JSON.stringify(artifactDoc) &&
      prev.manifest.expiresAt.getTime() - now.getTime() > expiresInMs / 2 &&
      prev.signers.includes(key.keyid)
    ) {
      return { ...prev, artifacts };
    }
    let version = versionAt(now);
    if (prev && compareVersions(version, prev.manifest.version) <= 0) {
      version = bumpVersion(prev.manifest.version);
    }
    const doc = buildManifestDocument({
      version,
      channel,
      arch,
      now,
      expiresInMs,
      cmdline,
      artifacts: refs,
    });
    const bytes = formatDocument({ ...doc, signatures: [signatureFor(doc, key, false)] });
    const verified = verifyManifest(bytes, trustOfKey(key), { channel, arch, now });
    this.#opts.logger.info("manifest_generated", { channel, arch, version, keyid: key.keyid });
    return {
      channel,
      arch,
      origin: "generated",
      manifest: verified.value,
      manifestBytes: bytes,
      manifestDigest: sha256Hex(bytes),
      manifestCid: rawCid(bytes),
      record: this.#signRecord(bytes, verified.value, channel, arch),
      artifacts,
      signers: verified.signers,
    };
  }
}
