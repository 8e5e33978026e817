import { EXIT_STATUS } from "../core/mod.ts";
import { assert, assertEquals, assertRejects } from "../testing/mod.ts";
import { ImagesError } from "./errors.ts";
import {
  checkSecureBootKeys,
  faketimeDate,
  initrdVma,
  isSnakeoilCert,
  pinPeHeader,
  SNAKEOIL_CERT,
  ukiObjcopyArgs,
  verityCmdline,
} from "./_secureboot.ts";
import {
  SECURE_BOOT_EFIVAR,
  seedInit,
  seedVerityLines,
  TARGET_SEED_REFUSED,
  TARGET_SEED_VERIFIED,
  targetInit,
  targetSeedLines,
  VERITY_DM_NAME,
  VERITY_REFUSED_MARKER,
} from "./_files.ts";

const REPO = new URL("..", import.meta.url).pathname;
const SNAKEOIL = await Deno.readTextFile(SNAKEOIL_CERT).catch(() => "");

async function tmpDir(prefix: string): Promise<string> {
  await Deno.mkdir("/tmp/phase", { recursive: true });
  return await Deno.makeTempDir({ dir: "/tmp/phase", prefix });
}

Deno.test("TM-14 secure boot and lockdown: pinPeHeader fixes objcopy's TimeDateStamp and CheckSum", () => {
  const b = new Uint8Array(512);
  const dv = new DataView(b.buffer);
  dv.setUint16(0, 0x5a4d, true);
  dv.setUint32(0x3c, 0x80, true);
  dv.setUint32(0x80, 0x00004550, true);
  dv.setUint32(0x80 + 8, 0xdeadbeef, true);
  dv.setUint32(0x80 + 24 + 64, 0x1234, true);
  pinPeHeader(b, 1767225600);
  assertEquals(dv.getUint32(0x80 + 8, true), 1767225600);
  assertEquals(dv.getUint32(0x80 + 24 + 64, true), 0);
  let threw = false;
  try {
    pinPeHeader(new Uint8Array(512), 1);
  } catch (e) {
    threw = e instanceof ImagesError;
  }
  assert(threw, "a file that is not PE is refused");
});

Deno.test("TM-14 secure boot and lockdown: UKI sections at systemd-stub's addresses, .initrd after a large kernel", () => {
  assertEquals(initrdVma(14 * 1024 * 1024), 0x3000000);
  assertEquals(initrdVma(17 * 1024 * 1024 + 1), 0x2000000 + 18 * 1024 * 1024);
  const a = ukiObjcopyArgs(
    { osrel: "o", cmdline: "c", linux: "l", initrd: "i" },
    1000,
    "stub",
    "out",
  );
  assertEquals(a.slice(-2), ["stub", "out"]);
  for (const s of [".osrel=0x20000", ".cmdline=0x30000", ".linux=0x2000000", ".initrd=0x3000000"]) {
    assert(a.includes(s), s);
  }
  assertEquals(faketimeDate(1767225600), "2026-01-01 00:00:00");
  assertEquals(
    verityCmdline({ rootHash: "ab", salt: "cd", dataBlocks: 7 }),
    "phase.verity=ab phase.verity_salt=cd phase.verity_blocks=7",
  );
});

Deno.test("TM-14 secure boot and lockdown: the Secure Boot seed init opens the seed only through dm-verity and stops on a mismatch", async () => {
  const words = `console=ttyS0 phase.verity=${HASH} phase.verity_salt=cd01 phase.verity_blocks=7`;
  // The partition matches: mounted from the verity device, after one full read.
  const ok = await seedSeed({ cmdline: words });
  assertEquals(ok.calls.filter((c) => !c.startsWith("dmsetup mknodes")), [
    `dmsetup create --readonly ${VERITY_DM_NAME} --table 0 56 verity 1 /dev/vda2 /dev/vda2 4096 4096 7 7 sha256 ${HASH} cd01`,
    `dd if=/dev/mapper/${VERITY_DM_NAME} of=/dev/null bs=1M`,
    `mount -t squashfs -o ro /dev/mapper/${VERITY_DM_NAME} /usr/lib/phase`,
  ]);
  assert(ok.out.includes(`seed partition /dev/vda2 verified (root hash ${HASH})`), ok.out);
  // A block that does not match: the boot stops, nothing mounted.
  const bad = await seedSeed({ cmdline: words, ddStatus: 1 });
  assertEquals(seedMounts(bad.calls), [], bad.calls.join("\n"));
  assert(bad.out.includes(`FAIL: ${VERITY_REFUSED_MARKER} its signed root hash ${HASH}`), bad.out);
  assert(bad.calls.includes(`dmsetup remove ${VERITY_DM_NAME}`), bad.calls.join("\n"));
  // The table refused, or no root hash on the command line: stops, nothing mounted.
  const table = await seedSeed({ cmdline: words, dmsetupStatus: 1 });
  assertEquals(seedMounts(table.calls), [], table.calls.join("\n"));
  assert(table.out.includes("FAIL: ") && table.out.includes("cannot set up dm-verity"), table.out);
  const none = await seedSeed({ cmdline: "console=ttyS0 phase.verity_salt=cd01" });
  assertEquals(none.calls, []);
  assert(none.out.includes("no phase.verity root hash"), none.out);

  // The seed's /init runs these lines, then mounts "$seed".
  const sb = seedInit({ secureBoot: true });
  const lines = sb.indexOf(seedVerityLines());
  assert(lines > 0 && sb.indexOf(SEED_MOUNT) > lines, "verity lines before the mount");
  assert(sb.includes("phase-seed: secure boot: $sb; lockdown: $lockdown"));
  const plain = seedInit();
  assert(!plain.includes("dmsetup"), "ordinary images have no verity step");
  assert(plain.includes(SEED_MOUNT));
  assert(plain.includes("phase-seed: secure boot:"), "every seed prints the Secure Boot state");
});

