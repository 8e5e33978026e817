/**
 * The target's self-hosting block (images/_selfhost.ts) run under busybox
 * sh with the system commands stubbed: what it refuses before anything
 * runs. The whole loop runs in QEMU in images/vm_plan_test.ts
 * (`[vm self-host]` and its variants).
 */
import { assert, assertEquals } from "../testing/mod.ts";
import { PART_NAMES } from "./_files.ts";
import {
  rootfsCmdline,
  SELFHOST_FROM_SEED,
  SELFHOST_PRIVATE,
  SELFHOST_ROOTFS_REFUSED,
  SELFHOST_SERVING,
  selfHostBlock,
} from "./_selfhost.ts";
import { TARGET_MARKER, targetInit } from "./_files.ts";
import { createHash } from "node:crypto";

/** Bound of one run of the block under busybox sh, in ms. */
const SH_TIMEOUT_MS = 20_000;

/**
 * Runs the block with `mode`, a command line and a cache dir; every system
 * command is logged. `seed`: the seed partition's device (a file here).
 */
async function runBlock(
  dir: string,
  mode: string,
  cmdline: string,
  seed = "",
): Promise<string> {
  await Deno.writeTextFile(`${dir}/cmdline`, cmdline);
  await Deno.mkdir(`${dir}/run/phase`, { recursive: true });
  const stubs = ["mount", "umount", "udhcpc", "ip"].map((c) =>
    `${c}() { echo "CALL ${c} $*"; return 0; }`
  ).join("\n");
  const block = selfHostBlock()
    .replaceAll("/proc/cmdline", `${dir}/cmdline`)
    .replaceAll("/var/cache/phase", `${dir}/cache`)
    .replaceAll("/run/phase", `${dir}/run/phase`)
    .replaceAll("/usr/lib/phase/bin/phase-serve", `echo CALL phase-serve`)
    .replaceAll("> /dev/console 2>&1 &", "&");
  const script = `${stubs}
findpart() { [ "$1" = ${PART_NAMES.cache} ] && echo /dev/vdz3; }
mode=${mode}
seed='${seed}'
${block}`;
  const r = await new Deno.Command("busybox", {
    args: ["sh", "-c", script],
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(SH_TIMEOUT_MS),
  }).output();
  return new TextDecoder().decode(r.stdout) + new TextDecoder().decode(r.stderr);
}

