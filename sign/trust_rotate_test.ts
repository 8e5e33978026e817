/**
 * Issue 14: `deno task trust rotate` and `deno task trust sign` make the
 * next trust version (formats.md §1.1), as subprocesses under the `sign`
 * set; what they write is checked with the verifier's own chain step.
 */
import { EXIT_STATUS } from "../core/mod.ts";
import { assert, assertEquals, assertMatch, tempDir } from "../testing/mod.ts";
import { parseTrust, VerifyError, verifyTrustStep } from "../verify/mod.ts";

const REPO = new URL("..", import.meta.url).pathname;

async function task(...args: string[]) {
  const out = await new Deno.Command("deno", {
    args: ["task", "-q", ...args],
    cwd: REPO,
    stdout: "piped",
    stderr: "piped",
  }).output();
  return {
    code: out.code,
    stdout: new TextDecoder().decode(out.stdout),
    stderr: new TextDecoder().decode(out.stderr),
  };
}

const keyidIn = (stdout: string): string => JSON.parse(stdout.trim().split("\n").at(-1)!).keyid;

Deno.test("TM-09 key compromise and rotation: trust rotate writes the next version, trust sign adds one holder's signature at a time, and the chain step accepts it only when both thresholds are met", async () => {
  const dir = await tempDir("trustrotate");
  try {
    const a = await task("keygen", "--out", `${dir}/a`, "--name", "a");
    const b = await task("keygen", "--out", `${dir}/b`, "--name", "b");
    const c = await task("keygen", "--out", `${dir}/c`, "--name", "c");
    assertEquals(c.code, 0, c.stderr);
    const [ka, kb] = [a, b].map((r) => keyidIn(r.stdout));
    const v1 = `${dir}/a/trust.json`;
    const v2 = `${dir}/chain/2.json`;

    // A → B, signed now by A only: written, but incomplete.
    const rot = await task(
      ...["trust", "rotate", "--from", v1, "--out", v2, "--add-key", `${dir}/b/b.pub.pem`],
      ...["--remove-key", ka, "--expires", "365d", "--sign-with", `${dir}/a/a.pem`, "--json"],
    );
    assertEquals(rot.code, 0, rot.stderr);
    const r = JSON.parse(rot.stdout);
    assertEquals([r.version, r.threshold, r.keys.map((k: { keyid: string }) => k.keyid)], [
      2,
      1,
      [kb],
    ]);
    assertEquals([r.rotation.oldSigners, r.rotation.newSigners, r.rotation.complete], [
      [ka],
      [],
      false,
    ]);
    const now = new Date();
    const pinned = parseTrust(await Deno.readFile(v1));
    try {
      verifyTrustStep(pinned, await Deno.readFile(v2), now);
      throw new Error("accepted a rotation the new key did not sign");
    } catch (err) {
      if (!(err instanceof VerifyError)) throw err;
      assertMatch(err.message, /0 valid signature\(s\) of its own keys, 1 required/);
    }
    // Never overwritten.
    const again = await task(
      ...["trust", "rotate", "--from", v1, "--out", v2, "--expires", "30d"],
    );
    assertEquals(again.code, EXIT_STATUS.E_EXISTS, again.stderr);
    assertMatch(again.stderr, /hint: add a signature with 'deno task trust sign/);

    // B adds its signature; A's is kept.
    const signB = await task("trust", "sign", v2, "--prev", v1, "--key", `${dir}/b/b.pem`);
    assertEquals(signB.code, 0, signB.stderr);
    assertMatch(signB.stdout, /signed by 1 of 1 required key\(s\) of version 1 and 1 of 1/);
    assertMatch(signB.stdout, /complete: devices that trust the previous version/);
    const step = verifyTrustStep(pinned, await Deno.readFile(v2), now);
    assertEquals([step.trust.version, step.oldSigners, step.newSigners], [2, [ka], [kb]]);
    assert(step.trust.expiresAt!.getTime() > now.getTime() + 364 * 86_400_000);

    // The same key twice, a key of neither version: refused, nothing changed.
    const before = await Deno.readFile(v2);
    const twice = await task("trust", "sign", v2, "--prev", v1, "--key", `${dir}/b/b.pem`);
    assertEquals(twice.code, EXIT_STATUS.E_EXISTS, twice.stderr);
    const stranger = await task("trust", "sign", v2, "--prev", v1, "--key", `${dir}/c/c.pem`);
    assertEquals(stranger.code, EXIT_STATUS.E_KEY, stranger.stderr);
    assertMatch(stranger.stderr, /hint: only keys of the previous version or of the new one/);
    // A signed version is never edited in place (it would leave the chain).
    const edit = await task("trust", "add", v2, "--key", `${dir}/c/c.pub.pem`);
    assertEquals(edit.code, EXIT_STATUS.E_USAGE, edit.stderr);
    assertMatch(edit.stderr, /hint: make the next version instead: deno task trust rotate/);
    assertEquals(await Deno.readFile(v2), before);

    // The next rotation chains on: v2 → v3 with C, signed by B and C at once.
    const v3 = `${dir}/chain/3.json`;
    const rot3 = await task(
      ...["trust", "rotate", "--from", v2, "--out", v3, "--add-key", `${dir}/c/c.pub.pem`],
      ...["--threshold", "2", "--expires", "90d", "--sign-with", `${dir}/b/b.pem`],
      ...["--sign-with", `${dir}/c/c.pem`],
    );
    assertEquals(rot3.code, 0, rot3.stderr);
    assertMatch(rot3.stdout, /version 3, expires .*: 2 of 2 key\(s\) must sign/);
    const s3 = verifyTrustStep(step.trust, await Deno.readFile(v3), now);
    assertEquals(s3.trust.threshold, 2);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("trust rotate: bad input (no --expires, unknown keyid, a threshold above the keys) is refused with a hint and writes nothing", async () => {
  const dir = await tempDir("trustrotate-bad");
  try {
    const a = await task("keygen", "--out", `${dir}/a`, "--name", "a");
    assertEquals(a.code, 0, a.stderr);
    const v1 = `${dir}/a/trust.json`;
    const out = `${dir}/2.json`;
    for (
      const args of [
        ["--expires", "soon"],
        ["--expires", "30d", "--remove-key", `ed25519:${"0".repeat(64)}`],
        ["--expires", "30d", "--threshold", "2"],
        [],
      ]
    ) {
      const r = await task("trust", "rotate", "--from", v1, "--out", out, ...args);
      assertEquals(r.code, EXIT_STATUS.E_USAGE, `${args.join(" ")}: ${r.stderr}`);
      assertMatch(r.stderr, /hint: /);
      assert(!(await Deno.stat(out).then(() => true, () => false)), "nothing written");
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
