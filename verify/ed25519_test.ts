import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { createHash } from "node:crypto";
import { decodeBase64, encodeBase64, keyidOf, publicRawFromPem, verifyStrict } from "./ed25519.ts";
import { testKey } from "../testing/mod.ts";
import { signedBytes } from "./jcs.ts";

const L = (1n << 252n) + 27742317777372353535851937790883648493n;

Deno.test("TM-01 tampering: a malleable signature (S + L) is rejected by the strict check", () => {
  const k = testKey();
  const doc = { a: 1 };
  const sig = decodeBase64(k.sign(doc).sig)!;
  const pub = decodeBase64(k.publicB64)!;
  const msg = signedBytes(doc);
  assertEquals(verifyStrict(pub, msg, sig), true);
  let s = 0n;
  for (let i = 63; i >= 32; i--) s = (s << 8n) | BigInt(sig[i]);
  let t = s + L;
  const mal = sig.slice();
  for (let i = 32; i < 64; i++) {
    mal[i] = Number(t & 0xffn);
    t >>= 8n;
  }
  assertEquals(t, 0n, "S + L still fits in 32 bytes");
  assertEquals(verifyStrict(pub, msg, mal), false);
});

Deno.test("ed25519: wrong sizes and a flipped message bit fail", () => {
  const k = testKey();
  const sig = decodeBase64(k.sign({ a: 1 }).sig)!;
  const pub = decodeBase64(k.publicB64)!;
  assertEquals(verifyStrict(pub, signedBytes({ a: 2 }), sig), false);
  assertEquals(verifyStrict(pub.slice(1), signedBytes({ a: 1 }), sig), false);
  assertEquals(verifyStrict(pub, signedBytes({ a: 1 }), sig.slice(1)), false);
});

Deno.test("ed25519: keyid is sha256 of the raw key; vector keys load from PEM", async () => {
  const dir = new URL("../../shared/vectors/", import.meta.url).pathname;
  const trust = JSON.parse(await Deno.readTextFile(`${dir}trust-a.json`));
  const raw = publicRawFromPem(await Deno.readTextFile(`${dir}keys/release-a.pub.pem`));
  const keyid = keyidOf(raw);
  assertEquals(keyid, "ed25519:" + createHash("sha256").update(raw).digest("hex"));
  assertEquals(trust.keys[keyid].public, encodeBase64(raw));
});

Deno.test("base64: strict padded standard alphabet, canonical trailing bits", () => {
  assertEquals(decodeBase64("AAE="), new Uint8Array([0, 1]));
  assertEquals(decodeBase64("AAF="), undefined, "non-zero trailing bits");
  assertEquals(decodeBase64("AAE"), undefined, "missing padding");
  assertEquals(decodeBase64("AA-_"), undefined, "url alphabet");
  assertEquals(decodeBase64("AA E="), undefined);
});
