import { memoryLogger } from "../core/mod.ts";
import { keygen } from "../sign/mod.ts";
import { parseTrust, rawCid, verifyRecord } from "../verify/mod.ts";
import {
  assert,
  assertEquals,
  releaseKey,
  sha256Hex,
  signFixture,
  tempDir,
  writeRelease,
} from "../testing/mod.ts";
import { CatalogLoader } from "./catalog.ts";
import { startProvider } from "./server.ts";

Deno.test("catalog: a pre-signed release is verified against the trust file and served byte for byte", async () => {
  const dir = await tempDir("cat");
  try {
    await writeRelease(`${dir}/root`);
    const { key, trustPath } = await releaseKey(`${dir}/keys`);
    const signed = await signFixture(`${dir}/root`, key, {
      mirrors: ["http://mirror.invalid/stable/amd64/manifest.json"],
    });
    const logger = memoryLogger();
    const p = await startProvider({
      root: `${dir}/root`,
      state: `${dir}/state`,
      port: 0,
      sign: false,
      trustPath,
      logger,
      watch: false,
    });
    try {
      const served = new Uint8Array(
        await (await fetch(`${p.url}/stable/amd64/manifest.json`)).arrayBuffer(),
      );
      assertEquals(served, await Deno.readFile(signed.path));
      assertEquals(p.catalog().releases.get("stable/amd64")!.origin, "pre-signed");
      // The release's own record is served as is.
      const rec = new Uint8Array(
        await (await fetch(`${p.url}/stable/amd64/record.json`)).arrayBuffer(),
      );
      const v = verifyRecord(rec, parseTrust(await Deno.readFile(trustPath)), new Date());
      assertEquals(v.value.manifestCid, rawCid(served));
      // --no-sign: no key was created in the state directory.
      assert(!(await Deno.stat(`${dir}/state/provider.pem`).then(() => true, () => false)));
    } finally {
      await p.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("TM-01 tampering (provider side): a pre-signed release whose artifact or manifest was altered, or signed by an untrusted key, is refused with a log line and never served", async () => {
  const dir = await tempDir("cat");
  try {
    const root = `${dir}/root`;
    await writeRelease(root, "stable", "amd64");
    await writeRelease(root, "beta", "amd64", {}, 2);
    await writeRelease(root, "edge", "amd64", {}, 3);
    const { key, trustPath } = await releaseKey(`${dir}/keys`);
    const { key: rogue } = await releaseKey(`${dir}/rogue`, "rogue");
    await signFixture(root, key, { channel: "stable" });
    await signFixture(root, key, { channel: "beta" });
    await signFixture(root, rogue, { channel: "edge" });
    // Tamper: one byte of the stable kernel; one character of beta's manifest.
    const k = await Deno.readFile(`${root}/stable/amd64/kernel`);
    k[100] ^= 1;
    await Deno.writeFile(`${root}/stable/amd64/kernel`, k);
    const mPath = `${root}/beta/amd64/manifest.json`;
    await Deno.writeTextFile(
      mPath,
      (await Deno.readTextFile(mPath)).replace("console=ttyS0", "console=ttyS1"),
    );
    const logger = memoryLogger();
    const loader = new CatalogLoader({
      root,
      trust: parseTrust(await Deno.readFile(trustPath)),
      logger,
    });
    const c = await loader.load();
    assertEquals(c.releases.size, 0);
    assertEquals(c.refused.length, 3);
    const reasons = logger.entries.filter((e) => e.event === "release_refused").map((e) =>
      String(e.fields.reason)
    );
    assert(reasons.some((r) => /does not match the signed manifest/.test(r)), reasons.join("; "));
    assert(
      reasons.filter((r) => /valid trusted signature/.test(r)).length === 2,
      reasons.join("; "),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("catalog: without a manifest and with --no-sign a directory is refused; a rescan re-hashes only what changed", async () => {
  const dir = await tempDir("cat");
  try {
    const root = `${dir}/root`;
    await writeRelease(root, "stable", "amd64");
    await writeRelease(root, "stable", "arm64", {}, 2);
    const none = new CatalogLoader({ root, logger: memoryLogger() });
    assertEquals((await none.load()).releases.size, 0);
    await keygen(`${dir}/k`, "p");
    const { loadSigningKey } = await import("../sign/mod.ts");
    const key = await loadSigningKey(`${dir}/k/p.pem`);
    const loader = new CatalogLoader({ root, key, logger: memoryLogger() });
    const first = await loader.load();
    assertEquals(first.releases.size, 2);
    assertEquals(loader.hashedFiles, 4);
    const again = await loader.load();
    assertEquals(loader.hashedFiles, 4, "nothing changed, nothing re-hashed");
    // Unchanged releases keep their signed bytes.
    assertEquals(
      again.releases.get("stable/amd64")!.manifestBytes,
      first.releases.get("stable/amd64")!.manifestBytes,
    );
    const fresh = new Uint8Array(5000).fill(7);
    await Deno.writeFile(`${root}/stable/arm64/initramfs.new`, fresh);
    await Deno.rename(`${root}/stable/arm64/initramfs.new`, `${root}/stable/arm64/initramfs`);
    const third = await loader.load();
    assertEquals(loader.hashedFiles, 5, "only the replaced file was re-hashed");
    const arm = third.releases.get("stable/arm64")!;
    assertEquals(arm.manifest.artifacts.initramfs.digest, `sha256:${await sha256Hex(fresh)}`);
    assert(
      arm.manifest.version > first.releases.get("stable/arm64")!.manifest.version,
      "a new version",
    );
    assertEquals(
      third.releases.get("stable/amd64")!.manifestBytes,
      first.releases.get("stable/amd64")!.manifestBytes,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("TM-03 freeze (provider side): a generated manifest is re-signed with a new version before it expires", async () => {
  const dir = await tempDir("cat");
  try {
    await writeRelease(`${dir}/root`);
    await keygen(`${dir}/k`, "p");
    const { loadSigningKey } = await import("../sign/mod.ts");
    const key = await loadSigningKey(`${dir}/k/p.pem`);
    let now = new Date("2026-11-22T00:00:00Z");
    const loader = new CatalogLoader({
      root: `${dir}/root`,
      key,
      logger: memoryLogger(),
      now: () => now,
      expiresInMs: 4 * 86_400_000,
    });
    const first = (await loader.load()).releases.get("stable/amd64")!;
    now = new Date("2026-11-23T00:00:00Z"); // 3 of 4 days left: kept
    assertEquals(
      (await loader.load()).releases.get("stable/amd64")!.manifestBytes,
      first.manifestBytes,
    );
    now = new Date("2026-11-24T12:00:00Z"); // 1.5 of 4 days left: re-signed
    const second = (await loader.load()).releases.get("stable/amd64")!;
    assert(second.manifest.version > first.manifest.version);
    assertEquals(second.manifest.expiresAt.toISOString(), "2026-11-28T12:00:00.000Z");
    assertEquals(loader.hashedFiles, 2, "re-signing does not re-hash");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
