/**
 * Issue 14, end to end on loopback: a real provider publishes trust
 * version 2 (A → B) as `/trust/2.json`; a device pinned to version 1 (key
 * A) walks to it on its next fetch, keeps it beside its floor, accepts a
 * release signed by B, and refuses one signed by the retired key A from
 * then on, even when the provider stops serving the chain. The fetcher and
 * verifier run as subprocesses under their own sets.
 */
import { assert, assertEquals, assertMatch, tempDir } from "../../testing/mod.ts";
import { EXIT_STATUS, memoryLogger } from "../../core/mod.ts";
import { startProvider } from "../../provider/mod.ts";
import { keygen, loadSigningKey, signRelease, trustInit, trustRotate } from "../../sign/mod.ts";
import { decodeRecord } from "../../verify/mod.ts";
import { decodeFetchResult } from "../results.ts";

const ROOT = new URL("../../", import.meta.url).pathname;

async function task(name: string, args: string[]) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["task", "-q", name, ...args],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
  }).output();
  return {
    code: out.code,
    stdout: new TextDecoder().decode(out.stdout),
    stderr: new TextDecoder().decode(out.stderr),
  };
}

Deno.test("TM-09 key compromise and rotation: a device pinned to trust v1 (A) fetches a release signed by B after the provider publishes v2 (A → B), then refuses a release signed by the retired key A", async () => {
  const dir = await tempDir("rotate-e2e");
  const root = `${dir}/artifacts`;
  const release = `${root}/stable/amd64`;
  await Deno.mkdir(release, { recursive: true });
  await Deno.writeFile(`${release}/kernel`, new Uint8Array(4096).fill(7));
  await Deno.writeFile(`${release}/initramfs`, new Uint8Array(2048).fill(8));
  const a = await keygen(`${dir}/keys-a`, "a");
  const b = await keygen(`${dir}/keys-b`, "b");
  const [keyA, keyB] = [
    await loadSigningKey(a.paths.privateKey),
    await loadSigningKey(b.paths.privateKey),
  ];
  // The provider serves what either key signed (it is not the device's trust).
  const both = `${dir}/provider-trust.json`;
  await trustInit(both, [{ path: a.paths.publicKey }, { path: b.paths.publicKey }], 1);
  const sign = (version: string, key: typeof keyA) =>
    signRelease({
      root,
      channel: "stable",
      arch: "amd64",
      version,
      expiresInMs: 30 * 86_400_000,
      now: new Date(),
    }, key);
  await sign("2026.6.1", keyA);
  const provider = await startProvider({
    root,
    state: `${dir}/provider-state`,
    port: 0,
    sign: false,
    trustPath: both,
    watch: false,
    logger: memoryLogger(),
  });
  try {
    const cache = `${dir}/cache`;
    const pinned = a.paths.trust; // version 1, key A: what the device's medium carries
    const fetchArgs = [
      ...["--manifest", `${provider.url}/stable/amd64/manifest.json`],
      ...["--trust", pinned, "--cache", cache],
    ];
    const first = await task("fetch", fetchArgs);
    assertEquals(first.code, 0, first.stderr);
    assertEquals(decodeFetchResult(first.stdout).version, "2026.6.1");

    // The signers publish v2 (A → B), signed by A and B, and a release signed by B.
    const rot = await trustRotate({
      from: pinned,
      out: `${root}/trust/2.json`,
      addKeys: [b.paths.publicKey],
      removeKeys: [keyA.keyid],
      expiresInMs: 365 * 86_400_000,
      signWith: [a.paths.privateKey, b.paths.privateKey],
    });
    assert(rot.rotation.complete);
    const signedB = await sign("2026.6.2", keyB);
    // The release keys signed the newest trust version into the record.
    assertEquals(
      decodeRecord(new TextEncoder().encode(JSON.stringify(signedB.record)), new Date())
        .trustVersion,
      2,
    );
    await provider.rescan();
    const served = await fetch(`${provider.url}/trust/2.json`);
    assertEquals(served.status, 200);
    assertEquals(
      new Uint8Array(await served.arrayBuffer()),
      await Deno.readFile(`${root}/trust/2.json`),
    );
    assertEquals(
      await fetch(`${provider.url}/trust/3.json`).then(async (
        r,
      ) => (await r.body?.cancel(), r.status)),
      404,
    );

    const second = await task("fetch", fetchArgs);
    assertEquals(second.code, 0, second.stderr);
    assertEquals(decodeFetchResult(second.stdout).version, "2026.6.2");
    assertMatch(second.stderr, /"event":"trust_rotated".*"version":2/);
    // Kept beside the floor, byte for byte, with a trust-version floor.
    assertEquals(
      await Deno.readFile(`${cache}/state/trust/2.json`),
      await Deno.readFile(`${root}/trust/2.json`),
    );
    assertEquals(JSON.parse(await Deno.readTextFile(`${cache}/state/trust-floor.json`)), {
      version: 2,
    });
    // verify (and kexec) with --state verify under it, from the pinned file.
    const manifestB = decodeFetchResult(second.stdout).manifest;
    const verified = await task("verify", [
      "--manifest",
      manifestB,
      "--trust",
      pinned,
      "--state",
      `${cache}/state`,
      "--json",
    ]);
    assertEquals(verified.code, 0, verified.stdout + verified.stderr);
    const withoutState = await task("verify", [
      "--manifest",
      manifestB,
      "--trust",
      pinned,
      "--json",
    ]);
    assertEquals(withoutState.code, EXIT_STATUS.E_SIGNATURE, withoutState.stdout);

    // The retired key A signs a newer release (stolen key): refused.
    await sign("2026.6.3", keyA);
    await provider.rescan();
    const stolen = await task("fetch", fetchArgs);
    assertEquals(stolen.code, EXIT_STATUS.E_SIGNATURE, stolen.stderr);
    // Even when the provider stops serving the chain, the device never goes back to v1.
    await Deno.remove(`${root}/trust`, { recursive: true });
    await provider.rescan();
    const noChain = await task("fetch", fetchArgs);
    assertEquals(noChain.code, EXIT_STATUS.E_SIGNATURE, noChain.stderr);
    // And a removed stored version cannot take it back either: the floor holds.
    await Deno.remove(`${cache}/state/trust/2.json`);
    const removed = await task("fetch", fetchArgs);
    assertEquals(removed.code, EXIT_STATUS.E_TRUST, removed.stderr);
    assertMatch(removed.stderr, /below this device's trust-version floor 2/);
  } finally {
    await provider.close();
    await Deno.remove(dir, { recursive: true });
  }
});
