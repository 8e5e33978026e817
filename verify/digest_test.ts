import { assert, assertEquals } from "../testing/mod.ts";
import { readFileHashed, SHA256_PREFIX, sha256Hex } from "./digest.ts";

Deno.test("readFileHashed: reads exactly size bytes with their digest; a shorter or longer file is undefined", async () => {
  const path = await Deno.makeTempFile({ dir: "/tmp/phase", prefix: "digest-" });
  try {
    // Larger than one HASH_CHUNK_BYTES read, not a multiple of it.
    const bytes = new Uint8Array(2_500_000).map((_, i) => (i * 31) % 251);
    await Deno.writeFile(path, bytes);
    {
      using f = await Deno.open(path);
      const got = await readFileHashed(f, bytes.length);
      assert(got !== undefined);
      assert(got.bytes.length === bytes.length && got.bytes.every((b, i) => b === bytes[i]));
      assertEquals(got.digest, SHA256_PREFIX + sha256Hex(bytes));
    }
    for (const size of [bytes.length + 1, bytes.length - 1, 0]) {
      using f = await Deno.open(path);
      assertEquals(await readFileHashed(f, size), undefined, `size ${size}`);
    }
  } finally {
    await Deno.remove(path);
  }
});
