/**
 * Issue 11: a second key beside the first (`keygen --add-to-trust`) and
 * `deno task trust` (show, init, add, remove, threshold), as subprocesses
 * under the `sign` set.
 */
import { EXIT_STATUS } from "../core/mod.ts";
import { assert, assertEquals, assertMatch, tempDir } from "../testing/mod.ts";
import { parseTrust } from "../verify/mod.ts";

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

/** The keyid keygen printed: its JSON result on a pipe (cli/output.ts), or the `keyid` line on a terminal. */
const keyidIn = (stdout: string): string =>
  stdout.trimStart().startsWith("{")
    ? JSON.parse(stdout.trim().split("\n").at(-1)!).keyid
    : /keyid (ed25519:[0-9a-f]{64})/.exec(stdout)![1];
const readTrust = async (path: string) => parseTrust(await Deno.readFile(path));

Deno.test("keygen: a second key beside the first leaves the trust file unchanged, or joins it with --add-to-trust", async () => {
  const dir = await tempDir("keygen2");
  try {
    const first = await task("keygen", "--out", `${dir}/keys`);
    assertEquals(first.code, 0, first.stderr);
    const trustPath = `${dir}/keys/trust.json`;
    const before = await Deno.readFile(trustPath);

    const other = await task("keygen", "--out", `${dir}/keys`, "--name", "other");
    assertEquals(other.code, 0, other.stderr);
    assertEquals(JSON.parse(other.stdout).trust_file, "kept");
    assertMatch(other.stderr, /trust\.json was left unchanged and does not trust ed25519:/);
    assertMatch(other.stderr, /deno task trust add .*trust\.json --key .*other\.pub\.pem/);
    assertEquals(await Deno.readFile(trustPath), before);
    assertEquals((await Deno.stat(`${dir}/keys/other.pem`)).mode! & 0o777, 0o600);

    const third = await task("keygen", "--out", `${dir}/keys`, "--name", "third", "--add-to-trust");
    assertEquals(third.code, 0, third.stderr);
    const trust = await readTrust(trustPath);
    assertEquals(trust.threshold, 1);
    assertEquals(
      [...trust.keys.keys()].sort(),
      [keyidIn(first.stdout), keyidIn(third.stdout)].sort(),
    );
    assertEquals(trust.keys.get(keyidIn(third.stdout))!.name, "third");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("trust: init, add, threshold, remove and show make a k-of-n trust file the verifier accepts", async () => {
  const dir = await tempDir("trustcli");
  try {
    const a = await task("keygen", "--out", `${dir}/a`, "--name", "a");
    const b = await task("keygen", "--out", `${dir}/b`, "--name", "b");
    const c = await task("keygen", "--out", `${dir}/c`, "--name", "c");
    const [ka, kb, kc] = [a, b, c].map((r) => keyidIn(r.stdout));
    const file = `${dir}/trust/two.json`;

    const init = await task(
      ...["trust", "init", "--out", file, "--key", `${dir}/a/a.pub.pem`],
      ...["--key", `${dir}/b/b.pub.pem`, "--threshold", "2", "--json"],
    );
    assertEquals(init.code, 0, init.stderr);
    assertEquals(JSON.parse(init.stdout).threshold, 2);
    assertEquals((await readTrust(file)).keys.size, 2);
    // Never overwritten.
    const again = await task(
      ...["trust", "init", "--out", file, "--key", `${dir}/c/c.pub.pem`, "--threshold", "1"],
    );
    assertEquals(again.code, EXIT_STATUS.E_EXISTS);

    // Thresholds outside 1..n are refused and change nothing.
    const before = await Deno.readFile(file);
    for (const k of ["3", "0"]) {
      const r = await task("trust", "threshold", file, k);
      assertEquals(r.code, EXIT_STATUS.E_USAGE, `threshold ${k}: ${r.stderr}`);
      assertMatch(r.stderr, /hint: /);
    }
    assertEquals(await Deno.readFile(file), before);
    // A private key is not a trust entry.
    const priv = await task("trust", "add", file, "--key", `${dir}/c/c.pem`);
    assertEquals(priv.code, EXIT_STATUS.E_KEY);
    assertMatch(priv.stderr, /is a private key\nhint: give its public half/);

    const add = await task("trust", "add", file, "--key", `${dir}/c/c.pub.pem`, "--name", "cee");
    assertEquals(add.code, 0, add.stderr);
    assertMatch(add.stdout, /2 of 3 key\(s\) must sign/);
    assertMatch(add.stdout, new RegExp(`${kc}  cee`));
    const dup = await task("trust", "add", file, "--key", `${dir}/c/c.pub.pem`);
    assertEquals(dup.code, EXIT_STATUS.E_EXISTS);

    const three = await task("trust", "threshold", file, "3");
    assertEquals(three.code, 0, three.stderr);
    // Removing a key below the threshold is refused with the way out.
    const tooFew = await task("trust", "remove", file, "--keyid", ka);
    assertEquals(tooFew.code, EXIT_STATUS.E_USAGE);
    assertMatch(tooFew.stderr, /hint: lower the threshold first: deno task trust threshold .* 2/);
    assertEquals((await task("trust", "threshold", file, "2")).code, 0);
    const removed = await task("trust", "remove", file, "--keyid", ka, "--json");
    assertEquals(removed.code, 0, removed.stderr);
    assertEquals(
      JSON.parse(removed.stdout).keys.map((k: { keyid: string }) => k.keyid).sort(),
      [
        kb,
        kc,
      ].sort(),
    );

    const show = await task("trust", "show", file, "--json");
    assertEquals(show.code, 0, show.stderr);
    const doc = JSON.parse(show.stdout);
    assertEquals([doc.path, doc.threshold, doc.keys.length], [file, 2, 2]);
    const trust = await readTrust(file);
    assertEquals([trust.threshold, trust.keys.has(kb), trust.keys.has(kc)], [2, true, true]);
    // No temp file left beside it (atomic writes).
    const names = (await Array.fromAsync(Deno.readDir(`${dir}/trust`))).map((e) => e.name);
    assertEquals(names, ["two.json"]);

    const unknown = await task("trust", "rewind", file);
    assertEquals(unknown.code, EXIT_STATUS.E_USAGE);
    assert(unknown.stderr.includes("commands: show, init, add, remove, rotate, sign, threshold"));
    const help = await task("trust", "--help");
    assertEquals(help.code, 0);
    assert(help.stdout.includes("examples:\n  deno task trust add"), help.stdout);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
