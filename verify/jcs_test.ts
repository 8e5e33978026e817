import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { canonicalize, signedBytes } from "./jcs.ts";
import { parseStrictJson } from "./strict_json.ts";

Deno.test("JCS: members sort by UTF-16 code units (RFC 8785 §3.2.3 example)", () => {
  const doc = parseStrictJson(
    '{"\\u20ac":"Euro Sign","\\r":"Carriage Return","\\ufb33":"Hebrew Letter Dalet With Dagesh","1":"One","\\ud83d\\ude00":"Emoji: Grinning Face","\\u0080":"Control","\\u00f6":"Latin Small Letter O With Diaeresis"}',
  );
  // Read the member order off the text: JSON.parse would move "1" first.
  const keys = [...canonicalize(doc).matchAll(/"((?:[^"\\]|\\.)*)":"/g)].map((m) =>
    JSON.parse(`"${m[1]}"`)
  );
  assertEquals(keys, ["\r", "1", "\u0080", "\u00f6", "\u20ac", "\ud83d\ude00", "\ufb33"]);
});

Deno.test("JCS: no whitespace, ECMAScript string escapes, nested objects sorted", () => {
  const doc = parseStrictJson('{ "b" : [ 1 , {"z":null,"a":"\\u000f\\/é"} ], "a" : true }');
  assertEquals(canonicalize(doc), '{"a":true,"b":[1,{"a":"\\u000f/é","z":null}]}');
});

Deno.test("JCS: signed bytes drop only the top-level signatures member", () => {
  const doc = parseStrictJson('{"signatures":[1],"x":{"signatures":2}}') as { [k: string]: never };
  assertEquals(new TextDecoder().decode(signedBytes(doc)), '{"x":{"signatures":2}}');
});
