/**
 * Writes the trust-chain vectors of this folder (run once; the files are
 * committed): `deno run -A verify/testdata/trust-chain/_generate.ts`.
 * Keys come from fixed seeds and Ed25519 is deterministic, so a re-run
 * writes the same bytes. The cases are in `cases.json`.
 *
 * @module
 */
import { createPrivateKey, createPublicKey, type KeyObject } from "node:crypto";
import { encodeBase64, keyidOf, rawPublicKey, signEd25519, signedBytes } from "../../mod.ts";

const DIR = new URL(".", import.meta.url).pathname;
// PKCS#8 DER header of a raw 32-byte Ed25519 seed (RFC 8410).
const PKCS8_PREFIX = Uint8Array.from([
  0x30,
  0x2e,
  0x02,
  0x01,
  0x00,
  0x30,
  0x05,
  0x06,
  0x03,
  0x2b,
  0x65,
  0x70,
  0x04,
  0x22,
  0x04,
  0x20,
]);

interface Key {
  name: string;
  priv: KeyObject;
  raw: Uint8Array;
  keyid: string;
}

function key(name: string, fill: number): Key {
  const der = new Uint8Array(48);
  der.set(PKCS8_PREFIX);
  der.fill(fill, 16);
  const priv = createPrivateKey({ key: der as unknown as Buffer, format: "der", type: "pkcs8" });
  const raw = rawPublicKey(createPublicKey(priv));
  return { name, priv, raw, keyid: keyidOf(raw) };
}

const A = key("release-a", 0xa1);
const B = key("release-b", 0xb2);
const C = key("release-c", 0xc3);

type Doc = Record<string, unknown>;

function keysOf(...ks: Key[]): Doc {
  const out: Doc = {};
  for (const k of [...ks].sort((x, y) => x.keyid < y.keyid ? -1 : 1)) {
    out[k.keyid] = { public: encodeBase64(k.raw), name: k.name };
  }
  return out;
}

function sign(doc: Doc, ...signers: Key[]): Doc {
  // deno-lint-ignore no-explicit-any
  const msg = signedBytes(doc as any);
  return {
    ...doc,
    signatures: signers.map((k) => ({
      keyid: k.keyid,
      sig: encodeBase64(signEd25519(k.priv, msg)),
    })),
  };
}

function trust(version: number, expires: string, threshold: number, keys: Key[]): Doc {
  return { version, expires_at: expires, threshold, keys: keysOf(...keys) };
}

function manifest(version: string): Doc {
  const hex = (c: string) => c.repeat(64);
  return {
    schema: 1,
    version,
    channel: "stable",
    arch: "amd64",
    issued_at: "2026-05-01T00:00:00Z",
    expires_at: "2027-05-01T00:00:00Z",
    cmdline: "console=ttyS0",
    artifacts: {
      kernel: { digest: `sha256:${hex("a")}`, size: 4096 },
      initramfs: { digest: `sha256:${hex("b")}`, size: 2048 },
    },
  };
}

const LATER = "2027-06-01T00:00:00Z";
const EARLY = "2026-01-01T00:00:00Z"; // before the cases' `now`
const files: Record<string, Doc> = {
  // Today's format: no version, unsigned: a device's pinned root.
  "v1-a.json": { threshold: 1, keys: keysOf(A) },
  "v2-b.json": sign(trust(2, LATER, 1, [B]), A, B),
  "v2-b-signed-by-b-only.json": sign(trust(2, LATER, 1, [B]), B),
  "v2-b-signed-by-a-only.json": sign(trust(2, LATER, 1, [B]), A),
  "v2-bc-2of2-b-twice.json": sign(trust(2, LATER, 2, [B, C]), A, B, B),
  "v2-bc-2of2.json": sign(trust(2, LATER, 2, [B, C]), A, B, C),
  "v3-c-signed-by-b.json": sign(trust(3, LATER, 1, [C]), B, C),
  "v2-b-expired.json": sign(trust(2, EARLY, 1, [B]), A, B),
  "manifest-a.json": sign(manifest("2026.06.01"), A),
  "manifest-b.json": sign(manifest("2026.06.02"), B),
  "manifest-c.json": sign(manifest("2026.06.03"), C),
};
for (const [name, doc] of Object.entries(files)) {
  await Deno.writeTextFile(`${DIR}${name}`, JSON.stringify(doc, null, 2) + "\n");
}
