/**
 * Issue 14, end to end on loopback: a real provider publishes trust
 * version 2 (A → B) as `/trust/2.json`; a device pinned to version 1 (key
 * A) walks to it on its next fetch, keeps it beside its floor, accepts a
 * release signed by B, and refuses one signed by the retired key A from
 * then on, even when the provider stops serving the chain. The fetcher and
 * verifier run as subprocesses under their own sets.
 */
import { assert, assertEquals, assertMatch, taskArgv, tempDir } from "../../testing/mod.ts";
import { EXIT_STATUS, memoryLogger } from "../../core/mod.ts";
import { startProvider } from "../../provider/mod.ts";
import { keygen, loadSigningKey, signRelease, trustInit, trustRotate } from "../../sign/mod.ts";
import { decodeRecord, sha256Hex } from "../../verify/mod.ts";
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

/** `sh -c script` in a private mount namespace (`unshare -m`): its mounts vanish with it. */
async function inMountNamespace(script: string, env: Record<string, string>): Promise<string> {
  const out = await new Deno.Command("unshare", {
    args: ["-m", "sh", "-c", script],
    env,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout);
  assertEquals(out.code, 0, `${text}\n${new TextDecoder().decode(out.stderr)}`);
  return text;
}

Deno.test("TM-09 key compromise and rotation: private mode keeps the walked chain only in its tmpfs state, and kexec load --state <private root>/state verifies a release signed by the rotated-in key under it", async () => {
  const dir = await tempDir("rotate-private");
  const root = `${dir}/artifacts`;
  const release = `${root}/stable/amd64`;
  await Deno.mkdir(release, { recursive: true });
  const kernel = new Uint8Array(4096).fill(7);
  const initramfs = new Uint8Array(2048).fill(8);
  await Deno.writeFile(`${release}/kernel`, kernel);
  await Deno.writeFile(`${release}/initramfs`, initramfs);
  const a = await keygen(`${dir}/keys-a`, "a");
  const b = await keygen(`${dir}/keys-b`, "b");
  const keyA = await loadSigningKey(a.paths.privateKey);
  const both = `${dir}/provider-trust.json`;
  await trustInit(both, [{ path: a.paths.publicKey }, { path: b.paths.publicKey }], 1);
  // Trust v2 (A → B), signed by A and B; the release is signed by B only.
  await trustRotate({
    from: a.paths.trust,
    out: `${root}/trust/2.json`,
    addKeys: [b.paths.publicKey],
    removeKeys: [keyA.keyid],
    expiresInMs: 365 * 86_400_000,
    signWith: [a.paths.privateKey, b.paths.privateKey],
  });
  await signRelease({
    root,
    channel: "stable",
    arch: "amd64",
    version: "2026.6.2",
    expiresInMs: 30 * 86_400_000,
    now: new Date(),
  }, await loadSigningKey(b.paths.privateKey));
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
    const q = (argv: string[]) => argv.map((x) => `'${x}'`).join(" ");
    // A tmpfs on /run/phase in a private mount namespace, as the seed has:
    // fetch-private walks the chain into its root's state, kexec verifies
    // with and without that state; nothing outlives the namespace.
    const script = `set -e
mkdir -p /run/phase
mount -t tmpfs -o size=64m,mode=0755 tmpfs /run/phase
mkdir -m 0700 /run/phase/t
cp "$PINNED" /run/phase/t/trust.json
cd "$REPO"
set +e
${q(["deno", ...taskArgv("fetch-private")])} --root /run/phase/t/root --manifest "$URL" \\
  --trust /run/phase/t/trust.json >/run/phase/t/fetch.out 2>/run/phase/t/fetch.err
echo "=== fetch $?"
C=/run/phase/t/root/cas/sha256
KEXEC="${
      q(["deno", ...taskArgv("kexec")])
    } load --manifest $C/$MANIFEST --trust /run/phase/t/trust.json \\
  --artifact kernel=$C/$KERNEL --artifact initramfs=$C/$INITRAMFS --dry-run"
eval "$KEXEC --state /run/phase/t/root/state --dir /run/phase/t/run1" >/dev/null 2>&1
echo "=== kexec-state $?"
eval "$KEXEC --dir /run/phase/t/run2" >/dev/null 2>/run/phase/t/kexec.err
echo "=== kexec-pinned $?"
set -e
echo "=== floor $(cat /run/phase/t/root/state/trust-floor.json)"
cmp -s /run/phase/t/root/state/trust/2.json "$TRUST2" && echo "=== stored v2 identical"
echo "=== kexec.err"; cat /run/phase/t/kexec.err
echo "=== fetch.err"; cat /run/phase/t/fetch.err
`;
    const out = await inMountNamespace(script, {
      PINNED: a.paths.trust,
      REPO: ROOT,
      URL: `${provider.url}/stable/amd64/manifest.json`,
      MANIFEST: sha256Hex(await Deno.readFile(`${release}/manifest.json`)),
      KERNEL: sha256Hex(kernel),
      INITRAMFS: sha256Hex(initramfs),
      TRUST2: `${root}/trust/2.json`,
    });
    assertMatch(out, /=== fetch 0\n/);
    assertMatch(out, /"event":"trust_rotated".*"version":2.*"persisted":true/);
    // The chain is kept on the tmpfs, byte for byte, with its floor ...
    assertMatch(out, /=== floor \{"version":2\}\n/);
    assertMatch(out, /=== stored v2 identical\n/);
    // ... and kexec verifies the B-signed release under it; under the pinned trust it cannot.
    assertMatch(out, /=== kexec-state 0\n/);
    assertMatch(out, new RegExp(`=== kexec-pinned ${EXIT_STATUS.E_SIGNATURE}\\n`));
    assertMatch(out, /valid trusted signature/);
    // Nothing of it reached the disk: no state beside the pinned trust file.
    await Deno.lstat(`${dir}/keys-a/trust`).then(
      () => {
        throw new Error("a trust state was written on disk");
      },
      (err) => assert(err instanceof Deno.errors.NotFound),
    );
  } finally {
    await provider.close();
    await Deno.remove(dir, { recursive: true });
  }
});
