import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { watToWasm } from "./build.ts";
import { verifyReceipt } from "./receipt.ts";
import { resolveDirGrant, runJob } from "./runner.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();
const ROOT = new URL("..", import.meta.url).pathname;

/** A `cat` job: path on stdin, opened below fd 3; exits 100+errno (open) or 200+errno (read). */
function catModule(oflags = 0, rights = 6n): Promise<Uint8Array> {
  return watToWasm(
    "cat.wat",
    `(module
    (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
    (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
    (import "wasi_snapshot_preview1" "path_open"
      (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
    (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
    (memory (export "memory") 1)
    (func (export "_start")
      (local $len i32) (local $err i32)
      (i32.store (i32.const 0) (i32.const 1024)) (i32.store (i32.const 4) (i32.const 512))
      (drop (call $fd_read (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 8)))
      (local.set $len (i32.load (i32.const 8)))
      (local.set $err (call $path_open (i32.const 3) (i32.const 0) (i32.const 1024) (local.get $len)
        (i32.const ${oflags}) (i64.const ${rights}) (i64.const 0) (i32.const 0) (i32.const 16)))
      (if (local.get $err) (then (call $exit (i32.add (i32.const 100) (local.get $err)))))
      (i32.store (i32.const 0) (i32.const 2048)) (i32.store (i32.const 4) (i32.const 4096))
      (local.set $err (call $fd_read (i32.load (i32.const 16)) (i32.const 0) (i32.const 1) (i32.const 8)))
      (if (local.get $err) (then (call $exit (i32.add (i32.const 200) (local.get $err)))))
      (i32.store (i32.const 0) (i32.const 2048)) (i32.store (i32.const 4) (i32.load (i32.const 8)))
      (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))`,
  );
}

async function fixture(): Promise<string> {
  await Deno.mkdir("/tmp/phase", { recursive: true });
  const dir = await Deno.makeTempDir({ dir: "/tmp/phase", prefix: "wasm-dir-" });
  await Deno.mkdir(`${dir}/data/sub`, { recursive: true });
  await Deno.writeTextFile(`${dir}/data/a.txt`, "hello from disk");
  await Deno.writeTextFile(`${dir}/data/sub/b.txt`, "b");
  await Deno.writeTextFile(`${dir}/secret.txt`, "outside the grant");
  await Deno.symlink(`${dir}/secret.txt`, `${dir}/data/escape`);
  await Deno.symlink("a.txt", `${dir}/data/inner`);
  await Deno.symlink("..", `${dir}/data/up`);
  return dir;
}

