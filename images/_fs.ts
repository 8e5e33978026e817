/**
 * File helpers of the image build: staging trees with fixed modes and
 * clamped times, the reproducible cpio archive, positioned copies, file
 * digests and the ids derived from labels. Private to images/.
 *
 * @module
 */
import { hashFile, SHA256_PREFIX, sha256Hex } from "../verify/mod.ts";
import { ImagesError } from "./errors.ts";
import { runTool } from "./_run.ts";

/** One mebibyte in bytes (partition sizes and offsets are whole MiB). */
export const MiB = 1024 * 1024;
/** `n` bytes rounded up to a whole MiB. */
export const roundMiB = (n: number): number => Math.ceil(n / MiB) * MiB;

/** Stable UUID derived from a label (build ids never come from randomness). */
export function derivedUuid(label: string): string {
  const h = sha256Hex("phase-images:" + label);
  const v = h.slice(0, 12) + "4" + h.slice(13, 16) + ((parseInt(h[16], 16) & 3) | 8).toString(16) +
    h.slice(17, 32);
  return `${v.slice(0, 8)}-${v.slice(8, 12)}-${v.slice(12, 16)}-${v.slice(16, 20)}-${
    v.slice(20, 32)
  }`;
}

/** Hex SHA-256 of the file at `path`. */
export async function sha256File(path: string): Promise<string> {
  using f = await Deno.open(path);
  return (await hashFile(f, Number.MAX_SAFE_INTEGER)).digest.slice(SHA256_PREFIX.length);
}

/** Copies `src` to `dst` (making its folder) and sets its mode. */
export async function copyFile(src: string, dst: string, mode: number): Promise<void> {
  await Deno.mkdir(dst.slice(0, dst.lastIndexOf("/")), { recursive: true });
  await Deno.copyFile(src, dst);
  await Deno.chmod(dst, mode);
}

/** Writes `text` to `path` (making its folder) with `mode`. */
export async function writeText(path: string, text: string, mode = 0o644): Promise<void> {
  await Deno.mkdir(path.slice(0, path.lastIndexOf("/")), { recursive: true });
  await Deno.writeTextFile(path, text);
  await Deno.chmod(path, mode);
}

/** Sorted list of every path under `root` (relative, "." first). */
export async function walk(root: string): Promise<{ rel: string; isDir: boolean }[]> {
  const out: { rel: string; isDir: boolean }[] = [];
  const rec = async (rel: string) => {
    const entries = [];
    for await (const e of Deno.readDir(rel ? `${root}/${rel}` : root)) entries.push(e);
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const e of entries) {
      if (e.isSymlink) throw new ImagesError("E_BUILD", `symlink in image tree: ${rel}/${e.name}`);
      const r = rel ? `${rel}/${e.name}` : e.name;
      out.push({ rel: r, isDir: e.isDirectory });
      if (e.isDirectory) await rec(r);
    }
  };
  await rec("");
  return out;
}

/** Sets every mtime/atime under `root` (and root) to `epoch`; normalises dir modes. */
export async function clampTimes(root: string, epoch: number): Promise<void> {
  const all = await walk(root);
  for (const e of all.reverse()) {
    if (e.isDir) await Deno.chmod(`${root}/${e.rel}`, 0o755);
    await Deno.utime(`${root}/${e.rel}`, epoch, epoch);
  }
  await Deno.chmod(root, 0o755);
  await Deno.utime(root, epoch, epoch);
}

/** cpio newc of `root`, sorted, owner 0:0, times clamped, compressed with zstd -19 -T1. */
export async function makeCpio(root: string, out: string, epoch: number): Promise<void> {
  await clampTimes(root, epoch);
  const list = ["."].concat((await walk(root)).map((e) => e.rel)).join("\n") + "\n";
  const raw = `${out.startsWith("/") ? out : `${Deno.cwd()}/${out}`}.cpio`;
  await Deno.remove(raw).catch(() => {});
  await runTool("cpio", ["-o", "-H", "newc", "--reproducible", "-R", "0:0", "--quiet", "-O", raw], {
    cwd: root,
    stdin: new TextEncoder().encode(list),
  });
  await runTool("zstd", ["-q", "-19", "-T1", "-f", "--no-progress", raw, "-o", out]);
  await Deno.remove(raw);
}

/** Copies `src` into `dst` at byte `offset` (no dd: bounded writes from Deno). */
export async function writeAt(dst: string, src: string, offset: number): Promise<void> {
  const out = await Deno.open(dst, { write: true });
  const from = await Deno.open(src, { read: true });
  try {
    await out.seek(offset, Deno.SeekMode.Start);
    const buf = new Uint8Array(4 * 1024 * 1024);
    for (;;) {
      const n = await from.read(buf);
      if (n === null) break;
      let o = 0;
      while (o < n) o += await out.write(buf.subarray(o, n));
    }
  } finally {
    from.close();
    out.close();
  }
}
