/**
 * The signer end to end: entrypoints as subprocesses under their sets,
 * checked by the verify entrypoint and by openssl (interop both ways).
 */
import { EXIT_STATUS } from "../core/mod.ts";
import {
  deepStrictEqual as assertEquals,
  match as assertMatch,
  ok as assert,
} from "node:assert/strict";
import { keyidOf, publicRawFromPem } from "../verify/mod.ts";

const REPO = new URL("..", import.meta.url).pathname;
const VEC = new URL("../../shared/vectors/", import.meta.url).pathname;

async function run(cmd: string, args: string[], cwd = REPO) {
  const out = await new Deno.Command(cmd, { args, cwd, stdout: "piped", stderr: "piped" }).output();
  return {
    code: out.code,
    stdout: new TextDecoder().decode(out.stdout),
    stderr: new TextDecoder().decode(out.stderr),
  };
}
const task = (...args: string[]) => run("deno", ["task", "-q", ...args]);

/** `openssl pkeyutl -verify -rawin` of dir/sig.bin over dir/jcs.bin with dir/k.pub.pem. */
const opensslVerify = (dir: string) =>
  run("openssl", [
    ...["pkeyutl", "-verify", "-pubin", "-inkey", `${dir}/k.pub.pem`, "-rawin"],
    ...["-in", `${dir}/jcs.bin`, "-sigfile", `${dir}/sig.bin`],
  ]);

async function scratch() {
  await Deno.mkdir("/tmp/phase", { recursive: true });
  return await Deno.makeTempDir({ dir: "/tmp/phase", prefix: "sign-" });
}

async function writeRelease(root: string) {
  const dir = `${root}/stable/amd64`;
  await Deno.mkdir(dir, { recursive: true });
  await Deno.writeFile(`${dir}/kernel`, new Uint8Array(100_000).fill(7));
  await Deno.writeFile(`${dir}/initramfs`, new Uint8Array(50_000).fill(9));
  await Deno.writeTextFile(`${dir}/cmdline`, "console=ttyS0\n");
  return dir;
}

const verifyArgs = (dir: string, trust: string) => [
  "verify",
  "--manifest",
  `${dir}/manifest.json`,
  "--trust",
  trust,
  "--channel",
  "stable",
  "--arch",
  "amd64",
  "--artifact",
  `kernel=${dir}/kernel`,
  "--artifact",
  `initramfs=${dir}/initramfs`,
  "--json",
];

