/**
 * The artifact hashes a catalog loader keeps between loads, shared by the
 * root loader (catalog.ts) and the cache loader (from_cache.ts): a file is
 * hashed (or copied into a private snapshot while hashed, TM-19) once, and
 * again only when its identity (device, inode, size, mtime) changes.
 *
 * @module
 */
import { createHash } from "node:crypto";

/** Bytes read per hashing step. */
export const HASH_CHUNK_BYTES = 1024 * 1024;

/** What identifies the bytes of a file without reading them. */
export interface FileIdentity {
  /** Device the file lives on. */
  readonly dev: number;
  /** Inode number (0 where the platform has none). */
  readonly ino: number;
  /** Size, in bytes. */
  readonly size: number;
  /** Last modification time, in ms since the epoch. */
  readonly mtimeMs: number;
  /** Last status change time, in ms since the epoch. */
  readonly ctimeMs: number;
}

/** Identity of a stat result. */
export function identityOf(info: Deno.FileInfo): FileIdentity {
  return {
    dev: info.dev,
    ino: info.ino ?? 0,
    size: info.size,
    mtimeMs: info.mtime?.getTime() ?? 0,
    ctimeMs: info.ctime?.getTime() ?? 0,
  };
}

/** True when both identities name the same unchanged bytes. */
export function sameIdentity(a: FileIdentity, b: FileIdentity): boolean {
  return a.dev === b.dev && a.ino === b.ino && a.size === b.size && a.mtimeMs === b.mtimeMs &&
    a.ctimeMs === b.ctimeMs;
}

/** Thrown when a file changes while it is hashed. */
class ChangedWhileHashing extends Error {}

/** Hashes `path` and returns its digest with the identity it had throughout. */
export async function hashIdentified(
  path: string,
): Promise<{ digest: string; identity: FileIdentity }> {
  const f = await Deno.open(path, { read: true });
  try {
    const before = identityOf(await f.stat());
    const h = createHash("sha256");
    const buf = new Uint8Array(HASH_CHUNK_BYTES);
    let total = 0;
    for (;;) {
      const n = await f.read(buf);
      if (n === null) break;
      h.update(buf.subarray(0, n));
      total += n;
    }
    const after = identityOf(await f.stat());
    // TM-19: a file written while we hash it has no single digest.
    if (!sameIdentity(before, after) || total !== before.size) {
      throw new ChangedWhileHashing(`${path} changed while it was hashed`);
    }
    return { digest: h.digest("hex"), identity: before };
  } finally {
    f.close();
  }
}

/**
 * Copies `path` into `dir` while hashing it (one pass), and names the copy
 * by its digest: `<dir>/<hex>`, mode 0400. The source must not change
 * during the copy. An existing snapshot of the same digest is reused.
 */
export async function snapshotIdentified(
  path: string,
  dir: string,
): Promise<
  { digest: string; identity: FileIdentity; snapshot: string; snapshotIdentity: FileIdentity }
> {
  const src = await Deno.open(path, { read: true });
  const tmp = `${dir}/.tmp-${crypto.randomUUID()}`;
  let out: Deno.FsFile | undefined;
  try {
    const before = identityOf(await src.stat());
    out = await Deno.open(tmp, { write: true, createNew: true, mode: 0o600 });
    const h = createHash("sha256");
    const buf = new Uint8Array(HASH_CHUNK_BYTES);
    let total = 0;
    for (;;) {
      const n = await src.read(buf);
      if (n === null) break;
      const chunk = buf.subarray(0, n);
      h.update(chunk);
      let off = 0;
      while (off < n) off += await out.write(chunk.subarray(off));
      total += n;
    }
    out.close();
    out = undefined;
    const after = identityOf(await src.stat());
    if (!sameIdentity(before, after) || total !== before.size) {
      throw new ChangedWhileHashing(`${path} changed while it was copied`);
    }
    const digest = h.digest("hex");
    const snapshot = `${dir}/${digest}`;
    await Deno.chmod(tmp, 0o400);
    try {
      const existing = await Deno.stat(snapshot);
      if (existing.isFile && existing.size === total) {
        await Deno.remove(tmp);
        return { digest, identity: before, snapshot, snapshotIdentity: identityOf(existing) };
      }
    } catch { /* none yet */ }
    await Deno.rename(tmp, snapshot);
    return {
      digest,
      identity: before,
      snapshot,
      snapshotIdentity: identityOf(await Deno.stat(snapshot)),
    };
  } catch (err) {
    try {
      out?.close();
    } catch { /* closed */ }
    await Deno.remove(tmp).catch(() => {});
    throw err;
  } finally {
    src.close();
  }
}

/** What one file hashed to, and the file (root or snapshot) that is served. */
export interface Hashed {
  readonly identity: FileIdentity;
  readonly digest: string;
  readonly servePath: string;
  readonly serveIdentity: FileIdentity;
}

const SNAPSHOT_NAME_RE = /^[0-9a-f]{64}$/;

/** Hashes by path, reused while a file's identity holds. */
export class HashCache {
  readonly #hashes = new Map<string, Hashed>();
  readonly #snapshotDir: string | undefined;
  /** How many files were hashed in total (tests check re-hashing). */
  hashedFiles = 0;

  /** With `snapshotDir`, files are served from snapshots written there. */
  constructor(snapshotDir: string | undefined) {
    this.#snapshotDir = snapshotDir;
  }

  /** Hashes (or snapshots) `path`; `seen` collects the paths of this load. */
  async hash(path: string, seen: Set<string>): Promise<Hashed> {
    seen.add(path);
    const info = identityOf(await Deno.stat(path));
    const cached = this.#hashes.get(path);
    if (cached && sameIdentity(cached.identity, info)) {
      // A snapshot deleted behind our back is recreated.
      if (
        cached.servePath === path || await Deno.stat(cached.servePath).then(() => true, () => false)
      ) return cached;
    }
    const dir = this.#snapshotDir;
    let fresh: Hashed;
    if (dir) {
      await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
      const s = await snapshotIdentified(path, dir);
      fresh = {
        identity: s.identity,
        digest: s.digest,
        servePath: s.snapshot,
        serveIdentity: s.snapshotIdentity,
      };
    } else {
      const h = await hashIdentified(path);
      fresh = {
        identity: h.identity,
        digest: h.digest,
        servePath: path,
        serveIdentity: h.identity,
      };
    }
    this.hashedFiles++;
    this.#hashes.set(path, fresh);
    return fresh;
  }

  /** Forgets every path a load did not see. */
  keepOnly(seen: ReadonlySet<string>): void {
    for (const p of [...this.#hashes.keys()]) if (!seen.has(p)) this.#hashes.delete(p);
  }

  /** Removes snapshots whose digest is not in `used` (open files stay readable). */
  async collectSnapshots(used: ReadonlySet<string>): Promise<void> {
    const dir = this.#snapshotDir;
    if (!dir) return;
    try {
      for await (const e of Deno.readDir(dir)) {
        if (SNAPSHOT_NAME_RE.test(e.name) && !used.has(e.name)) {
          await Deno.remove(`${dir}/${e.name}`).catch(() => {});
        }
      }
    } catch { /* no directory yet */ }
  }
}
