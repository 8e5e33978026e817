/**
 * The digest a receipt binds for a `--dir` grant (TM-17): the granted
 * directory's contents as the host read them just before the job started.
 * One line per entry below the directory, sorted by path (UTF-16 code
 * units), each ending in `\n`:
 *
 * - `d <path>` for a directory,
 * - `f <path> <size> sha256:<hex>` for a regular file,
 * - `l <path>` for a symlink (not followed: the job cannot open one),
 * - `o <path>` for anything else (the job cannot open it either),
 *
 * where `<path>` is relative to the directory, `/`-separated, and the
 * digest is `sha256:` of the UTF-8 bytes of all lines. The job reads the
 * directory after this, so a file changed in between is not what the
 * digest names: grant a directory nothing else writes while the job runs.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { WasmError } from "./errors.ts";

/** Most entries hashed below a granted directory. */
export const MAX_DIR_DIGEST_ENTRIES = 10_000;
/** Most file bytes hashed below a granted directory, in bytes. */
export const MAX_DIR_DIGEST_BYTES = 256 * 1024 * 1024;
/** Bytes read per chunk while hashing, in bytes. */
const CHUNK_BYTES = 1024 * 1024;

function tooLarge(what: string): WasmError {
  return new WasmError("E_TOO_LARGE", `the granted directory holds ${what}`, {
    hint:
      `grant a directory with at most ${MAX_DIR_DIGEST_ENTRIES} entries and ${MAX_DIR_DIGEST_BYTES} bytes: its contents are hashed into the receipt`,
  });
}

async function digestGrantedFile(
  path: string,
  budget: { bytes: number },
): Promise<[number, string]> {
  const h = createHash("sha256");
  const f = await Deno.open(path, { read: true });
  let size = 0;
  try {
    const buf = new Uint8Array(CHUNK_BYTES);
    for (;;) {
      const n = await f.read(buf);
      if (n === null) break;
      size += n;
      budget.bytes -= n;
      if (budget.bytes < 0) throw tooLarge(`more than ${MAX_DIR_DIGEST_BYTES} bytes`);
      h.update(buf.subarray(0, n));
    }
  } finally {
    f.close();
  }
  return [size, "sha256:" + h.digest("hex")];
}

/** `sha256:<hex>` over the listing of `hostPath` described in the module doc. */
export async function dirDigest(hostPath: string): Promise<string> {
  const lines: [string, string][] = [];
  const budget = { bytes: MAX_DIR_DIGEST_BYTES };
  const walk = async (rel: string): Promise<void> => {
    for await (const e of Deno.readDir(rel === "" ? hostPath : `${hostPath}/${rel}`)) {
      if (lines.length >= MAX_DIR_DIGEST_ENTRIES) {
        throw tooLarge(`more than ${MAX_DIR_DIGEST_ENTRIES} entries`);
      }
      const path = rel === "" ? e.name : `${rel}/${e.name}`;
      if (e.isSymlink) lines.push([path, `l ${path}`]);
      else if (e.isDirectory) {
        lines.push([path, `d ${path}`]);
        await walk(path);
      } else if (e.isFile) {
        const [size, digest] = await digestGrantedFile(`${hostPath}/${path}`, budget);
        lines.push([path, `f ${path} ${size} ${digest}`]);
      } else lines.push([path, `o ${path}`]);
    }
  };
  await walk("");
  lines.sort((a, b) => a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0);
  const h = createHash("sha256");
  for (const [, line] of lines) h.update(line + "\n");
  return "sha256:" + h.digest("hex");
}
