/**
 * Private mode's root check (TM-13): everything a private boot writes lives
 * on a tmpfs, so nothing survives power-off. The root's mount is looked up
 * in /proc/mounts (longest mount point that contains it) and must be tmpfs.
 *
 * @module
 */
import { readFileCapped } from "../cli/io.ts";
import { ClientError } from "./errors.ts";

/** Largest /proc/mounts read, in bytes. */
export const MAX_MOUNTS_BYTES = 1024 * 1024;
/** Where the mount table is read. */
export const PROC_MOUNTS = "/proc/mounts";

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
    throw new ClientError("E_PRIVATE_ROOT", `private root '${path}' must be an absolute path`);
  }
  const parts: string[] = [];
  for (const seg of path.split("/")) {
    if (seg === "" || seg === ".") continue;
    if (seg === "..") {
      throw new ClientError("E_PRIVATE_ROOT", `private root '${path}' must not contain '..'`);
    }
    parts.push(seg);
  }
  return "/" + parts.join("/");
}

/**
 * Checks that `root` is on a tmpfs, both as written and (when it exists)
 * after resolving symlinks, then creates it (0700). Throws E_PRIVATE_ROOT.
 */
export async function preparePrivateRoot(
  root: string,
  opts: { mountsText?: string; mountsPath?: string } = {},
): Promise<string> {
  const path = normalise(root);
  let text = opts.mountsText;
  if (text === undefined) {
    try {
      text = new TextDecoder().decode(
        await readFileCapped(opts.mountsPath ?? PROC_MOUNTS, MAX_MOUNTS_BYTES),
      );
    } catch (err) {
      throw new ClientError(
        "E_PRIVATE_ROOT",
        `cannot read ${opts.mountsPath ?? PROC_MOUNTS}: ${(err as Error).message}`,
        {
          cause: err,
          hint: "private mode must prove its root is a tmpfs; mount /proc",
        },
      );
    }
  }
  const mounts = parseMounts(text);
  const check = (p: string) => {
    const m = mountOf(p, mounts);
    if (!m || m.fsType !== "tmpfs") {
      throw new ClientError(
        "E_PRIVATE_ROOT",
        `private root ${p} is on ${
          m ? `${m.fsType} (${m.mountPoint})` : "no known mount"
        }, not a tmpfs (TM-13)`,
        {
          hint:
            "private mode writes only to RAM: use a directory under a tmpfs such as /dev/shm/phase or /run/phase",
        },
      );
    }
  };
  check(path);
  let real: string | undefined;
  try {
    real = await Deno.realPath(path);
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) {
      throw new ClientError("E_PRIVATE_ROOT", `cannot resolve ${path}: ${(err as Error).message}`, {
        cause: err,
      });
    }
  }
  if (real !== undefined) check(real);
  try {
    await Deno.mkdir(path, { recursive: true, mode: 0o700 });
  } catch (err) {
    throw new ClientError("E_PRIVATE_ROOT", `cannot create ${path}: ${(err as Error).message}`, {
      cause: err,
    });
  }
  // Re-check after creation: a symlink planted in between must not lead off the tmpfs.
  check(await Deno.realPath(path));
  return path;
}
