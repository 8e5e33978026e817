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
import { seedInit, VERITY_DM_NAME, VERITY_REFUSED_MARKER } from "./_files.ts";

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

Deno.test("TM-14 secure boot and lockdown: the Secure Boot seed init opens the seed only through dm-verity and stops on a mismatch", () => {
  const sb = seedInit({ secureBoot: true });
  assert(sb.includes(`dmsetup create --readonly ${VERITY_DM_NAME}`), sb);
  assert(sb.includes(`fail "${VERITY_REFUSED_MARKER}`), sb);
  assert(sb.includes("dd if=$verified of=/dev/null"), "read in full before mounting");
  // The squashfs is mounted from the verity device, never from the raw partition.
  const mount = sb.indexOf('mount -t squashfs -o ro "$seed"');
  assert(mount > sb.indexOf("seed=$verified"), "mounted after seed=$verified");
  assert(sb.includes("phase-seed: secure boot: $sb; lockdown: $lockdown"));
  const plain = seedInit();
  assert(!plain.includes("dmsetup"), "ordinary images have no verity step");
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
