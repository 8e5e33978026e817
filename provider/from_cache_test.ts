/**
 * `serve --from-cache`: a provider that re-serves what a real fetch put in
 * a cache (byte-exact manifest and record, artifacts from cas/), re-verifies
 * everything on each scan, refuses what does not verify (logged once, on
 * the status page), and never signs.
 */
import { startTestProvider } from "../testing/provider.ts";
import { memoryLogger } from "../core/mod.ts";
import { fetchRelease } from "../client/mod.ts";
import {
  assert,
  assertEquals,
  assertMatch,
  assertRejects,
  releaseKey,
  signFixture,
  tempDir,
  writeRelease,
} from "../testing/mod.ts";
import {
  loadTrust,
  rawCid,
  recordTrustStep,
  sha256Hex,
  verifyTrustStep,
  walkTrustChain,
} from "../verify/mod.ts";
import { keygen, loadSigningKey, signRelease, trustInit, trustRotate } from "../sign/mod.ts";
import { serveOptions } from "./cli.ts";
import { type RunningProvider, startProvider } from "./server.ts";

const opts = { sanitizeResources: false, sanitizeOps: false };

/** A signed release served by an origin and fetched into a cache (record kept). */
async function fetchedCache(dir: string, sign: { expiresInMs?: number } = {}) {
  const { key, trustPath } = await releaseKey(`${dir}/keys`);
  const files = await writeRelease(`${dir}/root`, "stable", "amd64", {
    kernel: 300_000,
    initramfs: 100_000,
  });
  await signFixture(`${dir}/root`, key, sign);
  const origin = await startTestProvider({
    root: `${dir}/root`,
    state: `${dir}/origin-state`,
    trustPath,
  });
  try {
    const trust = await loadTrust(trustPath);
    const r = await fetchRelease({
      manifestUrl: `${origin.url}/stable/amd64/manifest.json`,
      trust,
      cacheDir: `${dir}/cache`,
    });
    return { trustPath, trust, files, fetched: r, key };
  } finally {
    await origin.close();
  }
}

function startFromCache(dir: string, trustPath: string, extra: Record<string, unknown> = {}) {
  const logger = memoryLogger();
  return startTestProvider({
    root: `${dir}/cache`,
    fromCache: `${dir}/cache`,
    state: `${dir}/reserve-state`,
    trustPath,
    watch: false,
    logger,
    ...extra,
  }).then((p) => ({ p, logger }));
}

async function body(url: string): Promise<{ status: number; bytes: Uint8Array }> {
  const res = await fetch(url);
  return { status: res.status, bytes: new Uint8Array(await res.arrayBuffer()) };
}

function refusals(p: RunningProvider) {
  return p.catalog().refused.map((r) => ({
    at: r.dir.split("/").slice(-2).join("/"),
    code: r.code,
    item: r.item,
  }));
}

