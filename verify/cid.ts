/**
 * CIDv1 (raw codec 0x55, sha2-256 multihash) in base32 lower, as
 * formats.md §2 defines `manifest_cid`.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { toHex } from "./digest.ts";

const BASE32 = "abcdefghijklmnopqrstuvwxyz234567";

function base32(bytes: Uint8Array): string {
  let out = "";
  let bits = 0;
  let value = 0;
  for (const b of bytes) {
    value = (value << 8) | b;
    bits += 8;
    while (bits >= 5) {
      out += BASE32[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += BASE32[(value << (5 - bits)) & 31];
  return out;
}

/** CID of a sha256 digest given as 32 bytes. */
export function rawCidFromDigest(digest: Uint8Array): string {
  if (digest.length !== 32) throw new RangeError("sha256 digest has 32 bytes");
  const bytes = new Uint8Array(36);
  bytes.set([0x01, 0x55, 0x12, 0x20]);
  bytes.set(digest, 4);
  return "b" + base32(bytes);
}

/** CID of exact bytes (e.g. the manifest bytes served). */
export function rawCid(bytes: Uint8Array): string {
  return rawCidFromDigest(new Uint8Array(createHash("sha256").update(bytes).digest()));
}

/** The sha256 digest inside a raw CIDv1 in its canonical spelling, as hex; `undefined` if not one. */
export function digestOfRawCid(cid: string): string | undefined {
  if (!/^b[a-z2-7]+$/.test(cid)) return undefined;
  let bits = 0;
  let value = 0;
  const out: number[] = [];
  for (const ch of cid.slice(1)) {
    value = (value << 5) | BASE32.indexOf(ch);
    bits += 5;
    if (bits >= 8) {
      out.push((value >>> (bits - 8)) & 0xff);
      bits -= 8;
    }
  }
  if (out.length !== 36 || out[0] !== 1 || out[1] !== 0x55 || out[2] !== 0x12 || out[3] !== 0x20) {
    return undefined;
  }
  const digest = new Uint8Array(out.slice(4));
  // One spelling per CID, as multiformats reads them: non-zero padding bits
  // or an extra character decode to the same digest and are refused (found
  // by fuzzing, docs/fuzzing.md).
  if (rawCidFromDigest(digest) !== cid) return undefined;
  return toHex(digest);
}
