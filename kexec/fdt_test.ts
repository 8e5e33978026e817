import { assert, assertEquals } from "../testing/mod.ts";
import { KexecError } from "./errors.ts";
import { type Fdt, findNode, parseFdt, writeFdt, zeroKaslrSeed } from "./fdt.ts";

function u64(v: bigint): Uint8Array {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, v, false);
  return b;
}

function sample(): Fdt {
  const enc = new TextEncoder();
  return {
    version: 17,
    lastCompVersion: 16,
    bootCpuidPhys: 0,
    reserved: [{ address: 0x8000_0000n, size: 0x1000n }],
    root: {
      name: "",
      properties: [{ name: "compatible", value: enc.encode("linux,dummy-virt\0") }],
      children: [
        {
          name: "chosen",
          properties: [
            { name: "bootargs", value: enc.encode("console=ttyAMA0\0") },
            { name: "kaslr-seed", value: u64(0x1234_5678_9abc_def0n) },
            { name: "rng-seed", value: new Uint8Array(64).fill(7) },
          ],
          children: [],
        },
        {
          name: "memory@40000000",
          properties: [{ name: "device_type", value: enc.encode("memory\0") }],
          children: [],
        },
      ],
    },
  };
}

Deno.test("FDT writer output parses back to the same tree", () => {
  const fdt = sample();
  const back = parseFdt(writeFdt(fdt));
  assertEquals(back, fdt);
});

Deno.test("zeroKaslrSeed zeroes /chosen/kaslr-seed, drops rng-seed, keeps everything else", () => {
  const { dtb, changed } = zeroKaslrSeed(writeFdt(sample()));
  assertEquals(changed, ["kaslr-seed zeroed", "rng-seed removed"]);
  const fdt = parseFdt(dtb);
  const chosen = findNode(fdt, "/chosen")!;
  assertEquals(chosen.properties.map((p) => p.name), ["bootargs", "kaslr-seed"]);
  assertEquals(chosen.properties[1].value, new Uint8Array(8));
  assertEquals(findNode(fdt, "/memory@40000000")!.properties.length, 1);
  assertEquals(fdt.reserved, sample().reserved);
});

Deno.test("parseFdt refuses malformed trees with E_FDT", () => {
  const good = writeFdt(sample());
  const cases: Uint8Array[] = [
    good.slice(0, 20),
    (() => {
      const b = good.slice();
      b[0] = 0;
      return b;
    })(),
    (() => {
      const b = good.slice();
      new DataView(b.buffer).setUint32(36, 1 << 30, false); // struct size past the end
      return b;
    })(),
    good.slice(0, good.length - 10),
  ];
  for (const c of cases) {
    let code = "";
    try {
      parseFdt(c);
    } catch (e) {
      if (e instanceof KexecError) code = e.code;
      else throw e;
    }
    assertEquals(code, "E_FDT");
  }
});

Deno.test("zeroKaslrSeed on QEMU's real arm64 'virt' device tree", async () => {
  const qemu = "/usr/bin/qemu-system-aarch64";
  try {
    await Deno.stat(qemu);
  } catch {
    throw new Error(
      "qemu-system-aarch64 missing: apt-get install qemu-system-arm (.ci/apt-packages)",
    );
  }
  await Deno.mkdir("/tmp/phase", { recursive: true });
  const dir = await Deno.makeTempDir({ dir: "/tmp/phase", prefix: "fdt-test-" });
  try {
    const out = await new Deno.Command(qemu, {
      args: [
        "-M",
        `virt,dumpdtb=${dir}/virt.dtb`,
        "-cpu",
        "cortex-a57",
        "-nographic",
        "-accel",
        "tcg",
      ],
      stdout: "null",
      stderr: "null",
      stdin: "null",
    }).output();
    assertEquals(out.code, 0);
    const raw = await Deno.readFile(`${dir}/virt.dtb`);
    const before = parseFdt(raw);
    const seed = findNode(before, "/chosen")!.properties.find((p) => p.name === "kaslr-seed");
    assert(seed && seed.value.some((b) => b !== 0), "QEMU puts a non-zero kaslr-seed in /chosen");
    const { dtb } = zeroKaslrSeed(raw);
    const after = parseFdt(dtb);
    assertEquals(
      findNode(after, "/chosen")!.properties.find((p) => p.name === "kaslr-seed")!.value,
      new Uint8Array(8),
    );
    // Everything but /chosen is untouched.
    assertEquals(
      after.root.children.filter((c) => c.name !== "chosen"),
      before.root.children.filter((c) => c.name !== "chosen"),
    );
    assert(dtb.length < raw.length, "the writer drops the firmware's free-space padding");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
