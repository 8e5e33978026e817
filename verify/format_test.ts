import { deepStrictEqual as assertEquals, throws as assertThrows } from "node:assert/strict";
import { VerifyError } from "./errors.ts";
import { buildManifestDocument, dhtRecordKey, isMode, isoSeconds } from "./format.ts";
import { decodeManifest } from "./manifest.ts";
import { sha256Hex, toHex } from "./digest.ts";

const ZERO = { digest: "sha256:" + "0".repeat(64), size: 0 };
const input = {
  version: "2026.11.20",
  channel: "stable",
  arch: "x86_64",
  now: new Date("2026-11-20T00:00:00.123Z"),
  expiresInMs: 86_400_000,
  cmdline: "console=ttyS0",
  artifacts: [["kernel", ZERO], ["initramfs", ZERO]] as const,
};

Deno.test("buildManifestDocument: one builder writes a document the decoder accepts, arch canonical, times to the second", () => {
  const doc = buildManifestDocument(input);
  assertEquals(doc.arch, "amd64");
  assertEquals(doc.issued_at, "2026-11-20T00:00:00Z");
  assertEquals(doc.expires_at, "2026-11-21T00:00:00Z");
  const m = decodeManifest({ ...doc, signatures: [] });
  assertEquals(Object.keys(m.artifacts), ["kernel", "initramfs"]);
  assertEquals(isoSeconds(new Date("2026-01-02T03:04:05.999Z")), "2026-01-02T03:04:05Z");
});

Deno.test("buildManifestDocument: refuses what the decoder would refuse (E_SCHEMA)", () => {
  for (
    const bad of [
      { channel: "Stable" },
      { arch: "riscv64" },
      { version: "v1" },
      { artifacts: [["kernel", ZERO]] as const },
      { artifacts: [["kernel", ZERO], ["initramfs", ZERO], ["__proto__", ZERO]] as const },
    ]
  ) {
    assertThrows(
      () => buildManifestDocument({ ...input, ...bad }),
      (e) => e instanceof VerifyError && e.code === "E_SCHEMA",
      JSON.stringify(bad),
    );
  }
});

Deno.test("dhtRecordKey: one key per channel and canonical arch (formats.md §5)", () => {
  assertEquals(dhtRecordKey("stable", "x86_64"), "/phase/stable/amd64/manifest");
  assertEquals(dhtRecordKey("stable", "aarch64"), dhtRecordKey("stable", "arm64"));
  assertThrows(() => dhtRecordKey("stable", "mips"), RangeError);
  assertThrows(() => dhtRecordKey("../x", "amd64"), RangeError);
});

Deno.test("digests and modes: sha256Hex, toHex, isMode", () => {
  assertEquals(
    sha256Hex(new TextEncoder().encode("abc")),
    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
  );
  assertEquals(toHex(new Uint8Array([0, 15, 255])), "000fff");
  assertEquals(["internet", "local", "private", "constructor"].map(isMode), [
    true,
    true,
    true,
    false,
  ]);
});
