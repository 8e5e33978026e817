/**
 * Private mode's root check (TM-13): everything a private boot writes lives
 * on a tmpfs, so nothing survives power-off. Two independent checks:
 * `statfs(2)` of the root (f_type must be TMPFS_MAGIC) and, when the
 * process may read it, /proc/mounts (longest mount point containing the
 * root must be tmpfs). Deno 2.9 refuses every read under /proc and /dev
 * to a process without --allow-all, so under the scoped `fetch-private`
 * set the statfs check is the one that runs; a root under /dev (e.g.
 * /dev/shm) cannot be used by a scoped process at all and is refused
 * with that explanation.
 *
 * @module
 */
import { statfs } from "node:fs/promises";
import { readFileCapped } from "../core/mod.ts";
import { ClientError } from "./errors.ts";

/** Largest /proc/mounts read, in bytes. */
export const MAX_MOUNTS_BYTES = 1024 * 1024;
/** Where the mount table is read. */
export const PROC_MOUNTS = "/proc/mounts";
/** statfs f_type of tmpfs (linux/magic.h). */
export const TMPFS_MAGIC = 0x01021994;

/** One /proc/mounts line. */
export interface MountEntry {
  readonly mountPoint: string;
  readonly fsType: string;
}

/** Parses /proc/mounts (octal escapes such as `\040` decoded). */
export function parseMounts(text: string): MountEntry[] {
  const unescape = (s: string) =>
    s.replace(/\\([0-7]{3})/g, (_, o) => String.fromCharCode(parseInt(o, 8)));
  const out: MountEntry[] = [];
  for (const line of text.split("\n")) {
    const f = line.split(" ");
    if (f.length < 3) continue;
    out.push({ mountPoint: unescape(f[1]), fsType: f[2] });
  }
  return out;
}

function within(path: string, mount: string): boolean {
  return mount === "/" || path === mount || path.startsWith(mount + "/");
}

/** The mount that holds `path` (the last, longest match wins, as mounts stack). */
export function mountOf(path: string, mounts: readonly MountEntry[]): MountEntry | undefined {
  let best: MountEntry | undefined;
  for (const m of mounts) {
    if (within(path, m.mountPoint) && (!best || m.mountPoint.length >= best.mountPoint.length)) {
      best = m;
    }
  }
  return best;
}

function normalise(path: string): string {
  if (!path.startsWith("/")) {
    throw new ClientError("E_PRIVATE_ROOT", `private root '${path}' must be an absolute path`, {
      hint: "give --root an absolute tmpfs directory, e.g. /run/phase",
    });
  }
  const parts: string[] = [];
  for (const seg of path.split("/")) {
    if (seg === "" || seg === ".") continue;
    if (seg === "..") {
      throw new ClientError("E_PRIVATE_ROOT", `private root '${path}' must not contain '..'`, {
        hint: "give --root an absolute tmpfs directory, e.g. /run/phase",
      });
    }
    parts.push(seg);
  }
  return "/" + parts.join("/");
}

function notTmpfs(p: string, what: string): ClientError {
  return new ClientError("E_PRIVATE_ROOT", `private root ${p} is on ${what}, not a tmpfs (TM-13)`, {
    hint:
      "private mode writes only to RAM: mount a tmpfs (e.g. on /run/phase) and use a directory under it",
  });
}

/** statfs(2) of `p`: throws E_PRIVATE_ROOT unless it is a tmpfs. */
async function checkStatfs(p: string): Promise<void> {
  let type: number;
  try {
    type = Number((await statfs(p)).type);
  } catch (err) {
    const devHint = p === "/dev" || p.startsWith("/dev/")
      ? "Deno refuses reads under /dev to a scoped permission set; use a tmpfs mounted elsewhere, such as /run/phase"
      : "the private root must be readable under the 'fetch-private' set";
    throw new ClientError(
      "E_PRIVATE_ROOT",
      `cannot check the filesystem of ${p}: ${(err as Error).message}`,
      {
        cause: err,
        hint: devHint,
      },
    );
  }
  if (type !== TMPFS_MAGIC) throw notTmpfs(p, `filesystem type 0x${type.toString(16)}`);
}

