import { assertEquals } from "../testing/mod.ts";
import { parseRange } from "./range.ts";

// Pinned by `deno task fuzz --target range` (docs/fuzzing.md): a deliberate
// difference from npm range-parser, which calls this range unsatisfiable.

Deno.test("fuzz: range: a suffix longer than the representation is the whole representation (RFC 9110 §14.1.3)", () => {
  assertEquals(parseRange("bytes=-2", 1), { start: 0, end: 0 });
  assertEquals(parseRange("bytes=-20", 10), { start: 0, end: 9 });
});

Deno.test("fuzz: range: several ranges are served whole, where range-parser would split them", () => {
  assertEquals(parseRange("bytes=0-1,3-4", 10), undefined);
});
