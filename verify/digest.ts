/**
 * SHA-256 as the wire format writes it (`sha256:<64 lowercase hex>`,
 * formats.md §1): one-shot, streamed with a byte cap, and of open files.
 * Every digest in Phase is computed here.
 *
 * @module
 */
import { createHash } from "node:crypto";

/** Prefix of a digest string (formats.md §1: `sha256:<64 lowercase hex>`). */
export const SHA256_PREFIX = "sha256:";

/** Lowercase hex of bytes. */
export function toHex(bytes: Uint8Array): string {
  let out = "";
  for (const b of bytes) out += b.toString(16).padStart(2, "0");
  return out;
}

/** SHA-256 of bytes as 64 lowercase hex digits (no prefix). */
export function sha256Hex(bytes: Uint8Array | string): string {
  return createHash("sha256").update(bytes).digest("hex");
}

/** Bytes read per chunk while hashing. */
export const HASH_CHUNK_BYTES = 1024 * 1024;

/** Streaming SHA-256 with a byte cap: reading stops past `maxBytes`. */
export async function hashStream(
  stream: ReadableStream<Uint8Array>,
  maxBytes: number,
): Promise<{ size: number; digest: string; overflow: boolean }> {
  const h = createHash("sha256");
  let size = 0;
  const reader = stream.getReader();
  try {
    while (true) {
      const { done, value } = await reader.read();
      if (done) break;
      size += value.length;
      if (size > maxBytes) {
        await reader.cancel();
        return { size, digest: "", overflow: true };
      }
      h.update(value);
    }
  } finally {
    reader.releaseLock();
  }
  return { size, digest: SHA256_PREFIX + h.digest("hex"), overflow: false };
}

/**
 * Streaming SHA-256 of an open file with a byte cap, reading
 * {@link HASH_CHUNK_BYTES} at a time into one reused buffer: memory stays
 * bounded and large reads keep the hash near OpenSSL's speed.
 */
export async function hashFile(
  file: Deno.FsFile,
  maxBytes: number,
): Promise<{ size: number; digest: string; overflow: boolean }> {
  const h = createHash("sha256");
  const buf = new Uint8Array(HASH_CHUNK_BYTES);
  let size = 0;
  while (true) {
    const n = await file.read(buf);
    if (n === null) break;
    size += n;
    if (size > maxBytes) return { size, digest: "", overflow: true };
    h.update(buf.subarray(0, n));
  }
  return { size, digest: SHA256_PREFIX + h.digest("hex"), overflow: false };
}

/**
 * Reads an open file of `size` bytes into memory while hashing it,
 * {@link HASH_CHUNK_BYTES} at a time (each read yields to the event loop,
 * so a large file does not stall a server). Undefined when the file is not
 * exactly `size` bytes long: shorter, or with a byte past `size`.
 */
export async function readFileHashed(
  file: Deno.FsFile,
  size: number,
): Promise<{ bytes: Uint8Array; digest: string } | undefined> {
  const h = createHash("sha256");
  const bytes = new Uint8Array(size);
  let off = 0;
  while (off < size) {
    const n = await file.read(bytes.subarray(off, Math.min(size, off + HASH_CHUNK_BYTES)));
    if (n === null) return undefined;
    h.update(bytes.subarray(off, off + n));
    off += n;
  }
  if (await file.read(new Uint8Array(1)) !== null) return undefined;
  return { bytes, digest: SHA256_PREFIX + h.digest("hex") };
}