/** The mount table, or undefined when this process may not read it. */
async function readMounts(
  opts: { mountsText?: string; mountsPath?: string },
): Promise<MountEntry[] | undefined> {
  if (opts.mountsText !== undefined) return parseMounts(opts.mountsText);
  try {
    return parseMounts(
      new TextDecoder().decode(
        await readFileCapped(opts.mountsPath ?? PROC_MOUNTS, MAX_MOUNTS_BYTES),
      ),
    );
  } catch (err) {
    if (err instanceof Deno.errors.NotCapable || err instanceof Deno.errors.NotFound) {
      return undefined;
    }
    throw new ClientError(
      "E_PRIVATE_ROOT",
      `cannot read ${opts.mountsPath ?? PROC_MOUNTS}: ${(err as Error).message}`,
      { cause: err },
    );
  }
}

/** Nearest existing ancestor of a normalised absolute path. */
async function existingAncestor(path: string): Promise<string> {
  let p = path;
  while (true) {
    try {
      await Deno.lstat(p);
      return p;
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound) || p === "/") return p;
      p = p.slice(0, p.lastIndexOf("/")) || "/";
    }
  }
}

/** How {@link preparePrivateRoot} tells a tmpfs; the defaults suit a real boot. */
export interface PrivateRootOptions {
  /** The mount table's text, instead of reading `mountsPath` (tests). */
  mountsText?: string;
  /** Where the mount table is read; default `/proc/mounts` (skipped when not readable). */
  mountsPath?: string;
  /** Check the filesystem type with statfs(2) (default true). */
  useStatfs?: boolean;
}

/**
 * Checks that `root` is on a tmpfs before anything is written (its nearest
 * existing ancestor), creates it (0700), then checks the created directory
 * again after resolving symlinks. Returns the normalised root; throws a
 * `ClientError` (E_PRIVATE_ROOT) for a root that is not on a tmpfs.
 */
export async function preparePrivateRoot(
  root: string,
  opts: PrivateRootOptions = {},
): Promise<string> {
  const path = normalise(root);
  const mounts = await readMounts(opts);
  const useStatfs = opts.useStatfs ?? true;
  const check = async (p: string) => {
    if (mounts) {
      const m = mountOf(p, mounts);
      if (!m || m.fsType !== "tmpfs") {
        throw notTmpfs(p, m ? `${m.fsType} (${m.mountPoint})` : "no known mount");
      }
    }
    if (useStatfs) await checkStatfs(p);
  };
  if (!mounts && !useStatfs) {
    throw new ClientError("E_PRIVATE_ROOT", "no way to check the private root's filesystem");
  }
  await check(await existingAncestor(path));
  try {
    await Deno.mkdir(path, { recursive: true, mode: 0o700 });
  } catch (err) {
    throw new ClientError("E_PRIVATE_ROOT", `cannot create ${path}: ${(err as Error).message}`, {
      cause: err,
    });
  }
  // Re-check after creation: a symlink planted in between must not lead off the tmpfs.
  await check(await Deno.realPath(path));
  await checkPrivateTree(path);
  return path;
}

/** The directories a private root holds (client/cache.ts `cacheLayout`). */
export const PRIVATE_SUBDIRS: readonly string[] = [
  "cas",
  "cas/sha256",
  "partial",
  "state",
  "state/trust",
];

/**
 * TM-13: refuses a private root whose subdirectories (those that exist)
 * are not plain directories on the root's own filesystem: a symlink or a
 * mount planted at `root/cas` would lead the writes off the tmpfs, onto a
 * disk. The fetcher calls it before each write. Throws E_PRIVATE_ROOT.
 */
export async function checkPrivateTree(root: string): Promise<void> {
  const refuse = (what: string) =>
    new ClientError("E_PRIVATE_ROOT", `${what}: refused (TM-13)`, {
      hint: "private mode writes only into plain directories on its tmpfs root",
    });
  const top = await Deno.lstat(root);
  if (!top.isDirectory) throw refuse(`${root} is not a plain directory`);
  for (const sub of PRIVATE_SUBDIRS) {
    const p = `${root}/${sub}`;
    let st: Deno.FileInfo;
    try {
      st = await Deno.lstat(p);
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) continue;
      throw err;
    }
    if (st.isSymlink) throw refuse(`${p} is a symbolic link`);
    if (!st.isDirectory) throw refuse(`${p} is not a directory`);
    if (st.dev !== top.dev) throw refuse(`${p} is on another filesystem than ${root}`);
  }
}
