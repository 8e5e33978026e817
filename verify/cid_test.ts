import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { CID } from "multiformats/cid";
import * as raw from "multiformats/codecs/raw";
import { sha256 } from "multiformats/hashes/sha2";
import { digestOfRawCid, rawCid } from "./cid.ts";

Deno.test("cid: raw CIDv1 base32 matches the multiformats library", async () => {
  for (const text of ["", "hello world", "x".repeat(10_000)]) {
    const bytes = new TextEncoder().encode(text);
    const expected = CID.create(1, raw.code, await sha256.digest(bytes)).toString();
    assertEquals(rawCid(bytes), expected);
    const hex = Array.from(
      new Uint8Array(await crypto.subtle.digest("SHA-256", bytes)),
      (b) => b.toString(16).padStart(2, "0"),
    ).join("");
    assertEquals(digestOfRawCid(expected), hex);
  }
  assertEquals(digestOfRawCid("bafkreiexample"), undefined);
  assertEquals(digestOfRawCid("QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG"), undefined);
});