Deno.test("TM-13 private-mode privacy: the target's self-host block serves and advertises nothing after a private boot (no mount, no DHCP, no provider)", async () => {
  const dir = await Deno.makeTempDir({ dir: "/tmp/phase", prefix: "selfhost-sh-" });
  try {
    const out = await runBlock(dir, "private", `console=ttyS0 ${rootfsCmdline("0".repeat(64))}`);
    assert(out.includes(SELFHOST_PRIVATE), out);
    assert(!out.includes("CALL"), out);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("TM-01 tampering: the target's self-host block refuses a cached rootfs that does not hash to the signed phase.rootfs, and runs nothing from it", async () => {
  const dir = await Deno.makeTempDir({ dir: "/tmp/phase", prefix: "selfhost-sh-" });
  try {
    const good = new TextEncoder().encode("a squashfs, in spirit");
    const hex = createHash("sha256").update(good).digest("hex");
    await Deno.mkdir(`${dir}/cache/cas/sha256`, { recursive: true });
    const bad = good.slice();
    bad[3] ^= 1;
    await Deno.writeFile(`${dir}/cache/cas/sha256/${hex}`, bad);
    const out = await runBlock(dir, "internet", `console=ttyS0 ${rootfsCmdline(hex)}`);
    assert(out.includes(SELFHOST_ROOTFS_REFUSED), out);
    // The cache was mounted read-only; the rootfs was never mounted; no provider.
    assert(/CALL mount -t ext4 -o ro,/.test(out), out);
    assert(!out.includes("-t squashfs"), out);
    assert(!out.includes("phase-serve"), out);
    // The good bytes pass: mounted, and the provider starts from the cache (read-only).
    await Deno.writeFile(`${dir}/cache/cas/sha256/${hex}`, good);
    await Deno.writeTextFile(
      `${dir}/run/phase/net.lease`,
      "interface=eth0 ip=10.9.0.7/24 router= dns=\n",
    );
    const ok = await runBlock(dir, "internet", `console=ttyS0 ${rootfsCmdline(hex)}`);
    assert(ok.includes("-t squashfs -o ro,loop"), ok);
    assert(/CALL phase-serve --from-cache \S+ --trust \/etc\/phase\/trust\.json/.test(ok), ok);
    assert(ok.includes(`${SELFHOST_SERVING} http://10.9.0.7:8080/`), ok);
    assert(ok.includes("--no-dht"), "the DHT is off without phase.bootstrap\n" + ok);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("TM-01 tampering: the rootfs the seed did not download is read from the seed partition, hashed, and only a matching copy is mounted, served and added to the cache", async () => {
  const dir = await Deno.makeTempDir({ dir: "/tmp/phase", prefix: "selfhost-sh-" });
  try {
    const good = new TextEncoder().encode("a squashfs, in spirit, on the seed partition");
    const hex = createHash("sha256").update(good).digest("hex");
    const cas = `${dir}/cache/cas/sha256`;
    await Deno.mkdir(cas, { recursive: true });
    await Deno.mkdir(`${dir}/run/phase`, { recursive: true });
    await Deno.writeTextFile(
      `${dir}/run/phase/net.lease`,
      "interface=eth0 ip=10.9.0.7/24 router= dns=\n",
    );
    const cmdline = `console=ttyS0 ${rootfsCmdline(hex, good.length)}`;
    // A partition is larger than the squashfs on it: only the signed size is read.
    const part = `${dir}/seed-part`;
    const bad = good.slice();
    bad[5] ^= 1;
    await Deno.writeFile(part, new Uint8Array([...bad, ...new Uint8Array(4096)]));
    const refused = await runBlock(dir, "internet", cmdline, part);
    assert(refused.includes(SELFHOST_ROOTFS_REFUSED), refused);
    assert(refused.includes("seed partition"), refused);
    assert(!refused.includes("-t squashfs"), refused);
    assert(!refused.includes("phase-serve"), refused);
    assertEquals([...Deno.readDirSync(cas)].map((e) => e.name), [], "nothing added to the cache");

    await Deno.writeFile(part, new Uint8Array([...good, ...new Uint8Array(4096)]));
    const ok = await runBlock(dir, "internet", cmdline, part);
    assert(ok.includes(SELFHOST_FROM_SEED), ok);
    assert(ok.includes("-t squashfs -o ro,loop"), ok);
    assert(ok.includes(`${SELFHOST_SERVING} http://10.9.0.7:8080/`), ok);
    // Added under its digest, the exact bytes, and the cache back to read-only.
    assertEquals(await Deno.readFile(`${cas}/${hex}`), good);
    assertEquals([...Deno.readDirSync(cas)].map((e) => e.name), [hex]);
    assert(/CALL mount -o remount,rw[\s\S]*CALL mount -o remount,ro/.test(ok), ok);

    // Without the signed size nothing is read from the partition.
    await Deno.remove(`${cas}/${hex}`);
    const noSize = await runBlock(dir, "internet", `console=ttyS0 ${rootfsCmdline(hex)}`, part);
    assert(noSize.includes("is not in the cache: not serving"), noSize);
    assert(!noSize.includes("phase-serve"), noSize);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the target's init runs the self-host block after the marker (it adds nothing before it)", () => {
  const init = targetInit("2026.01.01");
  const marker = init.indexOf(`echo "${TARGET_MARKER}`);
  const block = init.indexOf("phase_selfhost()");
  assert(marker > 0 && block > marker, "block after the marker");
  assertEquals(init.split("\nphase_selfhost\n").length, 2, "called once");
});
