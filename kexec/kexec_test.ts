import { EXIT_STATUS } from "../core/mod.ts";
import { assert, assertEquals, assertRejects, tempDir } from "../testing/mod.ts";
import { keygen, loadSigningKey, signRelease } from "../sign/mod.ts";
import { parseTrust, VerifyError, verifyManifest } from "../verify/mod.ts";
import { KexecError } from "./errors.ts";
import { decodeKexecLoadResult } from "./result.ts";
import {
  loadArgv,
  loadKernel,
  parseLockdown,
  parseSeedVerity,
  type Runner,
  stageArtifacts,
  targetCmdline,
} from "./kexec.ts";

/** A real signed release with small fake kernel/initramfs bytes. */
async function release(dir: string) {
  const keys = await keygen(`${dir}/keys`, "release");
  const rel = `${dir}/rel/stable/amd64`;
  await Deno.mkdir(rel, { recursive: true });
  await Deno.writeFile(`${rel}/kernel`, new TextEncoder().encode("MZ kernel bytes ".repeat(1000)));
  await Deno.writeFile(
    `${rel}/initramfs`,
    new TextEncoder().encode("070701 initramfs ".repeat(500)),
  );
  const key = await loadSigningKey(keys.paths.privateKey);
  await signRelease({
    root: `${dir}/rel`,
    channel: "stable",
    arch: "amd64",
    version: "2026.11.22",
    expiresInMs: 86_400_000,
    now: new Date(),
    cmdline: "console=ttyS0 phase.mode=local quiet",
  }, key);
  const trust = parseTrust(await Deno.readFile(keys.paths.trust));
  const verified = verifyManifest(await Deno.readFile(`${rel}/manifest.json`), trust, {
    channel: "stable",
    arch: "amd64",
  });
  return { rel, verified, trustPath: keys.paths.trust };
}

function recorder(code = 0): { run: Runner; calls: string[][] } {
  const calls: string[][] = [];
  return {
    calls,
    run: (argv) => {
      calls.push([...argv]);
      return Promise.resolve({
        code,
        stderr: code ? "kexec_file_load failed: Operation not permitted" : "",
      });
    },
  };
}