Deno.test({
  name:
    "TM-14 secure boot and lockdown: the snakeoil test certificate is refused unless --unsafe-test-key",
  ignore: SNAKEOIL === "",
  async fn() {
    const dir = await tmpDir("sb-keys-test-");
    try {
      // A copy under another name is still the snakeoil certificate.
      await Deno.writeTextFile(`${dir}/db.crt`, SNAKEOIL);
      await Deno.writeTextFile(`${dir}/db.key`, "not read here");
      assert(isSnakeoilCert(SNAKEOIL, SNAKEOIL));
      const err = await assertRejects(
        () => checkSecureBootKeys({ key: `${dir}/db.key`, cert: `${dir}/db.crt` }),
        ImagesError,
      );
      assertEquals(err.code, "E_INPUT");
      assert(err.message.includes("snakeoil"), err.message);
      assertEquals(
        await checkSecureBootKeys({
          key: `${dir}/db.key`,
          cert: `${dir}/db.crt`,
          unsafeTestKey: true,
        }),
        true,
      );
      // The CLI refuses before building anything, with a hint.
      const r = await new Deno.Command("deno", {
        args: [
          "task",
          "-q",
          "images",
          "--out",
          `${dir}/out`,
          "--no-release",
          "--secure-boot",
          "--db-key",
          `${dir}/db.key`,
          "--db-cert",
          `${dir}/db.crt`,
        ],
        cwd: REPO,
        stdout: "piped",
        stderr: "piped",
      }).output();
      const text = new TextDecoder().decode(r.stderr);
      assertEquals(r.code, EXIT_STATUS.E_INPUT, text);
      assert(text.includes("refusing Debian's snakeoil test key"), text);
      assert(text.includes("hint: "), text);
      assert(
        ![...Deno.readDirSync(`${dir}/out`)].some((e) => e.name.endsWith(".img")),
        "nothing built",
      );
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("deno task images --secure-boot without --db-key/--db-cert is a usage error", async () => {
  const r = await new Deno.Command("deno", {
    args: ["task", "-q", "images", "--out", "/tmp/phase/never", "--secure-boot"],
    cwd: REPO,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(r.stderr);
  assertEquals(r.code, EXIT_STATUS.E_USAGE, text);
  assert(text.includes("--secure-boot needs --db-key"), text);
});

/**
 * Runs shell lines that open the seed partition under /bin/sh with
 * stand-ins for findpart, dmsetup, dd and mount (PATH), a command line file
 * and an efivars folder; returns the console and the stand-ins' calls.
 */
async function seedPartitionLines(
  lines: (dir: string) => string,
  o: {
    cmdline: string;
    secureBoot?: 0 | 1;
    /** dd's exit status through the verity device (1: a block does not match). */
    ddStatus?: number;
    /** dmsetup's exit status (1: the table is refused). */
    dmsetupStatus?: number;
  },
) {
  const dir = await tmpDir("seed-part-");
  try {
    await Deno.mkdir(`${dir}/bin`);
    await Deno.mkdir(`${dir}/efivars`);
    const stub = (name: string, status = 0) =>
      Deno.writeTextFile(
        `${dir}/bin/${name}`,
        `#!/bin/sh\necho "${name} $*" >> ${dir}/calls\nexit ${status}\n`,
        { mode: 0o755 },
      );
    await stub("dmsetup", o.dmsetupStatus ?? 0);
    await stub("mount");
    await stub("dd", o.ddStatus ?? 0);
    await Deno.writeTextFile(`${dir}/cmdline`, o.cmdline + "\n");
    if (o.secureBoot !== undefined) {
      await Deno.writeFile(
        `${dir}/efivars/${SECURE_BOOT_EFIVAR}`,
        new Uint8Array([6, 0, 0, 0, o.secureBoot]),
      );
    }
    const script = `findpart() { echo /dev/vda2; }\n${lines(dir)}\n`;
    const r = await new Deno.Command("/bin/sh", {
      args: ["-c", script],
      env: { PATH: `${dir}/bin:/usr/bin:/bin` },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const calls = await Deno.readTextFile(`${dir}/calls`).catch(() => "");
    return { out: new TextDecoder().decode(r.stdout), calls: calls.split("\n").filter(Boolean) };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** The target's lines (run after kexec), as {@link seedPartitionLines} runs them. */
const targetSeed = (o: Parameters<typeof seedPartitionLines>[1]) =>
  seedPartitionLines(
    (dir) => targetSeedLines({ cmdline: `${dir}/cmdline`, efivars: `${dir}/efivars` }),
    o,
  );

/**
 * The Secure Boot seed's lines, then its mount of `$seed`; `fail` ends the
 * script as the seed's own drops to its shell.
 */
const seedSeed = (o: Parameters<typeof seedPartitionLines>[1]) =>
  seedPartitionLines(
    (dir) =>
      `seed=/dev/vda2\nfail() { echo "FAIL: $1"; exit 3; }\n${
        seedVerityLines({ cmdline: `${dir}/cmdline`, errFile: `${dir}/verity.err` })
      }\n${SEED_MOUNT}`,
    o,
  );
/** The seed init's mount of the seed partition (checked to follow its verity lines). */
const SEED_MOUNT = 'mount -t squashfs -o ro "$seed" /usr/lib/phase';

const HASH = "ab".repeat(32);
const VERITY_WORDS =
  `console=ttyS0 phase.seed_verity=${HASH} phase.seed_verity_salt=cd01 phase.seed_verity_blocks=7 phase.mode=internet`;
const seedMounts = (calls: readonly string[]) =>
  calls.filter((c) => c.startsWith("mount -t squashfs"));

Deno.test("TM-14 secure boot and lockdown: the target opens the seed partition through dm-verity with the seed's root hash, and refuses it on a mismatch or without one under Secure Boot", async () => {
  // The seed's words on the command line, the partition matches: mounted from the verity device.
  const ok = await targetSeed({ cmdline: VERITY_WORDS, secureBoot: 1 });
  assert(
    ok.calls.includes(
      `dmsetup create --readonly phase-seed-target --table 0 56 verity 1 /dev/vda2 /dev/vda2 4096 4096 7 7 sha256 ${HASH} cd01`,
    ),
    ok.calls.join("\n"),
  );
  assert(ok.calls.some((c) => c.startsWith("dd if=/dev/mapper/phase-seed-target")), "read in full");
  assertEquals(seedMounts(ok.calls), [
    "mount -t squashfs -o ro /dev/mapper/phase-seed-target /usr/lib/phase",
  ]);
  assert(ok.out.includes(`${TARGET_SEED_VERIFIED} (root hash ${HASH})`), ok.out);

  // A block that no longer matches (the medium changed after the seed read it): nothing mounted.
  const bad = await targetSeed({ cmdline: VERITY_WORDS, secureBoot: 1, ddStatus: 1 });
  assertEquals(seedMounts(bad.calls), [], bad.calls.join("\n"));
  assert(bad.out.includes(TARGET_SEED_REFUSED), bad.out);
  assert(bad.calls.includes("dmsetup remove phase-seed-target"), bad.calls.join("\n"));

  // Secure Boot on but no root hash handed over: refused, never the raw partition.
  const none = await targetSeed({ cmdline: "console=ttyS0 phase.mode=internet", secureBoot: 1 });
  assertEquals(seedMounts(none.calls), [], none.calls.join("\n"));
  assert(none.out.includes(`${TARGET_SEED_REFUSED}: Secure Boot is on`), none.out);

  // No Secure Boot (the seed verified nothing either): the partition as it is.
  for (const sb of [0, undefined] as const) {
    const plain = await targetSeed({
      cmdline: "console=ttyS0 phase.mode=internet",
      secureBoot: sb,
    });
    assertEquals(seedMounts(plain.calls), ["mount -t squashfs -o ro /dev/vda2 /usr/lib/phase"]);
    assert(!plain.calls.some((c) => c.startsWith("dmsetup")), plain.calls.join("\n"));
  }
  // The target's /init runs these lines before the post-boot job.
  const init = targetInit("2026.1.1");
  assert(init.includes(targetSeedLines()));
  assert(init.indexOf(targetSeedLines()) < init.indexOf("phase-wasm postboot"));
});
