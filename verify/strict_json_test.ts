import { deepStrictEqual as assertEquals, throws as assertThrows } from "node:assert/strict";
import { MAX_JSON_DEPTH, parseStrictJson, StrictJsonError } from "./strict_json.ts";

Deno.test("strict JSON: parses what JSON.parse parses for v1 value types", () => {
  const text = '{"a":[1,-2,"x\\u00e9\\n",true,false,null,{}],"b":{"c":9007199254740991}}';
  assertEquals(JSON.stringify(parseStrictJson(text)), JSON.stringify(JSON.parse(text)));
});

Deno.test("TM-01 tampering: a repeated member name anywhere is rejected", () => {
  assertThrows(() => parseStrictJson('{"a":1,"a":1}'), StrictJsonError);
  assertThrows(() => parseStrictJson('{"x":{"b":1,"b":2}}'), /repeated member name 'b'/);
  assertThrows(() => parseStrictJson('[{"k":1},{"k":1,"k":1}]'), StrictJsonError);
  // Same name spelled with an escape is still the same name.
  assertThrows(() => parseStrictJson('{"ab":1,"a\\u0062":2}'), /repeated/);
});

Deno.test("strict JSON: non-integer, negative zero and unsafe numbers are rejected", () => {
  for (const t of ["1.5", "1e3", "1E-2", "-0", "9007199254740992", "1.0"]) {
    assertThrows(() => parseStrictJson(`{"n":${t}}`), StrictJsonError, t);
  }
  assertEquals(
    JSON.stringify(parseStrictJson('{"n":-9007199254740991}')),
    '{"n":-9007199254740991}',
  );
});

Deno.test("strict JSON: syntax errors, trailing data, BOM and bad UTF-8 are rejected", () => {
  for (
    const t of ['{"a":1,}', "[1,]", '{"a" 1}', "{} {}", "'x'", '"\u0001"', '{"a":01}', "", "nul"]
  ) {
    assertThrows(() => parseStrictJson(t), StrictJsonError, JSON.stringify(t));
  }
  assertThrows(() => parseStrictJson("\ufeff{}"), /byte order mark/);
  // As bytes too: the decoder must not strip EF BB BF before the check.
  assertThrows(
    () => parseStrictJson(new Uint8Array([0xef, 0xbb, 0xbf, 0x7b, 0x7d])),
    /byte order mark/,
  );
  assertThrows(
    () => parseStrictJson(new Uint8Array([0x7b, 0x22, 0xff, 0x22, 0x3a, 0x31, 0x7d])),
    /UTF-8/,
  );
});

Deno.test("TM-05 endless data: nesting is bounded", () => {
  const deep = "[".repeat(MAX_JSON_DEPTH + 2) + "]".repeat(MAX_JSON_DEPTH + 2);
  assertThrows(() => parseStrictJson(deep), /nesting too deep/);
  const ok = "[".repeat(MAX_JSON_DEPTH) + "]".repeat(MAX_JSON_DEPTH);
  parseStrictJson(ok);
});

Deno.test("strict JSON: __proto__ is an ordinary member and results are frozen", () => {
  const v = parseStrictJson('{"__proto__":{"x":1},"y":2}') as Record<string, unknown>;
  assertEquals(Object.keys(v), ["__proto__", "y"]);
  assertEquals(Object.isFrozen(v), true);
  assertEquals(({} as Record<string, unknown>).x, undefined);
});