Deno.test("stageArtifacts copies into a private 0700 dir with 0400 files and re-checks them", async () => {
  const dir = await tempDir();
  try {
    const { rel, verified } = await release(dir);
    const staged = await stageArtifacts(verified, {
      kernel: `${rel}/kernel`,
      initramfs: `${rel}/initramfs`,
    }, `${dir}/run`);
    assertEquals((await Deno.stat(staged.dir)).mode! & 0o777, 0o700);
    assertEquals((await Deno.stat(staged.kernel)).mode! & 0o777, 0o400);
    assertEquals(await Deno.readFile(staged.kernel), await Deno.readFile(`${rel}/kernel`));
    assertEquals(staged.version, "2026.11.22");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("TM-11 TOCTOU verify-to-kexec: a kernel swapped after verification is refused before load", async () => {
  const dir = await tempDir();
  try {
    const { rel, verified } = await release(dir);
    // Verification passed above; now the fetcher's file is replaced.
    await Deno.writeFile(`${rel}/kernel`, new TextEncoder().encode("MZ evil kernel ".repeat(1067)));
    const { run, calls } = recorder();
    const err = await assertRejects(
      async () => {
        const staged = await stageArtifacts(verified, {
          kernel: `${rel}/kernel`,
          initramfs: `${rel}/initramfs`,
        }, `${dir}/run`);
        await loadKernel(staged, { mode: "internet", kexec: "/sbin/kexec", run });
      },
      VerifyError,
    );
    assert(err.code === "E_DIGEST" || err.code === "E_SIZE", err.code);
    assertEquals(calls.length, 0, "kexec must never run");
    // Nothing is left behind in the private directory.
    assertEquals([...Deno.readDirSync(`${dir}/run`)].length, 0);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("TM-11 TOCTOU verify-to-kexec: a grown (endless) artifact is cut off and refused", async () => {
  const dir = await tempDir();
  try {
    const { rel, verified } = await release(dir);
    const f = await Deno.open(`${rel}/initramfs`, { append: true });
    await f.write(new Uint8Array(5 * 1024 * 1024));
    f.close();
    const err = await assertRejects(
      () =>
        stageArtifacts(
          verified,
          { kernel: `${rel}/kernel`, initramfs: `${rel}/initramfs` },
          `${dir}/run`,
        ),
      VerifyError,
    );
    assertEquals(err.code, "E_SIZE");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("stageArtifacts accepts only a Verified value", async () => {
  const dir = await tempDir();
  try {
    const { rel, verified } = await release(dir);
    const forged = { ...verified };
    await assertRejects(
      () =>
        stageArtifacts(
          forged,
          { kernel: `${rel}/kernel`, initramfs: `${rel}/initramfs` },
          `${dir}/run`,
        ),
      VerifyError,
      "not produced by the verifier",
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("load argv: kexec -s first, then -l; the command line carries phase.mode", async () => {
  const dir = await tempDir();
  try {
    const { rel, verified } = await release(dir);
    const staged = await stageArtifacts(verified, {
      kernel: `${rel}/kernel`,
      initramfs: `${rel}/initramfs`,
    }, `${dir}/run`);
    const dry = await loadKernel(staged, { mode: "private", kexec: "/sbin/kexec", dryRun: true });
    assertEquals(dry.argv, [
      "/sbin/kexec",
      "-s",
      "-l",
      staged.kernel,
      `--initrd=${staged.initramfs}`,
      "--command-line=console=ttyS0 quiet phase.mode=private",
    ]);
    const { run, calls } = recorder(1);
    const err = await assertRejects(
      () => loadKernel(staged, { mode: "internet", kexec: "/sbin/kexec", run }),
      KexecError,
    );
    assertEquals(err.code, "E_LOAD");
    assertEquals(calls.map((c) => c[1]), ["-s", "-l"]);
    assertEquals(
      loadArgv(staged, {
        method: "classic",
        mode: "local",
        kexec: "/sbin/kexec",
        dtb: "/run/x/dtb",
      }).at(-1),
      "--dtb=/run/x/dtb",
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("targetCmdline refuses control characters and unknown modes", () => {
  assertEquals(targetCmdline("a  b", "local"), "a b phase.mode=local");
  let caught = false;
  try {
    targetCmdline("a\nb", "local");
  } catch (e) {
    caught = e instanceof KexecError;
  }
  assert(caught);
  caught = false;
  try {
    targetCmdline("a", "evil" as "local");
  } catch (e) {
    caught = e instanceof KexecError;
  }
  assert(caught);
});

Deno.test("TM-14 secure boot and lockdown: the seed's dm-verity parameters go on the target's command line, checked; the manifest cannot set them", () => {
  const v = parseSeedVerity(`${"ab".repeat(32)}:cd01:7`);
  assertEquals(v, { rootHash: "ab".repeat(32), salt: "cd01", blocks: 7 });
  assertEquals(
    targetCmdline("console=ttyS0 phase.seed_verity=00 phase.seed_verity_blocks=1", "internet", v),
    `console=ttyS0 phase.mode=internet phase.seed_verity=${
      "ab".repeat(32)
    } phase.seed_verity_salt=cd01 phase.seed_verity_blocks=7`,
  );
  // Without them, a manifest's own words are dropped too: only the seed names its hash.
  assertEquals(
    targetCmdline("console=ttyS0 phase.seed_verity=00 phase.seed_verity_salt=11", "local"),
    "console=ttyS0 phase.mode=local",
  );
  for (
    const bad of [
      `${"ab".repeat(32)}:cd01`,
      `${"AB".repeat(32)}:cd01:7`,
      `${"ab".repeat(31)}:cd01:7`,
      `${"ab".repeat(32)}:cd0:7`,
      `${"ab".repeat(32)}:cd01:0`,
      `${"ab".repeat(32)}:cd01:7 evil=1`,
      `${"ab".repeat(32)}:cd01:99999999999`,
    ]
  ) {
    let caught = false;
    try {
      parseSeedVerity(bad);
    } catch (e) {
      caught = e instanceof KexecError && e.code === "E_STAGE";
    }
    assert(caught, bad);
  }
});

/** `deno task kexec load ... --dry-run` on a release dir, under the kexec set. */
async function kexecLoadDryRun(
  rel: string,
  trustPath: string,
  runDir: string,
  extra: string[] = [],
) {
  const out = await new Deno.Command("deno", {
    args: [
      ...[
        "task",
        "-q",
        "kexec",
        "load",
        "--manifest",
        `${rel}/manifest.json`,
        "--trust",
        trustPath,
      ],
      ...["--artifact", `kernel=${rel}/kernel`, "--artifact", `initramfs=${rel}/initramfs`],
      ...extra,
      ...["--dir", runDir, "--dry-run"],
    ],
    cwd: new URL("..", import.meta.url).pathname,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

Deno.test("phase-kexec load --dry-run under its own permission set re-verifies and prints the argv", async () => {
  const dir = await tempDir();
  try {
    const { rel, trustPath } = await release(dir);
    const out = await kexecLoadDryRun(rel, trustPath, `${dir}/run`, [
      "--channel",
      "stable",
      "--arch",
      "amd64",
    ]);
    const text = out.stdout + out.stderr;
    assertEquals(out.code, 0, out.stderr);
    assert(text.includes("digests re-checked"), text);
    assert(text.includes('"-s"') && text.includes("phase.mode=internet"), text);
    // The result line the boot orchestrator reads, through the one decoder.
    const loaded = decodeKexecLoadResult(out.stdout);
    assertEquals([loaded.channel, loaded.arch, loaded.method, loaded.dryRun], [
      "stable",
      "amd64",
      "file",
      true,
    ]);
    // TM-14: a Secure Boot seed's verity parameters reach the target's command line.
    const sb = await kexecLoadDryRun(rel, trustPath, `${dir}/run`, [
      "--seed-verity",
      `${"ab".repeat(32)}:cd01:7`,
    ]);
    assertEquals(sb.code, 0, sb.stderr);
    assert(
      decodeKexecLoadResult(sb.stdout).argv.at(-1)!.endsWith(
        `phase.mode=internet phase.seed_verity=${
          "ab".repeat(32)
        } phase.seed_verity_salt=cd01 phase.seed_verity_blocks=7`,
      ),
      sb.stdout,
    );
    const junk = await kexecLoadDryRun(rel, trustPath, `${dir}/run`, ["--seed-verity", "x:y:z"]);
    assertEquals(junk.code, EXIT_STATUS.E_STAGE, junk.stderr);
    // A tampered initramfs: exit 9 (E_DIGEST), nothing printed as loaded.
    await Deno.writeFile(
      `${rel}/initramfs`,
      new TextEncoder().encode("070701 evil!!!!! ".repeat(500)),
    );
    const bad = await kexecLoadDryRun(rel, trustPath, `${dir}/run`);
    assertEquals(bad.code, EXIT_STATUS.E_DIGEST);
    assert(bad.stderr.includes("E_DIGEST") || bad.stderr.includes("hashes to"));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("TM-02 rollback: phase-kexec load --dry-run applies the floor under an arch alias and without --channel/--arch", async () => {
  const dir = await tempDir();
  try {
    const { rel, trustPath } = await release(dir);
    const state = `${dir}/state`;
    await Deno.mkdir(state);
    // The release is 2026.11.22; the floor is recorded under the canonical arch.
    await Deno.writeTextFile(
      `${state}/floor.json`,
      JSON.stringify({ "stable/amd64": "2027.01.01" }),
    );
    for (
      const flags of [
        ["--channel", "stable", "--arch", "x86_64"],
        ["--channel", "stable", "--arch", "amd64"],
        [],
      ]
    ) {
      const r = await kexecLoadDryRun(rel, trustPath, `${dir}/run`, [...flags, "--state", state]);
      assertEquals(r.code, EXIT_STATUS.E_ROLLBACK, `${flags.join(" ")}: ${r.stderr}`);
      assert(r.stderr.includes("below the accepted floor 2027.01.01"), r.stderr);
      assert(!(r.stdout + r.stderr).includes("staged"), r.stderr);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("TM-14 secure boot and lockdown: a refusal under lockdown is reported as the kernel's signature check, with both attempts", async () => {
  const dir = await tempDir();
  try {
    const { rel, verified } = await release(dir);
    const staged = await stageArtifacts(verified, {
      kernel: `${rel}/kernel`,
      initramfs: `${rel}/initramfs`,
    }, `${dir}/run`);
    const run: Runner = (argv) =>
      Promise.resolve({
        code: 255,
        stderr: argv[1] === "-s"
          ? "kexec_file_load failed: Operation not permitted"
          : "kexec_load failed: Operation not permitted",
      });
    const err = await assertRejects(
      () =>
        loadKernel(staged, { mode: "internet", kexec: "/sbin/kexec", run, lockdown: "integrity" }),
      KexecError,
    );
    assertEquals(err.code, "E_LOAD");
    assert(err.message.includes("refused 2026.11.22 under lockdown (integrity)"), err.message);
    assert(err.message.includes("not signed by a key this kernel trusts"), err.message);
    assert(err.message.includes("'-s' exit 255: kexec_file_load failed"), err.message);
    assert(err.hint?.includes("sbsign"), err.hint);
    // Without lockdown the same failure is not blamed on signatures.
    const plain = await assertRejects(
      () => loadKernel(staged, { mode: "internet", kexec: "/sbin/kexec", run, lockdown: "none" }),
      KexecError,
    );
    assert(!plain.message.includes("lockdown"), plain.message);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("TM-14 secure boot and lockdown: parseLockdown reads the bracketed mode", () => {
  assertEquals(parseLockdown("none [integrity] confidentiality\n"), "integrity");
  assertEquals(parseLockdown("[none] integrity confidentiality\n"), "none");
  assertEquals(parseLockdown("unknown\n"), undefined);
});
