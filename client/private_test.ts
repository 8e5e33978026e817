import { ClientError } from "./errors.ts";
import type { Trust } from "../verify/mod.ts";
import { fetchRelease } from "./fetch.ts";
import {
  checkPrivateTree,
  mountOf,
  parseMounts,
  preparePrivateRoot,
  PRIVATE_SUBDIRS,
} from "./private.ts";
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

Deno.test("TM-13 private-mode privacy: a symlink or a file planted as a subdirectory of the root is refused, before each write", async () => {
  const dir = await tempDir();
  // The mount table says dir/ is a tmpfs (statfs is not asked: /tmp/phase is ext4 here).
  const mountsText = `/dev/root / ext4 rw 0 0\ntmpfs ${dir} tmpfs rw 0 0\n`;
  const root = `${dir}/root`;
  try {
    await Deno.mkdir(`${dir}/disk`);
    await preparePrivateRoot(root, { mountsText, useStatfs: false });
    await checkPrivateTree(root);
    for (const sub of PRIVATE_SUBDIRS.filter((s) => !s.includes("/"))) {
      // A symlink to a directory elsewhere (on a disk, in the attack).
      await Deno.symlink(`${dir}/disk`, `${root}/${sub}`);
      const e = await assertRejectsCode(
        preparePrivateRoot(root, { mountsText, useStatfs: false }),
        ClientError,
        "E_PRIVATE_ROOT",
      );
      assertEquals(e.message, `${root}/${sub} is a symbolic link: refused (TM-13)`);
      await Deno.remove(`${root}/${sub}`);
    }
    // Planted after the start: fetchRelease asks before each write, and
    // nothing is written through the link.
    await Deno.mkdir(`${root}/cas`);
    await Deno.symlink(`${dir}/disk`, `${root}/cas/sha256`);
    await assertRejectsCode(
      fetchRelease({
        manifestUrl: "http://127.0.0.1:9/stable/amd64/manifest.json",
        trust: { keys: [], threshold: 1 } as unknown as Trust,
        cacheDir: root,
        beforeWrite: () => checkPrivateTree(root),
      }),
      ClientError,
      "E_PRIVATE_ROOT",
    );
    assertEquals([...Deno.readDirSync(`${dir}/disk`)], []);
    await Deno.remove(`${root}/cas/sha256`);
    await Deno.writeTextFile(`${root}/cas/sha256`, "");
    const f = await assertRejectsCode(checkPrivateTree(root), ClientError, "E_PRIVATE_ROOT");
    assertEquals(f.message, `${root}/cas/sha256 is not a directory: refused (TM-13)`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