Deno.test("keygen: writes a 0600 PKCS#8 key, SPKI public key and trust file; never overwrites", async () => {
  const dir = await scratch();
  try {
    const r = await task("keygen", "--out", `${dir}/keys`);
    assertEquals(r.code, 0, r.stderr);
    // stdout is a pipe: keygen's result is JSON (cli/output.ts).
    const keyid: string = JSON.parse(r.stdout).keyid;
    assertMatch(keyid, /^ed25519:[0-9a-f]{64}$/);
    assertEquals((await Deno.stat(`${dir}/keys/release.pem`)).mode! & 0o777, 0o600);
    const pub = publicRawFromPem(await Deno.readTextFile(`${dir}/keys/release.pub.pem`));
    assertEquals(keyidOf(pub), keyid);
    const trust = JSON.parse(await Deno.readTextFile(`${dir}/keys/trust.json`));
    assertEquals(Object.keys(trust.keys), [keyid]);
    const before = await Deno.readFile(`${dir}/keys/release.pem`);
    const again = await task("keygen", "--out", `${dir}/keys`);
    assertEquals(again.code, EXIT_STATUS.E_EXISTS);
    assertMatch(again.stderr, /phase-keygen: error: .*already exists/);
    assertMatch(again.stderr, /hint: /);
    assertEquals(await Deno.readFile(`${dir}/keys/release.pem`), before);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("TM-12 compromised component: keygen --trust writes the trust file apart from the private key", async () => {
  const dir = await scratch();
  try {
    const r = await task("keygen", "--out", `${dir}/keys`, "--trust", `${dir}/trust/trust.json`);
    assertEquals(r.code, 0, r.stderr);
    // stdout is a pipe: keygen's result is JSON (cli/output.ts).
    const keyid: string = JSON.parse(r.stdout).keyid;
    assertMatch(keyid, /^ed25519:[0-9a-f]{64}$/);
    const trust = JSON.parse(await Deno.readTextFile(`${dir}/trust/trust.json`));
    assertEquals(Object.keys(trust.keys), [keyid]);
    // The keys folder holds no trust file a networked set would need to read.
    assertEquals((await Array.fromAsync(Deno.readDir(`${dir}/keys`))).map((e) => e.name).sort(), [
      "release.pem",
      "release.pub.pem",
    ]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("sign: a release signed by the sign entrypoint verifies through the verify entrypoint", async () => {
  const dir = await scratch();
  try {
    const rel = await writeRelease(`${dir}/root`);
    assertEquals((await task("keygen", "--out", `${dir}/keys`)).code, 0);
    const s = await task(
      "sign",
      ...[
        "--root",
        `${dir}/root`,
        "--channel",
        "stable",
        "--arch",
        "x86_64",
        "--version",
        "2026.11.22",
      ],
      ...[
        "--key",
        `${dir}/keys/release.pem`,
        "--mirror",
        "http://127.0.0.1:8080/stable/amd64/manifest.json",
      ],
    );
    assertEquals(s.code, 0, s.stderr);
    const m = JSON.parse(await Deno.readTextFile(`${rel}/manifest.json`));
    assertEquals(m.cmdline, "console=ttyS0");
    assertEquals(m.arch, "amd64");
    assertEquals(m.artifacts.kernel.size, 100_000);
    const v = await task(...verifyArgs(rel, `${dir}/keys/trust.json`));
    assertEquals(v.code, 0, v.stdout + v.stderr);
    assertEquals(JSON.parse(v.stdout).ok, true);
    // The record names the exact manifest bytes.
    const record = JSON.parse(await Deno.readTextFile(`${rel}/record.json`));
    assertEquals(JSON.parse(v.stdout).manifest_cid, record.manifest_cid);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("TM-09 key compromise and rotation: --add-signature makes a 2-of-2 release without changing signed bytes", async () => {
  const dir = await scratch();
  try {
    const rel = await writeRelease(`${dir}/root`);
    assertEquals((await task("keygen", "--out", `${dir}/a`, "--name", "a")).code, 0);
    assertEquals((await task("keygen", "--out", `${dir}/b`, "--name", "b")).code, 0);
    const ta = JSON.parse(await Deno.readTextFile(`${dir}/a/trust.json`));
    const tb = JSON.parse(await Deno.readTextFile(`${dir}/b/trust.json`));
    await Deno.writeTextFile(
      `${dir}/trust2.json`,
      JSON.stringify({ threshold: 2, keys: { ...ta.keys, ...tb.keys } }),
    );
    const base = ["--root", `${dir}/root`, "--channel", "stable", "--arch", "amd64"];
    assertEquals(
      (await task("sign", ...base, "--version", "1.0", "--key", `${dir}/a/a.pem`)).code,
      0,
    );
    const one = await task(...verifyArgs(rel, `${dir}/trust2.json`));
    assertEquals(JSON.parse(one.stdout).code, "E_SIGNATURE");
    const add = await task("sign", "--add-signature", ...base, "--key", `${dir}/b/b.pem`);
    assertEquals(add.code, 0, add.stderr);
    const two = await task(...verifyArgs(rel, `${dir}/trust2.json`));
    assertEquals(two.code, 0, two.stdout);
    assertEquals(JSON.parse(two.stdout).signers.length, 2);
    const dup = await task("sign", "--add-signature", ...base, "--key", `${dir}/b/b.pem`);
    assertEquals(dup.code, EXIT_STATUS.E_EXISTS);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("TM-09 key compromise and rotation: sign refuses a key readable by group or other, writing nothing", async () => {
  const dir = await scratch();
  try {
    const rel = await writeRelease(`${dir}/root`);
    assertEquals((await task("keygen", "--out", `${dir}/keys`)).code, 0);
    await Deno.chmod(`${dir}/keys/release.pem`, 0o644);
    const r = await task(
      "sign",
      ...["--root", `${dir}/root`, "--channel", "stable", "--arch", "amd64", "--version", "1"],
      ...["--key", `${dir}/keys/release.pem`],
    );
    assertEquals(r.code, EXIT_STATUS.E_KEY_MODE);
    assertMatch(r.stderr, /hint: chmod 600/);
    let exists = true;
    await Deno.stat(`${rel}/manifest.json`).catch(() => exists = false);
    assertEquals(exists, false);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("interop: an openssl-generated key signs, and openssl verifies Phase's signature over the JCS bytes", async () => {
  const dir = await scratch();
  try {
    const rel = await writeRelease(`${dir}/root`);
    assertEquals(
      (await run("openssl", ["genpkey", "-algorithm", "ed25519", "-out", `${dir}/k.pem`])).code,
      0,
    );
    await Deno.chmod(`${dir}/k.pem`, 0o600);
    assertEquals(
      (await run("openssl", ["pkey", "-in", `${dir}/k.pem`, "-pubout", "-out", `${dir}/k.pub.pem`]))
        .code,
      0,
    );
    const s = await task(
      "sign",
      ...["--root", `${dir}/root`, "--channel", "stable", "--arch", "amd64", "--version", "3"],
      ...["--key", `${dir}/k.pem`],
    );
    assertEquals(s.code, 0, s.stderr);
    // openssl checks the signature over the canonical bytes Phase signed.
    const { canonicalize, parseStrictJson, isJsonObject, decodeBase64 } = await import(
      "../verify/mod.ts"
    );
    const doc = parseStrictJson(await Deno.readFile(`${rel}/manifest.json`));
    if (!isJsonObject(doc)) throw new Error("not an object");
    const { signatures, ...rest } = doc as Record<string, unknown>;
    await Deno.writeTextFile(`${dir}/jcs.bin`, canonicalize(rest as never));
    const sig = decodeBase64((signatures as { sig: string }[])[0].sig)!;
    await Deno.writeFile(`${dir}/sig.bin`, sig);
    const ok = await opensslVerify(dir);
    assertEquals(ok.code, 0, ok.stdout + ok.stderr);
    assertMatch(ok.stdout, /Signature Verified Successfully/);
    // And a byte flipped in the signed bytes makes openssl refuse it.
    await Deno.writeTextFile(
      `${dir}/jcs.bin`,
      canonicalize(rest as never).replace("console", "Console"),
    );
    const bad = await opensslVerify(dir);
    assertEquals(bad.code === 0, false);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("interop: openssl signs the JCS bytes and Phase's verifier accepts it; the vector keys load", async () => {
  const dir = await scratch();
  try {
    const rel = await writeRelease(`${dir}/root`);
    // Vector keys are 0444 in shared/: copy with 0600 as a user would.
    await Deno.copyFile(`${VEC}keys/release-a.pem`, `${dir}/a.pem`);
    await Deno.chmod(`${dir}/a.pem`, 0o600);
    const s = await task(
      "sign",
      ...["--root", `${dir}/root`, "--channel", "stable", "--arch", "amd64", "--version", "4"],
      ...["--key", `${dir}/a.pem`],
    );
    assertEquals(s.code, 0, s.stderr);
    await Deno.copyFile(`${VEC}trust-a.json`, `${dir}/trust-a.json`);
    // Replace Phase's signature with one openssl makes over the same bytes.
    const { canonicalize, parseStrictJson, encodeBase64 } = await import("../verify/mod.ts");
    const doc = parseStrictJson(await Deno.readFile(`${rel}/manifest.json`)) as Record<
      string,
      unknown
    >;
    const { signatures, ...rest } = doc;
    await Deno.writeTextFile(`${dir}/jcs.bin`, canonicalize(rest as never));
    const o = await run("openssl", [
      "pkeyutl",
      "-sign",
      "-inkey",
      `${VEC}keys/release-a.pem`,
      "-rawin",
      "-in",
      `${dir}/jcs.bin`,
      "-out",
      `${dir}/sig.bin`,
    ]);
    assertEquals(o.code, 0, o.stderr);
    const keyid = (signatures as { keyid: string }[])[0].keyid;
    const sig = encodeBase64(await Deno.readFile(`${dir}/sig.bin`));
    await Deno.writeTextFile(
      `${rel}/manifest.json`,
      JSON.stringify({ ...rest, signatures: [{ keyid, sig }] }),
    );
    const v = await task(...verifyArgs(rel, `${dir}/trust-a.json`));
    assertEquals(v.code, 0, v.stdout + v.stderr);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("sign: bad input gives a usage error or a clear error and writes nothing", async () => {
  const dir = await scratch();
  try {
    await writeRelease(`${dir}/root`);
    assertEquals((await task("keygen", "--out", `${dir}/keys`)).code, 0);
    const base = [
      "--root",
      `${dir}/root`,
      "--channel",
      "stable",
      "--key",
      `${dir}/keys/release.pem`,
    ];
    const noArch = await task("sign", ...base, "--version", "1");
    assertEquals(noArch.code, EXIT_STATUS.E_USAGE);
    assertMatch(noArch.stderr, /phase-sign: error: missing required flag --arch/);
    const badVersion = await task("sign", ...base, "--arch", "amd64", "--version", "v1");
    assertEquals(badVersion.code, EXIT_STATUS.E_MANIFEST);
    const noRelease = await task("sign", ...base, "--arch", "arm64", "--version", "1");
    assertEquals(noRelease.code, EXIT_STATUS.E_ARTIFACT);
    const unknown = await task(
      "sign",
      ...base,
      "--arch",
      "amd64",
      "--version",
      "1",
      "--frobnicate",
    );
    assertEquals(unknown.code, EXIT_STATUS.E_USAGE);
    let exists = true;
    await Deno.stat(`${dir}/root/stable/amd64/manifest.json`).catch(() => exists = false);
    assertEquals(exists, false);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/** Checks record.json of `rel` against a trust file the way the provider does (verifyRecord). */
async function recordVerifies(rel: string, trustPath: string): Promise<boolean> {
  const { parseTrust, verifyRecord, rawCid } = await import("../verify/mod.ts");
  const trust = parseTrust(await Deno.readFile(trustPath));
  try {
    const rec = verifyRecord(await Deno.readFile(`${rel}/record.json`), trust, new Date());
    return rec.value.manifestCid === rawCid(await Deno.readFile(`${rel}/manifest.json`));
  } catch {
    return false;
  }
}

Deno.test("TM-09 key compromise and rotation: --add-signature with both keys keeps every signature; a provider trusting only the first key still accepts the record", async () => {
  const dir = await scratch();
  try {
    const rel = await writeRelease(`${dir}/root`);
    assertEquals((await task("keygen", "--out", `${dir}/keys`)).code, 0);
    // The first key's own trust file, as a provider that knows only it holds.
    await Deno.copyFile(`${dir}/keys/trust.json`, `${dir}/trust-first.json`);
    const second = await task(
      "keygen",
      "--out",
      `${dir}/keys`,
      "--name",
      "other",
      "--add-to-trust",
    );
    assertEquals(second.code, 0, second.stderr);
    const base = ["--root", `${dir}/root`, "--channel", "stable", "--arch", "amd64"];
    const first = `${dir}/keys/release.pem`;
    const other = `${dir}/keys/other.pem`;
    assertEquals((await task("sign", ...base, "--version", "2026.11.20", "--key", first)).code, 0);
    assertEquals(await recordVerifies(rel, `${dir}/trust-first.json`), true);
    // The signers present together: the new manifest signature, and the record by both.
    const add = await task("sign", "--add-signature", ...base, "--key", other, "--key", first);
    assertEquals(add.code, 0, add.stderr);
    assertEquals(add.stderr.includes("WARNING"), false, add.stderr);
    assertEquals(await recordVerifies(rel, `${dir}/trust-first.json`), true);
    assertEquals(await recordVerifies(rel, `${dir}/keys/trust.json`), true);
    const record = JSON.parse(await Deno.readTextFile(`${rel}/record.json`));
    assertEquals(record.signatures.length, 2);
    // Both manifest signatures hold under a 2-of-2 trust file.
    assertEquals((await task("trust", "threshold", `${dir}/keys/trust.json`, "2")).code, 0);
    const v = await task(...verifyArgs(rel, `${dir}/keys/trust.json`));
    assertEquals(v.code, 0, v.stdout + v.stderr);
    assertEquals(JSON.parse(v.stdout).signers.length, 2);
    assertEquals(await recordVerifies(rel, `${dir}/keys/trust.json`), true);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("TM-09 key compromise and rotation: --add-signature with only the new key warns which record signers must sign again, and their command restores the record", async () => {
  const dir = await scratch();
  try {
    const rel = await writeRelease(`${dir}/root`);
    const r1 = await task("keygen", "--out", `${dir}/keys`);
    const firstId = JSON.parse(r1.stdout).keyid as string;
    await Deno.copyFile(`${dir}/keys/trust.json`, `${dir}/trust-first.json`);
    assertEquals((await task("keygen", "--out", `${dir}/keys`, "--name", "other")).code, 0);
    const base = ["--root", `${dir}/root`, "--channel", "stable", "--arch", "amd64"];
    assertEquals(
      (await task("sign", ...base, "--version", "1", "--key", `${dir}/keys/release.pem`)).code,
      0,
    );
    const add = await task("sign", "--add-signature", ...base, "--key", `${dir}/keys/other.pem`);
    assertEquals(add.code, 0, add.stderr);
    // Loud: who lost their record signature, why, and the exact command to run.
    assertMatch(
      add.stderr,
      /phase-sign: WARNING: .*record\.json was re-signed by ed25519:\S+ only/,
    );
    assertMatch(add.stderr, new RegExp(`no longer hold:\\n +${firstId}\\n`));
    const command =
      `deno task sign --add-signature --record --root ${dir}/root --channel stable --arch amd64 --key ${dir}/keys/release.pem`;
    assert(add.stderr.includes(`    ${command}\n`), add.stderr);
    // The manifest kept the first signature.
    const m = JSON.parse(await Deno.readTextFile(`${rel}/manifest.json`));
    assertEquals(m.signatures.length, 2);
    assertEquals(await recordVerifies(rel, `${dir}/trust-first.json`), false);
    // Running the printed command appends without dropping the new key's signature.
    const again = await task(...command.split(" ").slice(2));
    assertEquals(again.code, 0, again.stderr);
    assertEquals(await recordVerifies(rel, `${dir}/trust-first.json`), true);
    const record = JSON.parse(await Deno.readTextFile(`${rel}/record.json`));
    assertEquals(record.signatures.length, 2);
    // A record that names other bytes than manifest.json takes no signature.
    await Deno.writeTextFile(
      `${rel}/manifest.json`,
      (await Deno.readTextFile(`${rel}/manifest.json`)) + " ",
    );
    const stale = await task(...command.split(" ").slice(2));
    assertEquals(stale.code, EXIT_STATUS.E_MANIFEST, stale.stderr);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
