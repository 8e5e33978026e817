import { deepStrictEqual as assertEquals, ok as assert, throws } from "node:assert/strict";
import {
  capMemory,
  isComponentBinary,
  MAX_TABLE_ENTRIES,
  MEMORY_IMPORT,
  ModuleLimitError,
} from "./_limits.ts";
import { watToWasm } from "./build.ts";

const kind = (k: string) => (err: unknown) => err instanceof ModuleLimitError && err.kind === k;

Deno.test("capMemory: a defined memory becomes a host import capped at the limit", async () => {
  const bytes = await watToWasm(
    "m.wat",
    `(module (type (func)) (memory (export "memory") 2 65536)
    (table 3 funcref) (func (export "_start")) (data (i32.const 0) "hi"))`,
  );
  const capped = capMemory(bytes, 16);
  assertEquals(capped.memory, { initial: 2, maximum: 16 });
  const module = new WebAssembly.Module(capped.bytes as BufferSource);
  assertEquals(WebAssembly.Module.imports(module), [
    { module: MEMORY_IMPORT.module, name: MEMORY_IMPORT.name, kind: "memory" },
  ]);
  const memory = new WebAssembly.Memory(capped.memory!);
  const inst = new WebAssembly.Instance(module, {
    [MEMORY_IMPORT.module]: { [MEMORY_IMPORT.name]: memory },
  });
  assert(inst.exports.memory === memory, "the export is the host memory");
  assertEquals(new TextDecoder().decode(new Uint8Array(memory.buffer, 0, 2)), "hi");
  throws(() => memory.grow(15), RangeError);
  // Without a memory or a table the module is unchanged.
  const plain = await watToWasm("p.wat", `(module (func (export "_start")))`);
  assertEquals(capMemory(plain, 16).bytes, plain);
  assertEquals(capMemory(plain, 16).memory, undefined);
});

Deno.test("capMemory: refuses what it cannot cap", async () => {
  const big = await watToWasm("big.wat", `(module (memory 17))`);
  const table = await watToWasm("t.wat", `(module (table ${MAX_TABLE_ENTRIES + 1} funcref))`);
  throws(() => capMemory(new TextEncoder().encode("garbage!"), 16), kind("invalid_module"));
  throws(() => capMemory(big, 16), kind("memory"));
  throws(
    () => capMemory(new Uint8Array([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0, 5, 4, 1, 0x03, 1, 1]), 16),
    kind("invalid_module"),
    "shared memory",
  );
  throws(
    () => capMemory(new Uint8Array([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0, 5, 5, 2, 0, 1, 0, 1]), 16),
    kind("invalid_module"),
    "two memories",
  );
  throws(
    () => capMemory(table, 16),
    kind("memory"),
  );
  throws(
    () => capMemory(new Uint8Array([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0, 5, 9, 1]), 16),
    kind("invalid_module"),
  );
  const component = new Uint8Array([0, 0x61, 0x73, 0x6d, 0x0d, 0, 1, 0]);
  assert(isComponentBinary(component));
  throws(() => capMemory(component, 16), /component/);
});
