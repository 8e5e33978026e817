import { assertEquals, assertRejects } from "../testing/mod.ts";
import { KexecError } from "./errors.ts";
import {
  decodeEfiString,
  EFI_GLOBAL_GUID,
  encodeEfiString,
  loaderVariablePath,
  secureBootEnabled,
  setOneShotEntry,
} from "./efivar.ts";

Deno.test("LoaderEntryOneShot bytes: LE attributes 0x7 then NUL-terminated UTF-16LE", () => {
  const b = encodeEfiString("ab.conf");
  assertEquals([...b.subarray(0, 8)], [7, 0, 0, 0, 0x61, 0, 0x62, 0]);
  assertEquals([...b.subarray(b.length - 2)], [0, 0]);
  assertEquals(b.length, 4 + 8 * 2);
  assertEquals(decodeEfiString(b), { attributes: 7, value: "ab.conf" });
});

Deno.test("setOneShotEntry writes the variable file (replacing an old one) and refuses bad ids", async () => {
  await Deno.mkdir("/tmp/phase", { recursive: true });
  const dir = await Deno.makeTempDir({ dir: "/tmp/phase", prefix: "efivars-test-" });
  try {
    const unlinked: string[] = [];
    const path = await setOneShotEntry("phase-chainload.conf", { dir });
    assertEquals(path, loaderVariablePath("LoaderEntryOneShot", dir));
    assertEquals(decodeEfiString(await Deno.readFile(path)).value, "phase-chainload.conf");
    await setOneShotEntry("other.conf", {
      dir,
      unlinkImmutable: (p) => Promise.resolve(void unlinked.push(p)),
    });
    assertEquals(unlinked, [path]);
    assertEquals(decodeEfiString(await Deno.readFile(path)).value, "other.conf");
    await assertRejects(
      () => setOneShotEntry("../../x", { dir }),
      KexecError,
      "invalid boot loader entry",
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("TM-14 secure boot and lockdown: secureBootEnabled reads the SecureBoot variable (absent or 0: off)", async () => {
  await Deno.mkdir("/tmp/phase", { recursive: true });
  const dir = await Deno.makeTempDir({ dir: "/tmp/phase", prefix: "efivars-sb-test-" });
  try {
    const path = `${dir}/SecureBoot-${EFI_GLOBAL_GUID}`;
    assertEquals(await secureBootEnabled(dir), false);
    await Deno.writeFile(path, new Uint8Array([6, 0, 0, 0, 0]));
    assertEquals(await secureBootEnabled(dir), false);
    await Deno.writeFile(path, new Uint8Array([6, 0, 0, 0, 1]));
    assertEquals(await secureBootEnabled(dir), true);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
