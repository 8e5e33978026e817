/** Bad input to the verify entrypoint: clear errors, distinct exit codes. */
import { EXIT_STATUS } from "../core/mod.ts";
import { runVerify } from "./cli.ts";
import { deepStrictEqual as assertEquals, match as assertMatch } from "node:assert/strict";

const REPO = new URL("..", import.meta.url).pathname;
const VEC = new URL("../../shared/vectors/", import.meta.url).pathname;
const NOW = ["--now", "2026-11-22T00:00:00Z"];

async function verify(...args: string[]) {
  const out = await new Deno.Command("deno", {
    args: ["task", "-q", "verify", ...args],
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

/**
 * Runs `fn` with the good vector manifest and its trust file staged in a
 * scratch dir the verify set can read (m.json, t.json), removed after.
 */
async function withStaged(prefix: string, fn: (dir: string) => Promise<void>): Promise<void> {
  await Deno.mkdir("/tmp/phase", { recursive: true });
  const dir = await Deno.makeTempDir({ dir: "/tmp/phase", prefix });
  try {
    await Deno.copyFile(`${VEC}manifests/good.json`, `${dir}/m.json`);
    await Deno.copyFile(`${VEC}trust-a.json`, `${dir}/t.json`);
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** `--manifest <dir>/m.json --trust <dir>/t.json` */
const staged = (dir: string) => ["--manifest", `${dir}/m.json`, "--trust", `${dir}/t.json`];

Deno.test("verify CLI: usage errors, unreadable files, invalid trust and reads outside the set", async () => {
  await withStaged("vcli-", async (dir) => {
    const usage = await verify("--manifest", `${dir}/m.json`);
    assertEquals(usage.code, EXIT_STATUS.E_USAGE);
    assertMatch(usage.stderr, /^phase-verify: error: missing --trust\nhint: deno task verify/);
    assertEquals((await verify(...staged(dir), "--bogus")).code, EXIT_STATUS.E_USAGE);
    assertEquals((await verify(...staged(dir), "--now", "tomorrow")).code, EXIT_STATUS.E_USAGE);
    const missing = await verify(
      "--manifest",
      `${dir}/nope.json`,
      "--trust",
      `${dir}/t.json`,
      "--json",
    );
    assertEquals(missing.code, EXIT_STATUS.E_IO);
    assertEquals(JSON.parse(missing.stdout).code, "E_IO");
    const outside = await verify("--manifest", "/etc/hostname", "--trust", `${dir}/t.json`);
    assertEquals(outside.code, EXIT_STATUS.E_IO);
    assertMatch(outside.stderr, /outside the 'verify' permission set/);
    await Deno.writeTextFile(
      `${dir}/bad-trust.json`,
      '{"threshold":1,"keys":{"ed25519:00":{"public":"x"}}}',
    );
    const trust = await verify(
      "--manifest",
      `${dir}/m.json`,
      "--trust",
      `${dir}/bad-trust.json`,
      "--json",
    );
    assertEquals(trust.code, EXIT_STATUS.E_TRUST);
    assertEquals(JSON.parse(trust.stdout).code, "E_TRUST");
    const art = await verify(...staged(dir), ...NOW, "--artifact", "firmware=/tmp/phase/x");
    assertEquals(art.code, EXIT_STATUS.E_USAGE);
    assertMatch(
      art.stderr,
      /manifest has no artifact 'firmware'\nhint: it lists: kernel, initramfs/,
    );
    // stdout is a pipe here: the result is JSON without --json (cli/output.ts).
    const ok = await verify(...staged(dir), ...NOW);
    assertEquals(ok.code, 0);
    const result = JSON.parse(ok.stdout);
    assertEquals([result.ok, result.channel, result.arch, result.version], [
      true,
      "stable",
      "amd64",
      "2026.11.20",
    ]);
    assertMatch(result.signers[0], /^ed25519:1adc/);
  });
});

Deno.test("TM-02 rollback: the verify entrypoint refuses a release below the floor in --state", async () => {
  await withStaged("vfloor-", async (dir) => {
    await Deno.writeTextFile(`${dir}/floor.json`, JSON.stringify({ "stable/amd64": "2026.11.21" }));
    const r = await verify(
      ...staged(dir),
      ...NOW,
      ...["--channel", "stable", "--arch", "amd64", "--state", dir, "--json"],
    );
    assertEquals(r.code, EXIT_STATUS.E_ROLLBACK);
    assertEquals(JSON.parse(r.stdout).code, "E_ROLLBACK");
  });
});

Deno.test("TM-02 rollback: the floor applies under an arch alias (x86_64 finds stable/amd64)", async () => {
  await withStaged("valias-", async (dir) => {
    await Deno.writeTextFile(`${dir}/floor.json`, JSON.stringify({ "stable/amd64": "2027.01.01" }));
    for (const arch of ["x86_64", "amd64"]) {
      const r = await verify(
        ...staged(dir),
        ...NOW,
        ...["--channel", "stable", "--arch", arch, "--state", dir, "--json"],
      );
      assertEquals(r.code, EXIT_STATUS.E_ROLLBACK, `--arch ${arch}: ${r.stdout}${r.stderr}`);
      assertMatch(JSON.parse(r.stdout).message, /below the accepted floor 2027\.01\.01/);
    }
  });
});

Deno.test("TM-02 rollback: with --state and no --channel/--arch the floor of the manifest's channel/arch applies", async () => {
  await withStaged("vnoflags-", async (dir) => {
    await Deno.writeTextFile(`${dir}/floor.json`, JSON.stringify({ "stable/amd64": "2026.11.21" }));
    const r = await verify(...staged(dir), ...NOW, "--state", dir, "--json");
    assertEquals(r.code, EXIT_STATUS.E_ROLLBACK, r.stdout + r.stderr);
    assertEquals(JSON.parse(r.stdout).code, "E_ROLLBACK");
    // A floor at or below the release still accepts it.
    await Deno.writeTextFile(`${dir}/floor.json`, JSON.stringify({ "stable/amd64": "2026.11.20" }));
    assertEquals((await verify(...staged(dir), ...NOW, "--state", dir)).code, 0);
  });
});

Deno.test("TM-04 mix-and-match: --artifact names from input are not Object.prototype members, a directory is a clear E_IO", async () => {
  await withStaged("vproto-", async (dir) => {
    await Deno.mkdir(`${dir}/kdir`);
    const isDir = await verify(...staged(dir), ...NOW, "--artifact", `kernel=${dir}/kdir`);
    assertEquals(isDir.code, EXIT_STATUS.E_IO, isDir.stderr);
    assertMatch(isDir.stderr, /artifact 'kernel' at .*kdir is not a regular file\nhint: /);
    for (const name of ["constructor", "toString", "hasOwnProperty"]) {
      const r = await verify(...staged(dir), ...NOW, "--artifact", `${name}=${dir}/t.json`);
      assertEquals(r.code, EXIT_STATUS.E_USAGE, `${name}: ${r.stderr}`);
      assertMatch(
        r.stderr,
        new RegExp(`manifest has no artifact '${name}'\nhint: it lists: kernel, initramfs`),
      );
    }
    const twice = await verify(
      ...staged(dir),
      ...NOW,
      ...["--artifact", `kernel=${dir}/t.json`, "--artifact", `kernel=${dir}/m.json`],
    );
    assertEquals(twice.code, EXIT_STATUS.E_USAGE, twice.stderr);
  });
});

Deno.test("verify CLI: a terminal gets a human line, a pipe or --json gets JSON (one rule, cli/output.ts)", async () => {
  await withStaged("vtty-", async (dir) => {
    const run = async (tty: boolean, ...extra: string[]) => {
      const lines: string[] = [];
      assertEquals(
        await runVerify([...staged(dir), ...NOW, ...extra], (l) => lines.push(l), () => tty),
        0,
      );
      return lines.join("\n");
    };
    assertMatch(
      await run(true),
      /^phase-verify: ok: stable\/amd64 2026\.11\.20, signed by ed25519:1adc/,
    );
    assertEquals(JSON.parse(await run(false)).version, "2026.11.20");
    assertEquals(JSON.parse(await run(true, "--json")).version, "2026.11.20");
  });
});
