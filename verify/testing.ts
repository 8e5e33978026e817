/** Test fixtures for verify/ and its users: real keys, real signatures (tests and benchmarks only). */
import { generateKeyPairSync } from "node:crypto";
import { encodeBase64, keyidOf, rawPublicKey, signEd25519 } from "./ed25519.ts";
import { signedBytes } from "./jcs.ts";
import type { JsonValue } from "./strict_json.ts";
import { parseTrust, type Trust } from "./trust.ts";

export interface TestKey {
  sign(doc: Record<string, JsonValue>): { keyid: string; sig: string };
  keyid: string;
  publicB64: string;
}

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

export function trustOf(threshold: number, ...keys: TestKey[]): Trust {
  const obj: Record<string, unknown> = {};
  for (const k of keys) obj[k.keyid] = { public: k.publicB64, name: "t" };
  return parseTrust(new TextEncoder().encode(JSON.stringify({ threshold, keys: obj })));
}

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

export function signedManifest(doc: Record<string, JsonValue>, ...keys: TestKey[]): Uint8Array {
  return new TextEncoder().encode(
    JSON.stringify({ ...doc, signatures: keys.map((k) => k.sign(doc)) }),
  );
}

export const NOW = new Date("2026-11-22T00:00:00Z");