Deno.test("TM-10 path traversal: a granted directory is readable, nothing outside it is", async () => {
  const dir = await fixture();
  try {
    const module = await catModule();
    const grant = await resolveDirGrant(`${dir}/data`);
    const cat = async (path: string) => {
      const r = await runJob({ module, input: enc.encode(path), dir: grant });
      return r.outcome === "ok" ? dec.decode(r.stdout) : r.exitCode;
    };
    assertEquals(await cat("a.txt"), "hello from disk");
    assertEquals(await cat("./sub/b.txt"), "b");
    assertEquals(await cat("../secret.txt"), 176, "'..' is not capable");
    assertEquals(await cat("sub/../a.txt"), 176);
    assertEquals(await cat(`${dir}/secret.txt`), 176, "absolute paths are not capable");
    assertEquals(await cat("escape"), 132, "symlink out: ELOOP");
    assertEquals(await cat("inner"), 132, "symlinks are not followed at all");
    assertEquals(await cat("up/secret.txt"), 132);
    assertEquals(await cat("missing"), 144, "ENOENT");
    assertEquals(await cat("sub"), 231, "a directory opens, but reads give EISDIR");
    // Read-only: creating, truncating or asking for write rights is refused.
    const create = await runJob({
      module: await catModule(1),
      input: enc.encode("new.txt"),
      dir: grant,
    });
    assertEquals(create.exitCode, 176);
    const write = await runJob({
      module: await catModule(0, 64n),
      input: enc.encode("a.txt"),
      dir: grant,
    });
    assertEquals(write.exitCode, 176);
    assert(!(await Deno.stat(`${dir}/data/new.txt`).then(() => true, () => false)));
    // Without a grant there is no filesystem at all.
    const none = await runJob({ module, input: enc.encode("a.txt") });
    assertEquals(none.exitCode, 176);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("wasm run --dir: the grant is recorded in the receipt", async () => {
  const dir = await fixture();
  try {
    await Deno.writeFile(`${dir}/cat.wasm`, await catModule());
    const out = await new Deno.Command("deno", {
      args: [
        "task",
        "-q",
        "wasm",
        "run",
        `${dir}/cat.wasm`,
        "--input",
        "a.txt",
        "--dir",
        `${dir}/data::/in`,
        "--state",
        `${dir}/state`,
      ],
      cwd: ROOT,
      stdout: "piped",
      stderr: "piped",
      signal: AbortSignal.timeout(60_000),
    }).output();
    assertEquals(out.code, 0, dec.decode(out.stderr));
    assertEquals(dec.decode(out.stdout), "hello from disk");
    const [entry] = [...Deno.readDirSync(`${dir}/state/receipts`)];
    const receipt = verifyReceipt(
      Deno.readFileSync(`${dir}/state/receipts/${entry.name}`),
      "receipt",
    );
    assertEquals(receipt.document.grants, ["dir:ro:/in"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("granted directory: fd_readdir lists entries, fd_seek and filestat work", async () => {
  const dir = await fixture();
  try {
    const module = await watToWasm(
      "ls.wat",
      `(module
      (import "wasi_snapshot_preview1" "path_open"
        (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
      (import "wasi_snapshot_preview1" "fd_readdir" (func $readdir (param i32 i32 i32 i64 i32) (result i32)))
      (import "wasi_snapshot_preview1" "fd_seek" (func $seek (param i32 i64 i32 i32) (result i32)))
      (import "wasi_snapshot_preview1" "fd_filestat_get" (func $fstat (param i32 i32) (result i32)))
      (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
      (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
      (memory (export "memory") 1)
      (data (i32.const 512) "a.txt")
      (func $out (param $ptr i32) (param $len i32)
        (i32.store (i32.const 0) (local.get $ptr)) (i32.store (i32.const 4) (local.get $len))
        (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8))))
      (func (export "_start")
        (local $err i32)
        ;; the granted directory itself (empty path), as a directory
        (local.set $err (call $path_open (i32.const 3) (i32.const 0) (i32.const 600) (i32.const 0)
          (i32.const 2) (i64.const 16384) (i64.const 0) (i32.const 0) (i32.const 16)))
        (if (local.get $err) (then (call $exit (i32.add (i32.const 100) (local.get $err)))))
        (local.set $err (call $readdir (i32.load (i32.const 16)) (i32.const 4096) (i32.const 2048) (i64.const 0) (i32.const 20)))
        (if (local.get $err) (then (call $exit (i32.add (i32.const 200) (local.get $err)))))
        (call $out (i32.const 20) (i32.const 4))
        (call $out (i32.const 4096) (i32.load (i32.const 20)))
        ;; a.txt: seek to the end (its size), then its filestat
        (drop (call $path_open (i32.const 3) (i32.const 0) (i32.const 512) (i32.const 5)
          (i32.const 0) (i64.const 6) (i64.const 0) (i32.const 0) (i32.const 24)))
        (local.set $err (call $seek (i32.load (i32.const 24)) (i64.const 0) (i32.const 2) (i32.const 32)))
        (if (local.get $err) (then (call $exit (i32.add (i32.const 300) (local.get $err)))))
        (call $out (i32.const 32) (i32.const 8))
        (local.set $err (call $fstat (i32.load (i32.const 24)) (i32.const 1024)))
        (if (local.get $err) (then (call $exit (i32.add (i32.const 400) (local.get $err)))))
        (call $out (i32.const 1024) (i32.const 64))))`,
    );
    const r = await runJob({
      module,
      input: new Uint8Array(0),
      dir: await resolveDirGrant(`${dir}/data`),
    });
    assertEquals([r.outcome, r.error], ["ok", ""]);
    const v = new DataView(r.stdout.buffer);
    const used = v.getUint32(0, true);
    const names: [string, number][] = [];
    for (let at = 4; at < 4 + used;) {
      const len = v.getUint32(at + 16, true);
      names.push([dec.decode(r.stdout.subarray(at + 24, at + 24 + len)), v.getUint8(at + 20)]);
      at += 24 + len;
    }
    // Sorted; regular 4, directory 3, symlink 7.
    assertEquals(names, [["a.txt", 4], ["escape", 7], ["inner", 7], ["sub", 3], ["up", 7]]);
    const after = 4 + used;
    assertEquals(v.getBigUint64(after, true), 15n, "seek to end = size of 'hello from disk'");
    assertEquals(v.getUint8(after + 8 + 16), 4, "filestat filetype regular");
    assertEquals(v.getBigUint64(after + 8 + 32, true), 15n, "filestat size");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
