import { createHash } from "node:crypto";
import { type PartialFile, PartialSink, WRITE_BUFFER_BYTES } from "./download.ts";
import { assert, assertEquals, pseudoRandom, tempDir } from "../testing/mod.ts";

const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

Deno.test("download: the partial sink writes and hashes exactly the bytes pushed, in place or copied", async () => {
  const dir = await tempDir();
  try {
    const data = pseudoRandom(3 * WRITE_BUFFER_BYTES + 12_345, 7);
    const path = `${dir}/partial`;
    const file = await Deno.open(path, { read: true, write: true, create: true });
    const p: PartialFile = { file, pos: 0, hash: createHash("sha256"), contributors: new Set() };
    const sink = new PartialSink(p, path);
    let off = 0;
    let i = 0;
    while (off < data.length) {
      // Alternate reads in place (into the sink's buffer) and foreign chunks.
      const n = Math.min(data.length - off, 1 + ((i * 77_777) % 300_000));
      if (i++ % 2 === 0) {
        const view = sink.space().subarray(0, n);
        view.set(data.subarray(off, off + view.length));
        await sink.push(view);
        off += view.length;
      } else {
        await sink.push(data.slice(off, off + n));
        off += n;
      }
    }
    await sink.finish();
    file.close();
    assertEquals(p.pos, data.length);
    assertEquals(p.hash.digest("hex"), sha(data));
    assertEquals(await Deno.readFile(path), data);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("download: a failed write of the partial file starts it over, so its hash never covers bytes not on disk", async () => {
  const dir = await tempDir();
  try {
    const path = `${dir}/partial`;
    await Deno.writeFile(path, new Uint8Array(0));
    // Read-only: every write fails (as on a full or failing disk).
    const file = await Deno.open(path, { read: true });
    const p: PartialFile = {
      file,
      pos: 0,
      hash: createHash("sha256"),
      contributors: new Set(["a"]),
    };
    const sink = new PartialSink(p, path);
    let failed = false;
    try {
      const data = pseudoRandom(5 * WRITE_BUFFER_BYTES, 8);
      for (let off = 0; off < data.length; off += 200_000) {
        await sink.push(data.slice(off, off + 200_000));
      }
      await sink.finish();
    } catch {
      failed = true;
      await sink.abandon();
    }
    file.close();
    assert(failed, "the failed write is reported");
    assertEquals(p.pos, 0);
    assertEquals(p.hash.digest("hex"), sha(new Uint8Array(0)));
    assertEquals(p.contributors.size, 0);
    assertEquals((await Deno.stat(path)).size, 0);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
