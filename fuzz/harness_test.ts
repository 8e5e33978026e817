import { assert, assertEquals, assertThrows } from "../testing/mod.ts";
import fc from "fast-check";
import { FuzzFinding, only, runTarget } from "./harness.ts";
import { applyEdits } from "./mutate.ts";

// The harness must catch what it claims to catch: a negative control each.

Deno.test("fuzz: harness: an untyped error is a finding, a typed one is not", () => {
  assertEquals(
    only((e) => e instanceof RangeError, () => {
      throw new RangeError("typed");
    }),
    undefined,
  );
  assertThrows(
    () =>
      only((e) => e instanceof RangeError, () => {
        throw new TypeError("untyped");
      }),
    FuzzFinding,
    "untyped error: TypeError",
  );
});

Deno.test("fuzz: harness: a parser that throws the wrong error on some input fails its target, with the shrunk input", async () => {
  const r = await runTarget({
    name: "broken",
    parser: "test",
    properties: ["throws only RangeError"],
    build: () =>
      Promise.resolve(fc.property(fc.uint8Array(), (b) => {
        only((e) => e instanceof RangeError, () => {
          if (b.includes(7)) throw new TypeError("seven");
        });
      })),
  }, { runs: 2000, seed: 1 });
  assert(r.failed);
  assert(r.report.includes("Uint8Array.from([7])"), r.report);
});

Deno.test("fuzz: mutate: edits insert, delete, duplicate and truncate as positioned", () => {
  const s = new Uint8Array([1, 2, 3, 4]);
  assertEquals([...applyEdits(s, [{ kind: "insert", at: 0.5, bytes: new Uint8Array([9]) }])], [
    1,
    2,
    9,
    3,
    4,
  ]);
  assertEquals([...applyEdits(s, [{ kind: "delete", at: 0.25, len: 2 }])], [1, 4]);
  assertEquals([...applyEdits(s, [{ kind: "dup", at: 0, len: 2, times: 1 }])], [1, 2, 1, 2, 3, 4]);
  assertEquals([...applyEdits(s, [{ kind: "truncate", at: 0.5 }])], [1, 2]);
  assertEquals([...s], [1, 2, 3, 4], "the seed is never changed");
});
