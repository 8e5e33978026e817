import { assert, assertEquals } from "../testing/mod.ts";
import { ImagesError } from "./errors.ts";
import { elfNeeded } from "./elf.ts";

Deno.test("elfNeeded reads DT_NEEDED and PT_INTERP of a real binary (host kexec-tools)", async () => {
  const { needed, interp } = elfNeeded(await Deno.readFile("/usr/sbin/kexec"), "kexec");
  assertEquals(interp, "/lib64/ld-linux-x86-64.so.2");
  assert(needed.includes("libc.so.6"), needed.join(","));
  assert(needed.some((n) => n.startsWith("libxenctrl.so")), needed.join(","));
  // A static binary has no DT_NEEDED.
  assertEquals(elfNeeded(await Deno.readFile("/bin/busybox"), "busybox").needed, []);
});

Deno.test("elfNeeded refuses what is not ELF64 LE with E_INPUT", () => {
  for (const bytes of [new Uint8Array(10), new TextEncoder().encode("#!/bin/sh\n".repeat(10))]) {
    let code = "";
    try {
      elfNeeded(bytes);
    } catch (e) {
      if (e instanceof ImagesError) code = e.code;
    }
    assertEquals(code, "E_INPUT");
  }
});