Deno.test({
  name:
    "serve --from-cache re-serves a fetched release byte for byte, record included, and a client fetches it",
  ...opts,
  fn: async () => {
    const dir = await tempDir("fromcache");
    const { trustPath, trust, files, fetched } = await fetchedCache(dir);
    assert(fetched.recordPath, "fetch kept the signed record.json in the cache");
    const { p } = await startFromCache(dir, trustPath);
    try {
      assertEquals(p.keyid, undefined); // no signing key
      const signed = await Deno.readFile(`${dir}/root/stable/amd64/manifest.json`);
      const m = await body(`${p.url}/stable/amd64/manifest.json`);
      assertEquals(m.status, 200);
      assertEquals(m.bytes, signed);
      const rec = await body(`${p.url}/stable/amd64/record.json`);
      assertEquals(rec.bytes, await Deno.readFile(`${dir}/root/stable/amd64/record.json`));
      const k = await body(`${p.url}/cas/sha256/${sha256Hex(files.kernel)}`);
      assertEquals(k.bytes, files.kernel);
      const byCid = await body(`${p.url}/ipfs/${rawCid(signed)}?format=raw`);
      assertEquals(byCid.bytes, signed);
      // A second machine boots from the re-serving node only.
      const again = await fetchRelease({
        manifestUrl: `${p.url}/stable/amd64/manifest.json`,
        trust,
        cacheDir: `${dir}/cache2`,
      });
      assertEquals(await Deno.readFile(again.artifacts.initramfs.path), files.initramfs);
      assertEquals(p.catalog().refused, []);
    } finally {
      await p.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "TM-01 tampering: serve --from-cache never serves a cas entry that does not hash to its name, logs it once and lists it",
  ...opts,
  fn: async () => {
    const dir = await tempDir("fromcache");
    const { trustPath, fetched } = await fetchedCache(dir);
    const path = fetched.artifacts.kernel.path;
    await Deno.chmod(path, 0o600);
    const f = await Deno.open(path, { read: true, write: true });
    await f.seek(1000, Deno.SeekMode.Start);
    await f.write(new Uint8Array([0x42 ^ 0xff]));
    f.close();
    const { p, logger } = await startFromCache(dir, trustPath);
    try {
      await p.rescan();
      await p.rescan();
      assertEquals(refusals(p), [{ at: "stable/amd64", code: "E_DIGEST", item: undefined }]);
      assertEquals((await body(`${p.url}/stable/amd64/manifest.json`)).status, 404);
      const hex = fetched.artifacts.kernel.digest.slice(7);
      assertEquals((await body(`${p.url}/cas/sha256/${hex}`)).status, 404);
      const info = await (await fetch(`${p.url}/`, { headers: { accept: "application/json" } }))
        .json();
      assertEquals(info.refused, [{ dir: "stable/amd64", code: "E_DIGEST" }]);
      const html = await (await fetch(`${p.url}/`, { headers: { accept: "text/html" } })).text();
      assert(html.includes("stable/amd64") && html.includes("E_DIGEST"), "status page lists it");
      // Three scans, one log line.
      const logged = logger.entries.filter((e) => e.event === "release_refused");
      assertEquals(logged.length, 1);
      assert(String(logged[0].fields.reason).includes("does not hash to its name"));
    } finally {
      await p.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "TM-03 freeze: serve --from-cache refuses a cached manifest that has expired since it was fetched",
  ...opts,
  fn: async () => {
    const dir = await tempDir("fromcache");
    const { trustPath } = await fetchedCache(dir, { expiresInMs: 3_600_000 });
    const later = new Date(Date.now() + 2 * 3_600_000);
    const { p, logger } = await startFromCache(dir, trustPath, { now: () => later });
    try {
      assertEquals(refusals(p), [{ at: "stable/amd64", code: "E_EXPIRED", item: undefined }]);
      assertEquals((await body(`${p.url}/stable/amd64/manifest.json`)).status, 404);
      assertEquals(logger.entries.filter((e) => e.event === "release_refused").length, 1);
    } finally {
      await p.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "TM-02 rollback: serve --from-cache refuses a cached manifest below the device's floor",
  ...opts,
  fn: async () => {
    const dir = await tempDir("fromcache");
    const { trustPath } = await fetchedCache(dir);
    // The device has since booted a newer release: its floor is above the cached one.
    await Deno.writeTextFile(`${dir}/cache/state/floor.json`, '{"stable/amd64":"2027.1.1"}');
    const { p } = await startFromCache(dir, trustPath);
    try {
      assertEquals(refusals(p), [{ at: "stable/amd64", code: "E_ROLLBACK", item: undefined }]);
    } finally {
      await p.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "TM-09 key compromise: serve --from-cache refuses releases its trust file does not sign",
  ...opts,
  fn: async () => {
    const dir = await tempDir("fromcache");
    await fetchedCache(dir);
    const other = await releaseKey(`${dir}/otherkeys`, "other");
    const { p, logger } = await startFromCache(dir, other.trustPath);
    try {
      assertEquals(refusals(p), [{ at: "stable/amd64", code: "E_SIGNATURE", item: undefined }]);
      const line = logger.entries.find((e) => e.event === "release_refused");
      assert(
        String(line?.fields.reason).includes("trust files used"),
        "the refusal names the trust",
      );
      assertEquals((await body(`${p.url}/stable/amd64/manifest.json`)).status, 404);
    } finally {
      await p.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "TM-08 DHT poisoning: serve --from-cache never serves a record whose signature fails (the release still is)",
  ...opts,
  fn: async () => {
    const dir = await tempDir("fromcache");
    const { trustPath, fetched } = await fetchedCache(dir);
    const good = await Deno.readFile(fetched.recordPath!);
    const doc = JSON.parse(new TextDecoder().decode(good));
    // A record planted in the cache: a higher version, the genuine signature.
    doc.version = "2099.1.1";
    const forged = new TextEncoder().encode(JSON.stringify(doc, null, 2) + "\n");
    await Deno.remove(fetched.recordPath!);
    await Deno.writeFile(`${dir}/cache/cas/sha256/${sha256Hex(forged)}`, forged);
    const { p, logger } = await startFromCache(dir, trustPath);
    try {
      await p.rescan();
      assertEquals(refusals(p), [{
        at: "stable/amd64",
        code: "E_SIGNATURE",
        item: "record.json",
      }]);
      assertEquals((await body(`${p.url}/stable/amd64/manifest.json`)).status, 200);
      assertEquals((await body(`${p.url}/stable/amd64/record.json`)).status, 404);
      assertEquals(logger.entries.filter((e) => e.event === "record_refused").length, 1);
      const info = await (await fetch(`${p.url}/`, { headers: { accept: "application/json" } }))
        .json();
      assertEquals(info.refused, [{
        dir: "stable/amd64",
        code: "E_SIGNATURE",
        item: "record.json",
      }]);
    } finally {
      await p.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "TM-19 torn artifact reads: serve --from-cache --no-snapshot refuses a cas file rewritten after it was hashed",
  ...opts,
  fn: async () => {
    const dir = await tempDir("fromcache");
    const { trustPath, fetched, files } = await fetchedCache(dir);
    const { p } = await startFromCache(dir, trustPath, { snapshot: false });
    try {
      const hex = fetched.artifacts.kernel.digest.slice(7);
      assertEquals((await body(`${p.url}/cas/sha256/${hex}`)).bytes, files.kernel);
      // Rewritten in place, same size: the identity check catches it.
      const path = fetched.artifacts.kernel.path;
      await Deno.chmod(path, 0o600);
      const changed = files.kernel.slice();
      changed[5] ^= 0xff;
      await Deno.writeFile(path, changed);
      const after = await body(`${p.url}/cas/sha256/${hex}`);
      assertEquals(after.status, 503);
      await p.rescan();
      assertEquals(refusals(p), [{ at: "stable/amd64", code: "E_DIGEST", item: undefined }]);
    } finally {
      await p.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("serve --from-cache holds no signing key: --key is refused, signing is off", async () => {
  const args = ["--from-cache", "/tmp/phase/x", "--trust", "/tmp/phase/t.json"];
  await assertRejects(
    () => Promise.resolve().then(() => serveOptions([...args, "--key", "/tmp/phase/k.pem"])),
    Error,
    "never signs",
  );
  await assertRejects(
    () => Promise.resolve().then(() => serveOptions(["--mirror", "http://x", "--key", "k"])),
    Error,
    "never signs",
  );
  assertEquals(serveOptions(args).sign, false);
  assertEquals(serveOptions(["--mirror", "http://127.0.0.1:1"]).fromCache, "./.cache");
  await assertRejects(
    () => Promise.resolve().then(() => serveOptions(["--mirror", "ftp://x"])),
    Error,
    "not an http(s) URL",
  );
  const dir = await tempDir("fromcache");
  try {
    await assertRejects(
      () =>
        startProvider({
          root: dir,
          fromCache: dir,
          state: `${dir}/s`,
          port: 0,
          mdns: false,
          dht: false,
          logger: memoryLogger(),
        }),
      Error,
      "holds no signing key",
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test({
  name:
    "TM-09 key compromise and rotation: serve --from-cache walks the trust versions the device accepted (<cache>/state/trust): a release signed only by the rotated-in key B is served with /trust/2.json, the retired key A's is not, and a stored chain that does not verify or was cut below its floor serves nothing",
  ...opts,
  fn: async () => {
    const dir = await tempDir("fromcache-rotate");
    const a = await keygen(`${dir}/keys-a`, "a");
    const b = await keygen(`${dir}/keys-b`, "b");
    const [keyA, keyB] = [
      await loadSigningKey(a.paths.privateKey),
      await loadSigningKey(b.paths.privateKey),
    ];
    // Trust v2 (A -> B), signed by both: what the signers publish.
    const v2Path = `${dir}/chain/2.json`;
    await Deno.mkdir(`${dir}/chain`);
    await trustRotate({
      from: a.paths.trust,
      out: v2Path,
      addKeys: [b.paths.publicKey],
      removeKeys: [keyA.keyid],
      expiresInMs: 365 * 86_400_000,
      signWith: [a.paths.privateKey, b.paths.privateKey],
    });
    const v1 = await loadTrust(a.paths.trust);
    const v2Bytes = await Deno.readFile(v2Path);
    // amd64 signed by B (after the rotation), arm64 by A (the retired key).
    const root = `${dir}/root`;
    for (const [arch, key] of [["amd64", keyB], ["arm64", keyA]] as const) {
      await writeRelease(root, "stable", arch, { kernel: 4096, initramfs: 2048 });
      await signRelease({
        root,
        channel: "stable",
        arch,
        version: "2026.6.2",
        expiresInMs: 30 * 86_400_000,
        now: new Date(),
      }, key);
    }
    const both = `${dir}/origin-trust.json`;
    await trustInit(both, [{ path: a.paths.publicKey }, { path: b.paths.publicKey }], 1);
    const origin = await startTestProvider({ root, state: `${dir}/origin-state`, trustPath: both });
    try {
      for (const [arch, trust] of [["amd64", await loadTrust(v2Path)], ["arm64", v1]] as const) {
        await fetchRelease({
          manifestUrl: `${origin.url}/stable/${arch}/manifest.json`,
          trust,
          cacheDir: `${dir}/cache`,
        });
      }
    } finally {
      await origin.close();
    }
    // The node's trust file is the pinned v1 (A), as on the target.
    const { p } = await startFromCache(dir, a.paths.trust);
    const status = (path: string) => body(`${p.url}${path}`).then((r) => r.status);
    try {
      // No rotation stored: only A's release verifies.
      assertEquals(refusals(p), [{ at: "stable/amd64", code: "E_SIGNATURE", item: undefined }]);
      assertEquals(await status("/stable/arm64/manifest.json"), 200);
      assertEquals(await status("/trust/2.json"), 404);

      // fetch accepted v2 on this device: kept in <cache>/state/trust with the floor.
      const state = `${dir}/cache/state`;
      await recordTrustStep(state, verifyTrustStep(v1, v2Bytes, new Date()));
      await p.rescan();
      assertEquals(refusals(p), [{ at: "stable/arm64", code: "E_SIGNATURE", item: undefined }]);
      assertEquals(await status("/stable/amd64/manifest.json"), 200);
      assertEquals(await status("/stable/arm64/manifest.json"), 404);
      assertMatch(
        p.catalog().releases.get("stable/amd64")!.trustedBy!,
        /-> .*\/state\/trust\/2\.json$/,
      );
      // A peer pinned to v1 walks forward from this node.
      assertEquals((await body(`${p.url}/trust/2.json`)).bytes, v2Bytes);
      const walk = await walkTrustChain(
        v1,
        (v) => body(`${p.url}/trust/${v}.json`).then((r) => r.status === 200 ? r.bytes : undefined),
      );
      assertEquals(walk.trust.version, 2);

      // A v2 planted in the cache (signed by B alone, not by v1's key A): nothing is served.
      await trustRotate({
        from: a.paths.trust,
        out: `${dir}/planted.json`,
        addKeys: [b.paths.publicKey],
        removeKeys: [keyA.keyid],
        expiresInMs: 365 * 86_400_000,
        signWith: [b.paths.privateKey],
      });
      await Deno.copyFile(`${dir}/planted.json`, `${state}/trust/2.json`);
      await p.rescan();
      assertEquals(refusals(p).find((r) => r.at === "state/trust")?.code, "E_TRUST");
      assertEquals(await status("/stable/amd64/manifest.json"), 404);
      assertEquals(await status("/stable/arm64/manifest.json"), 404, "not back to the retired key");
      assertEquals(await status("/trust/2.json"), 404);

      // The stored version removed, the floor left at 2: never back to v1.
      await Deno.remove(`${state}/trust/2.json`);
      await p.rescan();
      const cut = p.catalog().refused.find((r) => r.dir.endsWith("/state/trust"));
      assertEquals(cut?.code, "E_TRUST");
      assertMatch(cut!.reason, /below this device's trust-version floor 2/);
      assertEquals(await status("/stable/amd64/manifest.json"), 404);
      assertEquals(await status("/stable/arm64/manifest.json"), 404);
    } finally {
      await p.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
