/**
 * The catalog of a re-serving provider (`serve --from-cache DIR`): the
 * releases found in a client's content-addressed cache (client/cache.ts
 * layout). Manifests and records are the exact signed bytes `fetch` stored
 * in `cas/sha256/`; artifacts are the `cas/sha256/<hex>` files they name.
 *
 * Nothing in the cache is trusted because it is there: each manifest is
 * verified again under the trust file (signature threshold, expiry, the
 * cache's rollback floor), each artifact is hashed against the digest it
 * is named by, and a record is served only when its signature holds and it
 * names that manifest. The trust file is walked forward through the trust
 * versions the device accepted (`<cache>/state/trust/`, TM-09), each step
 * verified again, and the walked versions are served as
 * `/trust/<version>.json`. What fails is refused: logged once with the reason
 * and listed (channel/arch + code) on the status page. The provider holds
 * no signing key: it can re-serve, never re-sign.
 *
 * @module
 */
import type { Logger } from "../core/mod.ts";
import { readFileCapped } from "../core/mod.ts";
import {
  compareVersions,
  decodeManifest,
  loadStoredTrust,
  type Manifest,
  MAX_MANIFEST_BYTES,
  MAX_RECORD_BYTES,
  parseDocument,
  rawCid,
  readFloor,
  sha256Hex,
  type Trust,
  verifyManifest,
  verifyRecord,
} from "../verify/mod.ts";
import { HashCache, type Hashed } from "./_hash_cache.ts";
import {
  type Artifact,
  type Catalog,
  emptyCatalog,
  type Refusal,
  type Release,
  trustMismatch,
  type TrustSource,
} from "./catalog.ts";

/** Most `cas/sha256/` entries looked at per scan (bounds a scan of a hostile cache). */
export const MAX_CACHE_ENTRIES = 65_536;
/** Most releases (channel/arch) one re-serving provider offers. */
export const MAX_CACHE_RELEASES = 256;
/** Most manifest versions tried per channel/arch, newest first. */
export const MAX_VERSIONS_TRIED = 8;

const HEX_RE = /^[0-9a-f]{64}$/;

/** What {@link CacheCatalogLoader} needs. */
export interface CacheCatalogOptions {
  /** The cache root: `<cache>/cas/sha256/` and `<cache>/state/` (the rollback floor). */
  readonly cacheDir: string;
  /** Trust files a manifest must verify against (any one, each with its own threshold). */
  readonly trustSources: readonly TrustSource[];
  /** Where refusals (once each) and hashing are logged. */
  readonly logger: Logger;
  /** Clock for expiry; default the system clock. */
  readonly now?: () => Date;
  /**
   * Private snapshots (`<state>/snapshots`): each artifact is copied while
   * hashed, so the bytes served are the bytes hashed even if the cache is
   * rewritten (TM-19). None: serve from `cas/` with a check per chunk.
   */
  readonly snapshotDir?: string;
  /**
   * The device's state: the rollback floor (`floor.json`, TM-02) and the
   * trust versions `fetch` accepted (`trust/<v>.json`, `trust-floor.json`,
   * TM-09); default `<cache>/state`.
   */
  readonly floorDir?: string;
}

/** The trust a scan verifies with: each source walked forward, and the chain it walked. */
interface ScanTrust {
  readonly sources: readonly TrustSource[];
  /** Accepted versions above the pinned ones, served as `/trust/<version>.json`. */
  readonly chain: Map<number, { bytes: Uint8Array; digest: string }>;
}

/** A manifest candidate found in cas/ (decoded, not yet verified). */
interface Found {
  readonly hex: string;
  readonly bytes: Uint8Array;
  readonly manifest: Manifest;
}

/** Thrown inside a release check; carries the code shown on the status page. */
class Refused extends Error {
  constructor(readonly code: string, message: string) {
    super(message);
  }
}

/**
 * Loads the catalog of a cache. Same shape as {@link CatalogLoader}
 * (`current`, `load`, `hashedFiles`), so the server, the HTTP handler and
 * the advertisers are unchanged.
 */
