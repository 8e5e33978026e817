import {
  assert,
  assertEquals,
  assertRejects,
  patternBytes,
  REPO,
  tempDir,
} from "../testing/mod.ts";
import {
  explainRefusal,
  fsRefusal,
  PathRefusedError,
  readFileCapped,
  TooLargeError,
  writeFileAtomic,
} from "./io.ts";
import { PhaseError } from "./errors.ts";

/** Bound of the subprocess that writes under a file-size limit. */
const CHILD_TIMEOUT_MS = 30_000;

async function names(dir: string): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(dir)) out.push(e.name);
  return out.sort();
}

Deno.test("core: readFileCapped returns a file of exactly the cap, refuses one byte more, reads an empty file", async () => {
  const dir = await tempDir("io");
  try {
    const cap = 4096;
    const bytes = patternBytes(cap + 1);
    await Deno.writeFile(`${dir}/at`, bytes.subarray(0, cap));
    await Deno.writeFile(`${dir}/over`, bytes);
    await Deno.writeFile(`${dir}/empty`, new Uint8Array());
    assertEquals(await readFileCapped(`${dir}/at`, cap), bytes.slice(0, cap));
    const err = await assertRejects(readFileCapped(`${dir}/over`, cap), TooLargeError);
    assertEquals([err.path, err.maxBytes], [`${dir}/over`, cap]);
    assertEquals(await readFileCapped(`${dir}/empty`, cap), new Uint8Array());
    // A cap of 0 still tells an empty file from a non-empty one.
    assertEquals(await readFileCapped(`${dir}/empty`, 0), new Uint8Array());
    await assertRejects(readFileCapped(`${dir}/at`, 0), TooLargeError);
    await assertRejects(readFileCapped(`${dir}/missing`, cap), Deno.errors.NotFound);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("core: writeFileAtomic writes through a temp file and a rename, with the mode asked for", async () => {
  const dir = await tempDir("io");
  try {
    const path = `${dir}/state.json`;
    await writeFileAtomic(path, new TextEncoder().encode("one"), { mode: 0o600 });
    assertEquals(await Deno.readTextFile(path), "one");
    assertEquals((await Deno.stat(path)).mode! & 0o777, 0o600);
    // Replacing: a new inode takes the name (rename), the old one is never truncated in place, so
    // a reader holding the old file still sees the whole old content.
    const before = await Deno.stat(path);
    const reader = await Deno.open(path);
    try {
      await writeFileAtomic(path, new TextEncoder().encode("two, longer"), { mode: 0o640 });
      assert((await Deno.stat(path)).ino !== before.ino, "the name points at a new file");
      const old = new Uint8Array(16);
      assertEquals(new TextDecoder().decode(old.subarray(0, (await reader.read(old))!)), "one");
    } finally {
      reader.close();
    }
    assertEquals(await Deno.readTextFile(path), "two, longer");
    assertEquals((await Deno.stat(path)).mode! & 0o777, 0o640);
    // createNew never replaces an existing file.
    await assertRejects(
      writeFileAtomic(path, new TextEncoder().encode("three"), { createNew: true }),
      Deno.errors.AlreadyExists,
    );
    assertEquals(await Deno.readTextFile(path), "two, longer");
    await writeFileAtomic(`${dir}/fresh`, patternBytes(100_000), { createNew: true });
    assertEquals(await Deno.readFile(`${dir}/fresh`), patternBytes(100_000));
    assertEquals(await names(dir), ["fresh", "state.json"], "no temp file is left behind");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("core: writeFileAtomic leaves no partial file when the write or the rename fails", async () => {
  const dir = await tempDir("io");
  try {
    const path = `${dir}/state.json`;
    await Deno.writeTextFile(path, "old");
    // A write that fails half-way: the child may write at most 4 KiB per file (ulimit -f, in
    // 1024-byte blocks; SIGXFSZ ignored so write() fails with EFBIG instead of killing it).
    const script = `import { writeFileAtomic } from ${JSON.stringify(`${REPO}/core/io.ts`)};
      try {
        await writeFileAtomic(${JSON.stringify(path)}, new Uint8Array(65536).fill(1));
        console.log("wrote");
      } catch (err) {
        console.log("threw " + err.message);
      }`;
    const out = await new Deno.Command("bash", {
      args: ["-c", 'trap "" XFSZ; ulimit -f 4; exec deno eval -q "$0"', script],
      stdout: "piped",
      stderr: "inherit",
      signal: AbortSignal.timeout(CHILD_TIMEOUT_MS),
    }).output();
    const said = new TextDecoder().decode(out.stdout).trim();
    assert(out.success && said.startsWith("threw "), said);
    assertEquals(await Deno.readTextFile(path), "old", "the old file is untouched");
    assertEquals(await names(dir), ["state.json"], "no temp file is left behind");
    // A rename that fails (the name is a directory): the temp file is removed too.
    await Deno.mkdir(`${dir}/taken`);
    await assertRejects(writeFileAtomic(`${dir}/taken`, new Uint8Array(10)), Error);
    assertEquals(await names(dir), ["state.json", "taken"], "no temp file is left behind");
    assertEquals(await names(`${dir}/taken`), []);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("core: explainRefusal names the user's flag, lists the set's directories, and leaves other errors alone", () => {
  const scopes = { set: "fetch", read: ["./.cache", "/tmp/phase"], write: ["./.cache"] };
  const denied = new Deno.errors.NotCapable(
    'Requires write access to "./cache/cas/sha256", run again with the --allow-write flag',
  );
  const wrapped = new PhaseError("E_CACHE", "cannot create the cache", { cause: denied });
  const named = [{ flag: "--trust", path: "./.phase/trust/trust.json" }, {
    flag: "--cache",
    path: "./cache/",
  }];
  const e = explainRefusal(wrapped, scopes, named);
  assert(e instanceof PathRefusedError);
  assertEquals(e.code, "E_IO");
  assertEquals(
    e.message,
    "cannot write ./cache/cas/sha256: --cache ./cache/ is outside the 'fetch' permission set",
  );
  assert(
    e.hint!.startsWith(
      "fetch may write only under ./.cache (permission set 'fetch'); pass --cache inside one of them.",
    ),
    e.hint,
  );
  // A temp file beside an output file the user named is blamed on that flag.
  const sibling = explainRefusal(
    new Deno.errors.NotCapable('Requires write access to "/x/.out.json.1234.tmp", run again'),
    scopes,
    [{ flag: "--out", path: "/x/out.json" }],
  ) as PathRefusedError;
  assertEquals(sibling.named?.flag, "--out");
  // Not a file access (net), and not a refusal at all: unchanged.
  const net = new Deno.errors.NotCapable('Requires net access to "example.org:443"');
  assertEquals(explainRefusal(net, scopes, named), net);
  const other = new PhaseError("E_DIGEST", "bad");
  assertEquals(explainRefusal(other, scopes, named), other);
  // The system (owner, mode) refusing a path the user named: E_IO, says so, lists the set too.
  const os = new Deno.errors.PermissionDenied(
    "Permission denied (os error 13): mkdir '/var/cache/phase/x'",
  );
  const sys = explainRefusal(os, { ...scopes, write: ["/var/cache/phase"] }, [{
    flag: "--cache",
    path: "/var/cache/phase/x",
  }]);
  assert(sys instanceof PathRefusedError);
  assertEquals(sys.refusal, { by: "system", access: "write", path: "/var/cache/phase/x" });
  assert(sys.message.includes("the system refused"), sys.message);
  assert(
    sys.hint!.includes("ls -ld /var/cache/phase/x") &&
      sys.hint!.includes("only under /var/cache/phase"),
    sys.hint,
  );
  // ... but one on a path the user did not name is left to the component's own message.
  assertEquals(explainRefusal(os, scopes, []), os);
  assertEquals(
    fsRefusal(new Error("x", { cause: new Error("y", { cause: denied }) }))?.path,
    "./cache/cas/sha256",
  );
});
