/**
 * Bounded file reads: every read has a byte cap (house style 5).
 *
 * @module
 */

/** Thrown when a file is larger than the cap. */
export class TooLargeError extends Error {
  /** The file and the cap it exceeded. */
  constructor(readonly path: string, readonly maxBytes: number) {
    super(`${path} is larger than ${maxBytes} bytes`);
    this.name = "TooLargeError";
  }
}

/** Thrown when a path to read is not a regular file (a FIFO, a device, a directory). */
export class NotRegularFileError extends Error {
  /** The path that is not a regular file. */
  constructor(readonly path: string) {
    super(`${path} is not a regular file`);
    this.name = "NotRegularFileError";
  }
}

/**
 * Reads at most `maxBytes` of `path`; throws {@link TooLargeError} beyond
 * and {@link NotRegularFileError} for anything but a regular file: opening
 * a FIFO blocks until a writer comes, forever if none does, and a device
 * may never end (issue 18 #17). Checked before the open and again on the
 * open file.
 */
export async function readFileCapped(
  path: string,
  maxBytes: number,
): Promise<Uint8Array> {
  if (!(await Deno.stat(path)).isFile) throw new NotRegularFileError(path);
  const f = await Deno.open(path, { read: true });
  try {
    if (!(await f.stat()).isFile) throw new NotRegularFileError(path);
    const buf = new Uint8Array(maxBytes + 1);
    let off = 0;
    while (off < buf.length) {
      const n = await f.read(buf.subarray(off));
      if (n === null) break;
      off += n;
    }
    if (off > maxBytes) throw new TooLargeError(path, maxBytes);
    return buf.slice(0, off);
  } finally {
    f.close();
  }
}

/** Explains a failed file access, naming the permission set when it denied it. */
export function explainFsError(err: unknown, path: string, set: string): string {
  if (err instanceof Deno.errors.NotCapable) {
    return `${path} is outside the '${set}' permission set (see threat-model/permissions.md)`;
  }
  if (err instanceof Deno.errors.NotFound) return `${path} does not exist`;
  if (err instanceof TooLargeError || err instanceof NotRegularFileError) return err.message;
  return `${path}: ${err instanceof Error ? err.message : String(err)}`;
}

/**
 * Writes `data` to `path` atomically: a temp file in the same directory,
 * fsync, rename. `createNew` refuses to replace an existing file.
 */
export async function writeFileAtomic(
  path: string,
  data: Uint8Array,
  opts: { mode?: number; createNew?: boolean } = {},
): Promise<void> {
  const slash = path.lastIndexOf("/");
  const dir = slash >= 0 ? path.slice(0, slash) || "/" : ".";
  const tmp = `${dir}/.${path.slice(slash + 1)}.${crypto.randomUUID()}.tmp`;
  const f = await Deno.open(tmp, { write: true, createNew: true, mode: opts.mode ?? 0o644 });
  try {
    let off = 0;
    while (off < data.length) off += await f.write(data.subarray(off));
    await f.sync();
  } catch (err) {
    f.close();
    await Deno.remove(tmp).catch(() => {});
    throw err;
  }
  f.close();
  if (opts.createNew) {
    try {
      // link() fails if the target exists: no window where it is replaced.
      await Deno.link(tmp, path);
    } finally {
      await Deno.remove(tmp).catch(() => {});
    }
    return;
  }
  try {
    await Deno.rename(tmp, path);
  } catch (err) {
    // A failed rename (the name is a directory, a read-only mount) must not leave the temp file.
    await Deno.remove(tmp).catch(() => {});
    throw err;
  }
}
