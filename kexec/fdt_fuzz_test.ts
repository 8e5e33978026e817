import { assertThrows } from "../testing/mod.ts";
import { KexecError } from "./errors.ts";
import { parseFdt, writeFdt, zeroKaslrSeed } from "./fdt.ts";

// Regression found by `deno task fuzz --target fdt` (docs/fuzzing.md).

/** A DTB whose one child node is named by the single byte `b` (root "", child "a" patched). */
function dtbWithNameByte(b: number): Uint8Array {
  const dtb = writeFdt({
    version: 17,
    lastCompVersion: 16,
    bootCpuidPhys: 0,
    reserved: [],
    root: { name: "", properties: [], children: [{ name: "a", properties: [], children: [] }] },
  });
  const offStruct = new DataView(dtb.buffer).getUint32(8);
  // BEGIN_NODE(root) + "" padded to 4, then BEGIN_NODE(child): its name follows.
  const at = offStruct + 4 + 4 + 4;
  if (dtb[at] !== 0x61) throw new Error("layout changed");
  dtb[at] = b;
  return dtb;
}

Deno.test("fuzz: fdt: a node name that is not UTF-8 is E_FDT, not the decoder's TypeError", () => {
  parseFdt(dtbWithNameByte(0x62)); // the patch itself keeps a valid tree
  assertThrows(() => parseFdt(dtbWithNameByte(0xff)), KexecError, "is not UTF-8");
  assertThrows(() => zeroKaslrSeed(dtbWithNameByte(0xff)), KexecError, "is not UTF-8");
});
