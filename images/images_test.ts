import { assert, assertEquals } from "../testing/mod.ts";
import { permissionSet } from "../cli/mod.ts";
import { launcherScript, permissionFlags } from "./launcher.ts";
import { derivedUuid, diskDescriptor } from "./build.ts";

Deno.test("launcher flags carry exactly the deno.json set, with imports denied", () => {
  const flags = permissionFlags(permissionSet("kexec"), "/usr/lib/phase");
  assert(flags.includes("--allow-run=/sbin/kexec,/usr/sbin/kexec,/sbin/reboot"), flags.join(" "));
  assert(
    flags.some((f) => f.startsWith("--allow-read=/usr/lib/phase/.cache,/var/cache/phase,")),
    flags.join(" "),
  );
  assert(!flags.some((f) => f.startsWith("--allow-net")), "kexec has no network");
  assert(flags.some((f) => f.startsWith("--deny-import=jsr.io:443")));
  const script = launcherScript({
    name: "phase-kexec",
    set: "kexec",
    permissions: permissionSet("kexec"),
    bundle: "kexec/kexec.js",
  });
  assert(script.startsWith("#!/bin/sh\n"));
  assert(
    script.includes("--no-prompt") && script.includes("--no-remote") &&
      script.includes(' /usr/lib/phase/kexec/kexec.js "$@"'),
  );
});

Deno.test("derived ids are stable RFC 4122 v4-shaped UUIDs", () => {
  assertEquals(derivedUuid("amd64:disk"), derivedUuid("amd64:disk"));
  assert(
    /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/.test(derivedUuid("x")),
  );
  assert(
    diskDescriptor(1024 * 1024, "d.hds", derivedUuid("p")).includes("<Disk_size>2048</Disk_size>"),
  );
});

Deno.test({
  name: "deno task images: two builds are byte-identical (reproducible, rootless paths)",
  sanitizeResources: true,
  async fn() {
    await Deno.mkdir("/tmp/phase", { recursive: true });
    const dir = await Deno.makeTempDir({ dir: "/tmp/phase", prefix: "images-test-" });
    const repo = new URL("..", import.meta.url).pathname;
    try {
      const build = async (out: string) => {
        const r = await new Deno.Command("deno", {
          args: [
            "task",
            "-q",
            "images",
            "--arch",
            "amd64",
            "--out",
            out,
            "--keys",
            `${dir}/keys`,
            "--no-release",
          ],
          cwd: repo,
          stdout: "piped",
          stderr: "piped",
          signal: AbortSignal.timeout(300_000),
        }).output();
        assertEquals(r.code, 0, new TextDecoder().decode(r.stderr).slice(-2000));
      };
      await build(`${dir}/a`);
      await build(`${dir}/b`);
      const sums = await Deno.readTextFile(`${dir}/a/SHA256SUMS`);
      assertEquals(await Deno.readTextFile(`${dir}/b/SHA256SUMS`), sums);
      for (const line of sums.trim().split("\n")) {
        const name = line.slice(66);
        assertEquals(
          await Deno.readFile(`${dir}/b/${name}`),
          await Deno.readFile(`${dir}/a/${name}`),
          name,
        );
      }
      for (
        const want of [
          "phase-amd64.img",
          "phase-amd64.qcow2",
          "phase-amd64-seed.squashfs",
          "phase-amd64-seed.initramfs",
          "phase-amd64.hdd/DiskDescriptor.xml",
        ]
      ) {
        assert(sums.includes(`  ${want}\n`), `${want} missing from SHA256SUMS`);
      }
      // The GPT names the seed looks for are on the disk.
      const table = new TextDecoder().decode(
        (await new Deno.Command("sfdisk", {
          args: ["--dump", `${dir}/a/phase-amd64.img`],
          stdout: "piped",
        }).output()).stdout,
      );
      for (const n of ["phase-esp", "phase-seed", "phase-cache"]) {
        assert(table.includes(`name="${n}"`), table);
      }
      // The QCOW2 and Parallels conversions hold exactly the raw disk.
      const hds = sums.split("\n").map((l) => l.slice(66)).find((n) => n.endsWith(".hds"))!;
      for (const [fmt, file] of [["qcow2", "phase-amd64.qcow2"], ["parallels", hds]]) {
        const cmp = await new Deno.Command("qemu-img", {
          args: ["compare", "-f", "raw", "-F", fmt, `${dir}/a/phase-amd64.img`, `${dir}/a/${file}`],
          stdout: "piped",
        }).output();
        assertEquals(cmp.code, 0, `${file} differs from the raw image`);
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
