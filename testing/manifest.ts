/**
 * Test fixtures for verify/ and its users: in-memory keys, real signatures
 * over hand-shaped manifest documents (tests and benchmarks only).
 *
 * @module
 */
import { generateKeyPairSync } from "node:crypto";
import {
  encodeBase64,
  type JsonValue,
  keyidOf,
  parseTrust,
  rawPublicKey,
  signEd25519,
  signedBytes,
  type Trust,
} from "../verify/mod.ts";

/** An in-memory Ed25519 key that signs documents. */
export interface TestKey {
  sign(doc: Record<string, JsonValue>): { keyid: string; sig: string };
  keyid: string;
  publicB64: string;
}

/** A fresh random test key. */
export function testKey(): TestKey {
  const { privateKey } = generateKeyPairSync("ed25519");
  const raw = rawPublicKey(privateKey);
  const keyid = keyidOf(raw);
  return {
    keyid,
    publicB64: encodeBase64(raw),
    sign: (doc) => ({ keyid, sig: encodeBase64(signEd25519(privateKey, signedBytes(doc))) }),
  };
}

/** A parsed trust document with `threshold` over `keys`. */
export function trustOf(threshold: number, ...keys: TestKey[]): Trust {
  const obj: Record<string, unknown> = {};
  for (const k of keys) obj[k.keyid] = { public: k.publicB64, name: "t" };
  return parseTrust(new TextEncoder().encode(JSON.stringify({ threshold, keys: obj })));
}

/** A schema-1 manifest document (unsigned); `over` replaces fields. */
export function manifestDoc(over: Record<string, JsonValue> = {}): Record<string, JsonValue> {
  return {
    schema: 1,
    version: "2026.11.20",
    channel: "stable",
    arch: "amd64",
    issued_at: "2026-11-20T00:00:00Z",
    expires_at: "2026-12-20T00:00:00Z",
    cmdline: "console=ttyS0",
    artifacts: {
      kernel: { digest: "sha256:" + "0".repeat(64), size: 0 },
      initramfs: { digest: "sha256:" + "0".repeat(64), size: 0 },
    },
    ...over,
  };
}

/** `doc` with a signature from each of `keys`, as bytes. */
export function signedManifest(doc: Record<string, JsonValue>, ...keys: TestKey[]): Uint8Array {
  return new TextEncoder().encode(
    JSON.stringify({ ...doc, signatures: keys.map((k) => k.sign(doc)) }),
  );
}

/** The fixed clock of the verify tests (inside manifestDoc's validity window). */
export const NOW = new Date("2026-11-22T00:00:00Z");