export class CacheCatalogLoader {
  readonly #opts: CacheCatalogOptions;
  readonly #cache: HashCache;
  #previous: Catalog = emptyCatalog();
  // Refusals already logged (digest + code + reason): logged once, shown always.
  #logged = new Set<string>();
  /** How many files were hashed in total. */
  get hashedFiles(): number {
    return this.#cache.hashedFiles;
  }

  /** A loader for `opts.cacheDir`; nothing is read until {@link CacheCatalogLoader.load}. */
  constructor(opts: CacheCatalogOptions) {
    this.#opts = opts;
    this.#cache = new HashCache(opts.snapshotDir);
  }

  /** The last catalog loaded. */
  get current(): Catalog {
    return this.#previous;
  }

  /** No effect: a re-serving provider signs no record, so it names no mirror. */
  setMirrorBase(_base: string | undefined): void {}

  /** Scans the cache and returns a new catalog (the old one stays valid). */
  async load(): Promise<Catalog> {
    const now = (this.#opts.now ?? (() => new Date()))();
    let root: string;
    try {
      root = await Deno.realPath(this.#opts.cacheDir);
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) {
        this.#previous = emptyCatalog(now);
        return this.#previous;
      }
      throw err;
    }
    const cas = `${root}/cas/sha256`;
    const refused: Refusal[] = [];
    const trust = await this.#trust(root, now, refused);
    const manifests = new Map<string, Found[]>();
    const records = new Map<string, { hex: string; bytes: Uint8Array }[]>();
    const seen = new Set<string>();
    await this.#scanSmall(cas, refused, manifests, records);
    const releases = new Map<string, Release>();
    for (const [key, list] of [...manifests].sort(([a], [b]) => a.localeCompare(b))) {
      if (releases.size >= MAX_CACHE_RELEASES) {
        this.#refuse(
          refused,
          `${root}/${key}`,
          "E_CACHE",
          `more than ${MAX_CACHE_RELEASES} releases`,
          key,
        );
        continue;
      }
      // Newest first; the first that verifies completely is served, older ones are superseded.
      list.sort((a, b) => compareVersions(b.manifest.version, a.manifest.version));
      for (const f of list.slice(0, MAX_VERSIONS_TRIED)) {
        try {
          const r = await this.#release(
            cas,
            f,
            trust.sources,
            now,
            records.get(rawCid(f.bytes)) ?? [],
            seen,
            refused,
            root,
          );
          releases.set(key, r);
          break;
        } catch (err) {
          const code = err instanceof Refused
            ? err.code
            : (err as { code?: unknown }).code as string | undefined ?? "E_REFUSED";
          this.#refuse(
            refused,
            `${root}/${key}`,
            code,
            `manifest ${f.manifest.version} (cas/sha256/${f.hex}): ${(err as Error).message}`,
            `${f.hex}`,
          );
        }
      }
    }
    this.#cache.keepOnly(seen);
    const byDigest = new Map<string, Artifact>();
    const manifestsByDigest = new Map<string, Release>();
    for (const r of releases.values()) {
      manifestsByDigest.set(r.manifestDigest, r);
      for (const a of r.artifacts.values()) if (!byDigest.has(a.digest)) byDigest.set(a.digest, a);
    }
    this.#previous = {
      releases,
      byDigest,
      manifestsByDigest,
      refused,
      loadedAt: now,
      trustChain: trust.chain,
    };
    await this.#cache.collectSnapshots(new Set(this.#previous.byDigest.keys()));
    return this.#previous;
  }

  /**
   * TM-09: each trust file walked forward through the trust versions this
   * device accepted (`<state>/trust/`), as `fetch` and `kexec` do, so a
   * release signed only by a rotated-in key is served and a retired key's
   * signatures no longer count. The cache is not trusted: every stored
   * version is verified again from the pinned file, and a chain that does
   * not verify or ends below the device's trust-version floor (a version
   * removed) drops that trust file for the scan: nothing it would have
   * verified is served (fail closed, listed as `E_TRUST`). The versions
   * walked are served as `/trust/<version>.json`, so a peer that has not
   * rotated yet can walk forward from this node.
   */
  async #trust(root: string, now: Date, refused: Refusal[]): Promise<ScanTrust> {
    const stateDir = this.#opts.floorDir ?? `${root}/state`;
    const sources: TrustSource[] = [];
    const chain = new Map<number, { bytes: Uint8Array; digest: string }>();
    for (const s of this.#opts.trustSources) {
      try {
        const stored = await loadStoredTrust(stateDir, s.trust, now);
        const last = stored.steps.at(-1);
        sources.push(
          last
            ? {
              path: `${s.path} -> ${stateDir}/trust/${last.trust.version}.json`,
              trust: stored.trust,
            }
            : s,
        );
        for (const step of stored.steps) {
          chain.set(step.trust.version, { bytes: step.bytes, digest: sha256Hex(step.bytes) });
        }
      } catch (err) {
        this.#refuse(
          refused,
          `${stateDir}/trust`,
          (err as { code?: string }).code ?? "E_TRUST",
          `trust ${s.path} walked through ${stateDir}/trust: ${(err as Error).message}`,
          s.path,
        );
      }
    }
    return { sources, chain };
  }

  /** Refusal: listed every scan, logged once (same manifest, same code, same reason). */
  #refuse(out: Refusal[], dir: string, code: string, reason: string, id: string, item?: string) {
    out.push({ dir, reason, code, ...(item ? { item } : {}) });
    const k = `${id}|${code}|${item ?? ""}|${reason}`;
    if (this.#logged.has(k)) return;
    this.#logged.add(k);
    this.#opts.logger.warn(item ? "record_refused" : "release_refused", {
      dir,
      code,
      reason,
      ...(item ? { item } : {}),
    });
  }

  /**
   * Reads every small cas/ entry once: a manifest (by schema) or a record
   * (a `manifest_cid`); large files are artifacts and are hashed only when
   * a verified manifest names them.
   */
  async #scanSmall(
    cas: string,
    refused: Refusal[],
    manifests: Map<string, Found[]>,
    records: Map<string, { hex: string; bytes: Uint8Array }[]>,
  ): Promise<void> {
    let count = 0;
    let entries: Deno.DirEntry[] = [];
    try {
      for await (const e of Deno.readDir(cas)) {
        if (++count > MAX_CACHE_ENTRIES) break;
        entries.push(e);
      }
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) return;
      throw err;
    }
    entries = entries.filter((e) => e.isFile && HEX_RE.test(e.name));
    for (const e of entries) {
      const path = `${cas}/${e.name}`;
      let info: Deno.FileInfo;
      try {
        info = await Deno.stat(path);
      } catch {
        continue;
      }
      if (info.size > Math.max(MAX_MANIFEST_BYTES, MAX_RECORD_BYTES) || info.size === 0) continue;
      let bytes: Uint8Array;
      try {
        bytes = await readFileCapped(path, Math.max(MAX_MANIFEST_BYTES, MAX_RECORD_BYTES));
      } catch {
        continue;
      }
      if (bytes[0] !== 0x7b) continue; // not JSON: a small artifact
      let doc;
      try {
        doc = parseDocument(bytes, "cache entry", Math.max(MAX_MANIFEST_BYTES, MAX_RECORD_BYTES));
      } catch {
        continue; // JSON-looking artifact bytes
      }
      const isRecord = typeof doc.manifest_cid === "string";
      let manifest: Manifest | undefined;
      if (!isRecord) {
        try {
          manifest = decodeManifest(doc);
        } catch {
          continue;
        }
      }
      // TM-01: a cas entry must hash to its name; a manifest or record that
      // does not was changed in the cache and is never served.
      if (sha256Hex(bytes) !== e.name) {
        const root = cas.slice(0, -"/cas/sha256".length);
        // A record's channel/arch is unknown until it verifies: named by its cas entry.
        const where = manifest
          ? `${manifest.channel}/${manifest.arch}`
          : `cas/${e.name.slice(0, 12)}`;
        this.#refuse(
          refused,
          `${root}/${where}`,
          "E_DIGEST",
          `cas/sha256/${e.name} does not hash to its name`,
          e.name,
          manifest ? undefined : "record.json",
        );
        continue;
      }
      if (isRecord) {
        const list = records.get(doc.manifest_cid as string) ?? [];
        list.push({ hex: e.name, bytes });
        records.set(doc.manifest_cid as string, list);
      } else {
        const key = `${manifest!.channel}/${manifest!.arch}`;
        const list = manifests.get(key) ?? [];
        list.push({ hex: e.name, bytes, manifest: manifest! });
        manifests.set(key, list);
      }
    }
  }

  /** Verifies one manifest and its artifacts (and picks a verifying record). */
  async #release(
    cas: string,
    f: Found,
    sources: readonly TrustSource[],
    now: Date,
    records: readonly { hex: string; bytes: Uint8Array }[],
    seen: Set<string>,
    refused: Refusal[],
    root: string,
  ): Promise<Release> {
    const { channel, arch } = f.manifest;
    const floorDir = this.#opts.floorDir ?? `${root}/state`;
    // TM-02: the device's own floor; a cache holding an older manifest
    // (or one planted there) is not re-served below it.
    const floor = await readFloor(floorDir, channel, arch);
    if (sources.length === 0) {
      throw new Refused(
        "E_TRUST",
        this.#opts.trustSources.length === 0
          ? "no trust file to verify it"
          : "no trust file to verify it: the cache's trust chain does not verify (see the refusal of state/trust)",
      );
    }
    let verified: ReturnType<typeof verifyManifest> | undefined;
    let trust: Trust = sources[0].trust;
    let trustedBy = sources[0].path;
    let first: unknown;
    for (const s of sources) {
      try {
        verified = verifyManifest(f.bytes, s.trust, { channel, arch, now, floor });
        trust = s.trust;
        trustedBy = s.path;
        break;
      } catch (err) {
        first ??= err;
      }
    }
    if (!verified) {
      const code = (first as { code?: string }).code ?? "E_REFUSED";
      const signers = f.manifest.signatures.map((s) => s.keyid);
      throw new Refused(
        code,
        code === "E_SIGNATURE"
          ? `${(first as Error).message}; ${trustMismatch(sources, signers)}`
          : (first as Error).message,
      );
    }
    const manifest = verified.value;
    const artifacts = new Map<string, Artifact>();
    for (const [name, ref] of Object.entries(manifest.artifacts)) {
      const hex = ref.digest.slice("sha256:".length);
      const path = `${cas}/${hex}`;
      let h: Hashed;
      try {
        h = await this.#cache.hash(path, seen);
      } catch (err) {
        if (err instanceof Deno.errors.NotFound) {
          throw new Refused(
            "E_CACHE",
            `artifact '${name}' (cas/sha256/${hex}) is not in the cache`,
          );
        }
        throw err;
      }
      // TM-01: a cas file that does not hash to its name is never served.
      if (h.digest !== hex || h.serveIdentity.size !== ref.size) {
        throw new Refused(
          "E_DIGEST",
          `artifact '${name}': cas/sha256/${hex} does not hash to its name (got sha256:${h.digest}, ${h.serveIdentity.size} bytes)`,
        );
      }
      artifacts.set(name, {
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
    const manifestCid = rawCid(f.bytes);
    let record: Uint8Array | undefined;
    for (const rec of records) {
      try {
        const v = verifyRecord(rec.bytes, trust, now);
        if (v.value.manifestCid !== manifestCid) throw new Error("names another manifest");
        record = rec.bytes;
        break;
      } catch (err) {
        // A record whose signature fails is never served; the release still is.
        this.#refuse(
          refused,
          `${root}/${channel}/${arch}`,
          (err as { code?: string }).code ?? "E_MISMATCH",
          `record cas/sha256/${rec.hex}: ${(err as Error).message}`,
          rec.hex,
          "record.json",
        );
      }
    }
    return {
      channel,
      arch,
      origin: "pre-signed",
      manifest,
      manifestBytes: f.bytes,
      manifestDigest: f.hex,
      manifestCid,
      record,
      artifacts,
      signers: verified.signers,
      trustedBy,
    };
  }
}
