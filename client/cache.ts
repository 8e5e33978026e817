/**
 * The content-addressed cache (formats.md §2): `<cache>/cas/sha256/<hex>`
 * holds only files whose full content hashed to their name. Downloads grow
 * in `<cache>/partial/<hex>` (a contiguous prefix, so an interrupted
 * transfer resumes by Range) and enter `cas/` by fsync + rename only after
 * the digest matched. The rollback floor lives in `<cache>/state/`.
 *
 * @module
 */
import { hashFile, SHA256_PREFIX } from "../verify/mod.ts";
import { ClientError } from "./errors.ts";

const HEX_RE = /^[0-9a-f]{64}$/;

/** Paths of a cache rooted at `root`. */
export interface CacheLayout {
  /** The cache root, without a trailing slash. */
  readonly root: string;
  /** `<root>/cas/sha256`: verified files named by their hex SHA-256. */
  readonly casDir: string;
  /** `<root>/partial`: downloads in progress, resumable. */
  readonly partialDir: string;
  /** `<root>/state`: the rollback floor per channel and arch. */
  readonly stateDir: string;
}

/** The layout of a cache directory (nothing is created: see {@link ensureCache}). */
export function cacheLayout(root: string): CacheLayout {
  const r = root.replace(/\/+$/, "") || "/";
  return Object.freeze({
    root: r,
    casDir: `${r}/cas/sha256`,
    partialDir: `${r}/partial`,
    stateDir: `${r}/state`,
  });
}

/** The hex of a `sha256:<hex>` digest, checked (TM-10: it becomes a file name). */
export function digestHex(digest: string): string {
  const hex = digest.startsWith("sha256:") ? digest.slice(7) : digest;
  if (!HEX_RE.test(hex)) throw new ClientError("E_CACHE", `not a sha256 digest: '${digest}'`);
  return hex;
}

/** Creates the cache directories (mode 0700: what a machine boots is nobody else's business). */
export async function ensureCache(layout: CacheLayout): Promise<void> {
  try {
    for (const d of [layout.casDir, layout.partialDir, layout.stateDir]) {
      await Deno.mkdir(d, { recursive: true, mode: 0o700 });
    }
  } catch (err) {
    throw new ClientError(
      "E_CACHE",
      `cannot create the cache under ${layout.root}: ${(err as Error).message}`,
      {
        cause: err,
        hint: "pass a --cache directory this permission set may write (see deno.json 'fetch')",
      },
    );
  }
}

/**
 * Hex SHA-256 and size of a cached file, reading at most `maxBytes` (more
 * is a mismatch: `hex` is then ""); `undefined` when the file is missing.
 */
async function hashCached(
  path: string,
  maxBytes: number,
): Promise<{ size: number; hex: string } | undefined> {
  let f: Deno.FsFile;
  try {
    f = await Deno.open(path, { read: true });
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return undefined;
    throw err;
  }
  try {
    const { size, digest, overflow } = await hashFile(f, maxBytes);
    return { size, hex: overflow ? "" : digest.slice(SHA256_PREFIX.length) };
  } finally {
    f.close();
  }
}

/**
 * Returns the cached path when `<cas>/<hex>` exists and still hashes to
 * its name with the expected size; removes a corrupt entry. Every cache
 * hit is re-hashed before use (a disk can rot and a cache can be tampered
 * with between boots: TM-01).
 */
export async function cachedPath(
  layout: CacheLayout,
  hex: string,
  size: number,
): Promise<string | undefined> {
  const path = `${layout.casDir}/${hex}`;
  const got = await hashCached(path, size);
  if (!got) return undefined;
  if (got.size === size && got.hex === hex) return path;
  await Deno.remove(path).catch(() => {});
  return undefined;
}

/** fsyncs a directory so a rename inside it survives a power cut (best effort). */
export async function syncDir(dir: string): Promise<void> {
  try {
    const d = await Deno.open(dir, { read: true });
    try {
      await d.sync();
    } finally {
      d.close();
    }
  } catch { /* some filesystems refuse fsync on a directory */ }
}

/**
 * Lists the cas/ entries whose content does not hash to their name (or
 * that are not plain files named by a hex digest), reading at most
 * `maxBytes` of each; an absent cache lists nothing.
 */
export async function auditCache(
  layout: CacheLayout,
  maxBytes = Number.MAX_SAFE_INTEGER,
): Promise<string[]> {
  const bad: string[] = [];
  try {
    for await (const e of Deno.readDir(layout.casDir)) {
      if (!e.isFile) {
        bad.push(e.name);
        continue;
      }
      if (!HEX_RE.test(e.name)) {
        bad.push(e.name);
        continue;
      }
      const got = await hashCached(`${layout.casDir}/${e.name}`, maxBytes);
      if (!got || got.hex !== e.name) bad.push(e.name);
    }
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
  return bad;
}
