import { ClientError } from "./errors.ts";
import { mountOf, parseMounts, preparePrivateRoot } from "./private.ts";
import { assertEquals, assertRejects, assertRejectsCode, tempDir } from "../testing/mod.ts";

const MOUNTS = `/dev/root / ext4 rw 0 0
tmpfs /dev/shm tmpfs rw 0 0
tmpfs /run/phase tmpfs rw 0 0
/dev/sdb1 /run/phase/usb vfat rw 0 0
tmpfs /mnt/with\\040space tmpfs rw 0 0
`;

Deno.test("private root: /proc/mounts parsing picks the longest containing mount", () => {
  const m = parseMounts(MOUNTS);
  assertEquals(mountOf("/run/phase/root", m)?.fsType, "tmpfs");
  assertEquals(mountOf("/run/phase/usb/root", m)?.fsType, "vfat");
  assertEquals(mountOf("/run/phaseX", m)?.fsType, "ext4");
  assertEquals(mountOf("/mnt/with space/x", m)?.fsType, "tmpfs");
});

Deno.test("TM-13 private-mode privacy: a root off the tmpfs (by mounts, by statfs, by symlink) is refused before it is created", async () => {
  const dir = await tempDir();
  try {
    // By the mount table: /tmp/phase is on ext4 here.
    await assertRejectsCode(
      preparePrivateRoot(`${dir}/root`, { mountsText: MOUNTS, useStatfs: false }),
      ClientError,
      "E_PRIVATE_ROOT",
    );
    // By statfs(2): the real filesystem of /tmp/phase is not tmpfs.
    await assertRejectsCode(preparePrivateRoot(`${dir}/root2`), ClientError, "E_PRIVATE_ROOT");
    await assertRejects(Deno.lstat(`${dir}/root2`), Deno.errors.NotFound);
    // A symlink that leads off the tmpfs: the mount table says /tmp/phase/... is "tmpfs"
    // lexically here, but the resolved target is not.
    const fake = `tmpfs /tmp/phase/fake tmpfs rw 0 0\n/dev/root / ext4 rw 0 0\n`;
    await Deno.mkdir(`${dir}/elsewhere`);
    await Deno.mkdir("/tmp/phase/fake", { recursive: true }).catch(() => {});
    const link = `/tmp/phase/fake/link-${crypto.randomUUID()}`;
    await Deno.symlink(`${dir}/elsewhere`, link);
    try {
      const err = await assertRejectsCode(
        preparePrivateRoot(link, { mountsText: fake, useStatfs: false }),
        ClientError,
        "E_PRIVATE_ROOT",
      );
      assertEquals(err.message.includes("not a tmpfs"), true);
    } finally {
      await Deno.remove(link);
      await Deno.remove("/tmp/phase/fake").catch(() => {});
    }
    await assertRejectsCode(preparePrivateRoot("relative/root"), ClientError, "E_PRIVATE_ROOT");
    await assertRejectsCode(preparePrivateRoot("/run/phase/../etc"), ClientError, "E_PRIVATE_ROOT");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
