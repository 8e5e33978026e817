import {
  deepStrictEqual as assertEquals,
  rejects as assertRejects,
  throws as assertThrows,
} from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { VerifyError } from "./errors.ts";
import { manifestDoc, NOW, signedManifest, testKey, trustOf } from "../testing/mod.ts";
import { parseTrust } from "./trust.ts";
import { assertVerified, type Verified } from "./_verified.ts";
import { hashStream } from "./digest.ts";
import { verifyArtifact, verifyManifest } from "./verify.ts";
import { type Manifest, MAX_MANIFEST_BYTES } from "./manifest.ts";

function code(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    if (err instanceof VerifyError) return err.code;
    throw err;
  }
  return "ok";
}

Deno.test("verify: a good manifest yields a Verified<Manifest> with its signers", () => {
  const k = testKey();
  const v = verifyManifest(signedManifest(manifestDoc(), k), trustOf(1, k), {
    channel: "stable",
    arch: "x86_64",
    now: NOW,
  });
  assertEquals(v.value.version, "2026.11.20");
  assertEquals(v.signers, [k.keyid]);
  assertEquals(assertVerified(v), v);
});

Deno.test("TM-01 tampering: one changed byte in a signed member fails E_SIGNATURE", () => {
  const k = testKey();
  const bytes = new TextDecoder().decode(signedManifest(manifestDoc(), k));
  const tampered = new TextEncoder().encode(bytes.replace("console=ttyS0", "console=ttyS1"));
  assertEquals(code(() => verifyManifest(tampered, trustOf(1, k), { now: NOW })), "E_SIGNATURE");
});

Deno.test("TM-01 tampering: a cast cannot forge a Verified value", () => {
  const fake = { value: {}, bytes: new Uint8Array(), signers: [] } as unknown as Verified<Manifest>;
  assertThrows(() => assertVerified(fake), VerifyError);
});

Deno.test("TM-02 rollback: below min_version or the recorded floor fails E_ROLLBACK", () => {
  const k = testKey();
  const m = signedManifest(manifestDoc({ version: "2026.11.20" }), k);
  const t = trustOf(1, k);
  assertEquals(code(() => verifyManifest(m, t, { now: NOW, minVersion: "2026.12" })), "E_ROLLBACK");
  assertEquals(code(() => verifyManifest(m, t, { now: NOW, floor: "2026.11.21" })), "E_ROLLBACK");
  assertEquals(code(() => verifyManifest(m, t, { now: NOW, floor: "2026.11.20" })), "ok");
  assertEquals(code(() => verifyManifest(m, t, { now: NOW, minVersion: "2026.11.20.0.0" })), "ok");
});

Deno.test("TM-03 freeze: an expired manifest fails E_EXPIRED against the injected clock", () => {
  const k = testKey();
  const m = signedManifest(manifestDoc(), k);
  const t = trustOf(1, k);
  assertEquals(
    code(() => verifyManifest(m, t, { now: new Date("2026-12-20T00:00:00Z") })),
    "E_EXPIRED",
  );
  assertEquals(code(() => verifyManifest(m, t, { now: new Date("2026-12-19T23:59:59Z") })), "ok");
});

Deno.test("TM-04 mix-and-match: another channel or arch fails E_MISMATCH", () => {
  const k = testKey();
  const m = signedManifest(manifestDoc(), k);
  const t = trustOf(1, k);
  assertEquals(code(() => verifyManifest(m, t, { now: NOW, channel: "beta" })), "E_MISMATCH");
  assertEquals(code(() => verifyManifest(m, t, { now: NOW, arch: "aarch64" })), "E_MISMATCH");
  assertEquals(code(() => verifyManifest(m, t, { now: NOW, arch: "riscv64" })), "E_MISMATCH");
  // A manifest itself must carry the canonical name.
  const alias = signedManifest(manifestDoc({ arch: "x86_64" }), k);
  assertEquals(code(() => verifyManifest(alias, t, { now: NOW })), "E_SCHEMA");
});

Deno.test("TM-09 key compromise and rotation: threshold counts distinct trusted keys only", () => {
  const a = testKey(), b = testKey(), evil = testKey();
  const doc = manifestDoc();
  const t2 = trustOf(2, a, b);
  assertEquals(code(() => verifyManifest(signedManifest(doc, a, b), t2, { now: NOW })), "ok");
  assertEquals(
    code(() => verifyManifest(signedManifest(doc, a, a), t2, { now: NOW })),
    "E_SIGNATURE",
  );
  assertEquals(
    code(() => verifyManifest(signedManifest(doc, a, evil), t2, { now: NOW })),
    "E_SIGNATURE",
  );
  // Rotation: a trust file that drops the compromised key rejects its releases.
  const rotated = trustOf(1, b);
  assertEquals(
    code(() => verifyManifest(signedManifest(doc, a), rotated, { now: NOW })),
    "E_SIGNATURE",
  );
  assertEquals(code(() => verifyManifest(signedManifest(doc, b), rotated, { now: NOW })), "ok");
});

