import { assertEquals } from "../testing/mod.ts";
import { digestOfRawCid, rawCid } from "./cid.ts";

// Regressions found by `deno task fuzz --target cid` (docs/fuzzing.md).

Deno.test("fuzz: cid: a raw CID with non-zero padding bits is not a second spelling of the digest", () => {
  const canonical = rawCid(new Uint8Array());
  assertEquals(canonical, "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku");
  // The minimal input: the last character carries two padding bits, set here.
  assertEquals(
    digestOfRawCid("bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvykv"),
    undefined,
  );
  assertEquals(
    digestOfRawCid(canonical),
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
  );
});

Deno.test("fuzz: cid: a raw CID with an extra trailing character is refused", () => {
  assertEquals(digestOfRawCid(rawCid(new Uint8Array()) + "a"), undefined);
});

Deno.test("fuzz: cid: base32 in another case is not a second spelling (multiformats reads it; Phase does not)", () => {
  assertEquals(
    digestOfRawCid("bafkReihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"),
    undefined,
  );
  assertEquals(digestOfRawCid(rawCid(new Uint8Array()).toUpperCase()), undefined);
});
