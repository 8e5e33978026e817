import { createHash } from "node:crypto";
import { assert, assertEquals } from "../testing/mod.ts";
import { keygen, loadSigningKey, signRelease } from "../sign/mod.ts";
import { cachedRelease, lastJson } from "./boot.ts";

async function tempDir(): Promise<string> {
  await Deno.mkdir("/tmp/phase", { recursive: true });
  return await Deno.makeTempDir({ dir: "/tmp/phase", prefix: "boot-test-" });
}

function sha256Hex(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

/** Puts a real signed release of `version` into a CAS cache the way the fetcher lays it out. */
async function cacheRelease(
  dir: string,
  cache: string,
  version: string,
  key: Awaited<ReturnType<typeof loadSigningKey>>,
) {
  const root = `${dir}/rel-${version}`;
  await Deno.mkdir(`${root}/stable/amd64`, { recursive: true });
  await Deno.writeTextFile(`${root}/stable/amd64/kernel`, `kernel ${version}`);
  await Deno.writeTextFile(`${root}/stable/amd64/initramfs`, `initramfs ${version}`);
  await signRelease({
    root,
    channel: "stable",
    arch: "amd64",
    version,
    now: new Date(),
    expiresInMs: 86_400_000,
    cmdline: "console=ttyS0",
  }, key);
  await Deno.mkdir(`${cache}/cas/sha256`, { recursive: true });
  for (const f of ["manifest.json", "kernel", "initramfs"]) {
    const bytes = await Deno.readFile(`${root}/stable/amd64/${f}`);
    await Deno.writeFile(`${cache}/cas/sha256/${sha256Hex(bytes)}`, bytes);
  }
  return sha256Hex(await Deno.readFile(`${root}/stable/amd64/manifest.json`));
}

Deno.test("cachedRelease picks the newest cached manifest for the channel/arch, with its artifacts' CAS paths", async () => {
  const dir = await tempDir();
  try {
    const keys = await keygen(`${dir}/keys`, "release");
    const key = await loadSigningKey(keys.paths.privateKey);
    const cache = `${dir}/cache`;
    await cacheRelease(dir, cache, "2026.11.1", key);
    const newest = await cacheRelease(dir, cache, "2026.11.20", key);
    await cacheRelease(dir, cache, "2026.9.30", key);
    const got = await cachedRelease(cache, "stable", "amd64");
    assert(got, "a cached release is found");
    assertEquals(got.manifest, `${cache}/cas/sha256/${newest}`);
    assertEquals(await Deno.readTextFile(got.artifacts.kernel), "kernel 2026.11.20");
    assertEquals(await Deno.readTextFile(got.artifacts.initramfs), "initramfs 2026.11.20");
    assertEquals(await cachedRelease(cache, "beta", "amd64"), undefined);
    assertEquals(await cachedRelease(`${dir}/no-cache`, "stable", "amd64"), undefined);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("lastJson takes a step's last JSON object line and ignores the rest", () => {
  assertEquals(lastJson('progress 10%\n{"ok":false}\n{"ok":true,"version":"1"}\nbye\n'), {
    ok: true,
    version: "1",
  });
  assertEquals(lastJson("no json here\n[1,2]\n"), undefined);
});