Deno.test("TM-09 key compromise and rotation: a trust file whose keyid does not match its key is invalid", () => {
  const a = testKey(), b = testKey();
  const lie = { threshold: 1, keys: { [a.keyid]: { public: b.publicB64 } } };
  assertThrows(
    () => parseTrust(new TextEncoder().encode(JSON.stringify(lie))),
    /does not hash to its keyid/,
  );
  const over = { threshold: 2, keys: { [a.keyid]: { public: a.publicB64 } } };
  assertThrows(() => parseTrust(new TextEncoder().encode(JSON.stringify(over))), /exceeds/);
});

Deno.test("verify: schema errors come before signature errors (spec order)", () => {
  const k = testKey();
  const t = trustOf(1, k);
  for (
    const bad of [
      { schema: 2 },
      { version: "1..2" },
      { version: "1.2.3.4.5.6.7.8.9" },
      { channel: "Stable" },
      { issued_at: "2026-11-20 00:00:00" },
      { expires_at: "2026-02-30T00:00:00Z" },
      {
        artifacts: {
          kernel: { digest: "sha256:AB", size: 1 },
          initramfs: { digest: "sha256:" + "0".repeat(64), size: 0 },
        },
      },
      {
        artifacts: {
          kernel: { digest: "sha256:" + "0".repeat(64), size: -1 },
          initramfs: { digest: "sha256:" + "0".repeat(64), size: 0 },
        },
      },
    ]
  ) {
    const m = new TextEncoder().encode(
      JSON.stringify({ ...manifestDoc(), ...bad, signatures: [] }),
    );
    assertEquals(code(() => verifyManifest(m, t, { now: NOW })), "E_SCHEMA", JSON.stringify(bad));
  }
});

async function release(content: Uint8Array) {
  await Deno.mkdir("/tmp/phase", { recursive: true });
  const dir = await Deno.makeTempDir({ dir: "/tmp/phase" });
  const k = testKey();
  const digest = "sha256:" + createHash("sha256").update(content).digest("hex");
  const doc = manifestDoc({
    artifacts: {
      kernel: { digest, size: content.length },
      initramfs: { digest, size: content.length },
    },
  });
  const v = verifyManifest(signedManifest(doc, k), trustOf(1, k), { now: NOW });
  return { dir, v };
}

Deno.test("TM-01 tampering: an artifact with a changed byte fails E_DIGEST", async () => {
  const content = new Uint8Array(randomBytes(70_001));
  const { dir, v } = await release(content);
  try {
    await Deno.writeFile(`${dir}/k`, content);
    await verifyArtifact(v, "kernel", `${dir}/k`);
    content[1234] ^= 1;
    await Deno.writeFile(`${dir}/k`, content);
    await assertRejects(
      () => verifyArtifact(v, "kernel", `${dir}/k`),
      (e: VerifyError) => e.code === "E_DIGEST",
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("TM-05 endless data: an artifact longer than its size fails E_SIZE without reading it all", async () => {
  const content = new Uint8Array(4096);
  const { dir, v } = await release(content);
  try {
    let pulled = 0;
    // An endless stream: the hash must stop just past the declared size.
    const endless = new ReadableStream<Uint8Array>({
      pull(c) {
        pulled += 1024;
        c.enqueue(new Uint8Array(1024));
      },
    });
    const r = await hashStream(endless, 4096);
    assertEquals(r.overflow, true);
    assertEquals(pulled <= 4096 + 2048 + 1024, true, `pulled ${pulled}`);
    await Deno.writeFile(`${dir}/k`, new Uint8Array(4097));
    await assertRejects(
      () => verifyArtifact(v, "kernel", `${dir}/k`),
      (e: VerifyError) => e.code === "E_SIZE",
    );
    await Deno.writeFile(`${dir}/k`, new Uint8Array(4095));
    await assertRejects(
      () => verifyArtifact(v, "kernel", `${dir}/k`),
      (e: VerifyError) => e.code === "E_SIZE",
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("TM-05 endless data: a manifest above MAX_MANIFEST_BYTES is refused before parsing", () => {
  const k = testKey();
  const trust = trustOf(1, k);
  // A validly signed manifest padded with trailing whitespace: still valid JSON with the same
  // signed content, so only the byte cap can refuse it.
  const signed = signedManifest(manifestDoc(), k);
  const padded = (size: number) => {
    const b = new Uint8Array(size).fill(0x20);
    b.set(signed);
    return b;
  };
  assertEquals(code(() => verifyManifest(padded(MAX_MANIFEST_BYTES), trust, { now: NOW })), "ok");
  assertThrows(() => verifyManifest(padded(MAX_MANIFEST_BYTES + 1), trust, { now: NOW }), {
    name: "VerifyError",
    code: "E_SCHEMA",
    message: `manifest is ${
      MAX_MANIFEST_BYTES + 1
    } bytes, above the ${MAX_MANIFEST_BYTES}-byte cap`,
  });
});

Deno.test("TM-01 tampering: a UTF-8 BOM before a signed manifest is E_SCHEMA (it would change manifest_cid)", () => {
  const k = testKey();
  const bytes = signedManifest(manifestDoc(), k);
  assertEquals(code(() => verifyManifest(bytes, trustOf(1, k), { now: NOW })), "ok");
  const withBom = new Uint8Array([0xef, 0xbb, 0xbf, ...bytes]);
  assertEquals(code(() => verifyManifest(withBom, trustOf(1, k), { now: NOW })), "E_SCHEMA");
});
