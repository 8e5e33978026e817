import { assert, assertEquals, assertRejects } from "../testing/mod.ts";
import { KexecError } from "./errors.ts";
import { CHAINLOAD_MARK, installChainloadEntry } from "./chainload.ts";
import type { Staged } from "./kexec.ts";
import { runKexec } from "./cli.ts";
import { EFI_GLOBAL_GUID } from "./efivar.ts";

async function staged(dir: string): Promise<Staged> {
  await Deno.mkdir(`${dir}/stage`, { recursive: true });
  await Deno.writeTextFile(`${dir}/stage/kernel`, "kernel bytes");
  await Deno.writeTextFile(`${dir}/stage/initramfs`, "initramfs bytes");
  return {
    dir: `${dir}/stage`,
    kernel: `${dir}/stage/kernel`,
    initramfs: `${dir}/stage/initramfs`,
    arch: "amd64",
    version: "2026.11.22",
    manifestCmdline: "console=ttyS0 phase.mode=internet",
  };
}

Deno.test("chainload fallback installs the re-checked copies and an entry with the mode on a mounted ESP", async () => {
  await Deno.mkdir("/tmp/phase", { recursive: true });
  const dir = await Deno.makeTempDir({ dir: "/tmp/phase", prefix: "chainload-test-" });
  try {
    const s = await staged(dir);
    await Deno.mkdir(`${dir}/esp/loader/entries`, { recursive: true });
    await Deno.writeTextFile(`${dir}/esp/loader/loader.conf`, "default internet.conf\n");
    const conf = await installChainloadEntry(s, {
      esp: `${dir}/esp`,
      entry: "phase-chainload.conf",
      mode: "local",
    });
    assertEquals(await Deno.readTextFile(`${dir}/esp/phase/target/linux`), "kernel bytes");
    assertEquals(await Deno.readTextFile(`${dir}/esp/phase/target/initrd`), "initramfs bytes");
    const text = await Deno.readTextFile(conf);
    assert(text.includes("linux /phase/target/linux\ninitrd /phase/target/initrd\n"), text);
    assert(text.includes(`options console=ttyS0 phase.mode=local ${CHAINLOAD_MARK}\n`), text);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("chainload fallback refuses a directory that is not a mounted ESP (never writes to tmpfs)", async () => {
  await Deno.mkdir("/tmp/phase", { recursive: true });
  const dir = await Deno.makeTempDir({ dir: "/tmp/phase", prefix: "chainload-test-" });
  try {
    const s = await staged(dir);
    await assertRejects(
      () =>
        installChainloadEntry(s, {
          esp: `${dir}/not-esp`,
          entry: "phase-chainload.conf",
          mode: "internet",
        }),
      KexecError,
      "cannot install the chainload entry",
    );
    let exists = true;
    try {
      await Deno.stat(`${dir}/not-esp`);
    } catch {
      exists = false;
    }
    assertEquals(exists, false);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("TM-14 secure boot and lockdown: phase-kexec fallback is disabled under Secure Boot and writes nothing to the ESP", async () => {
  await Deno.mkdir("/tmp/phase", { recursive: true });
  const dir = await Deno.makeTempDir({ dir: "/tmp/phase", prefix: "fallback-sb-test-" });
  try {
    await Deno.mkdir(`${dir}/efivars`);
    await Deno.writeFile(
      `${dir}/efivars/SecureBoot-${EFI_GLOBAL_GUID}`,
      new Uint8Array([6, 0, 0, 0, 1]),
    );
    await Deno.mkdir(`${dir}/esp/loader`, { recursive: true });
    await Deno.writeTextFile(`${dir}/esp/loader/loader.conf`, "default internet.conf\n");
    const err = await assertRejects(
      () =>
        runKexec([
          "fallback",
          "--manifest",
          `${dir}/none.json`,
          "--trust",
          `${dir}/none-trust.json`,
          "--esp",
          `${dir}/esp`,
          "--efivars",
          `${dir}/efivars`,
          "--no-reboot",
        ], () => {}),
      KexecError,
    );
    assertEquals(err.code, "E_FALLBACK");
    assert(err.message.includes("disabled under Secure Boot"), err.message);
    assertEquals([...Deno.readDirSync(`${dir}/esp`)].map((e) => e.name), ["loader"]);
    assertEquals([...Deno.readDirSync(`${dir}/efivars`)].length, 1);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
