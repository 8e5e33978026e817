import {
  deepStrictEqual as assertEquals,
  match as assertMatch,
  ok as assert,
} from "node:assert/strict";
import { watToWasm } from "./build.ts";
import { runAndSign } from "./cli.ts";
import { HELLO_INPUT, HELLO_OUTPUT, helloWasmPath } from "./hello.ts";
import { verifyReceipt } from "./receipt.ts";
import { type JobResult, runJob } from "./runner.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();
const WASI =
  `(import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))`;

async function wat(source: string): Promise<Uint8Array> {
  return await watToWasm("fixture.wat", source);
}

async function tempState(): Promise<string> {
  await Deno.mkdir("/tmp/phase", { recursive: true });
  return await Deno.makeTempDir({ dir: "/tmp/phase", prefix: "wasm-test-" });
}

/** The host still runs the real hello job correctly after a hostile one. */
async function assertHostUnaffected(): Promise<void> {
  const r = await runJob({
    module: await Deno.readFile(helloWasmPath()),
    input: enc.encode(HELLO_INPUT),
  });
  assertEquals(r.outcome, "ok");
  assertEquals(dec.decode(r.stdout), HELLO_OUTPUT);
}

/** Runs a hostile job through the signing path and checks its stored receipt. */
async function hostile(
  module: Uint8Array,
  limits: Parameters<typeof runJob>[0]["limits"] = {},
): Promise<{ result: JobResult; outcome: string | undefined; files: string[] }> {
  const state = await tempState();
  try {
    const job = await runAndSign({
      module,
      input: enc.encode("x"),
      limits,
      stateDir: state,
      private: false,
    });
    const files = [];
    for await (const e of Deno.readDir(`${state}/receipts`)) files.push(e.name);
    assertEquals(files.length, 1, "one receipt per job");
    const receipt = verifyReceipt(await Deno.readFile(`${state}/receipts/${files[0]}`), "receipt");
    assertEquals(receipt.outcome, job.result.outcome);
    assertEquals(receipt.exitCode, job.result.exitCode);
    await assertHostUnaffected();
    return { result: job.result, outcome: receipt.outcome, files };
  } finally {
    await Deno.remove(state, { recursive: true });
  }
}

Deno.test("hello job reverses its input, UTF-8 sequences kept whole", async () => {
  const module = await Deno.readFile(helloWasmPath());
  const r = await runJob({ module, input: enc.encode(HELLO_INPUT) });
  assertEquals(r.outcome, "ok");
  assertEquals(r.exitCode, 0);
  assertEquals(dec.decode(r.stdout), "dlroW ,olleH");
  const r2 = await runJob({ module, input: enc.encode("añ€😀b") });
  assertEquals(dec.decode(r2.stdout), "b😀€ña");
  const r3 = await runJob({ module, input: new Uint8Array(0) });
  assertEquals(r3.stdout.length, 0);
});

Deno.test("WASI subset: args, clocks, random, stderr, exit status", async () => {
  const module = await wat(`(module
    (import "wasi_snapshot_preview1" "args_sizes_get" (func $asg (param i32 i32) (result i32)))
    (import "wasi_snapshot_preview1" "args_get" (func $ag (param i32 i32) (result i32)))
    (import "wasi_snapshot_preview1" "clock_time_get" (func $ct (param i32 i64 i32) (result i32)))
    (import "wasi_snapshot_preview1" "random_get" (func $rg (param i32 i32) (result i32)))
    (import "wasi_snapshot_preview1" "path_open" (func $po (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
    (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
    ${WASI}
    (memory (export "memory") 1)
    (func (export "_start")
      ;; 100: argc, 104: argv buf size, 200..: argv pointers, 300..: argv strings
      (drop (call $asg (i32.const 100) (i32.const 104)))
      (drop (call $ag (i32.const 200) (i32.const 300)))
      (drop (call $ct (i32.const 0) (i64.const 1) (i32.const 400)))
      (drop (call $rg (i32.const 408) (i32.const 16)))
      ;; path_open's errno (76, ENOTCAPABLE) at 424
      (i32.store (i32.const 424)
        (call $po (i32.const 3) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i64.const 0) (i64.const 0) (i32.const 0) (i32.const 0)))
      ;; stdout: argc(4) argvsize(4) time(8) random(16) errno(4) then the argv strings
      (i32.store (i32.const 0) (i32.const 100)) (i32.store (i32.const 4) (i32.const 8))
      (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
      (i32.store (i32.const 0) (i32.const 400)) (i32.store (i32.const 4) (i32.const 28))
      (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
      (i32.store (i32.const 0) (i32.const 300)) (i32.store (i32.const 4) (i32.load (i32.const 104)))
      (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
      (i32.store (i32.const 0) (i32.const 300)) (i32.store (i32.const 4) (i32.const 3))
      (drop (call $fd_write (i32.const 2) (i32.const 0) (i32.const 1) (i32.const 8)))
      (call $exit (i32.const 3))))`);
  const before = BigInt(Date.now()) * 1_000_000n;
  const r = await runJob({ module, input: new Uint8Array(0), args: ["job.wasm", "--flag"] });
  assertEquals(r.outcome, "exit");
  assertEquals(r.exitCode, 3);
  const v = new DataView(r.stdout.buffer);
  assertEquals(v.getUint32(0, true), 2);
  assertEquals(v.getUint32(4, true), "job.wasm\0--flag\0".length);
  const ns = v.getBigUint64(8, true);
  assert(ns >= before && ns <= BigInt(Date.now() + 1) * 1_000_000n, "realtime clock in ns");
  assert(r.stdout.subarray(16, 32).some((b) => b !== 0), "random bytes");
  assertEquals(v.getUint32(32, true), 76, "no filesystem: ENOTCAPABLE");
  assertEquals(dec.decode(r.stdout.subarray(36)), "job.wasm\0--flag\0");
  assertEquals(dec.decode(r.stderr), "job");
});

Deno.test("TM-16 hostile WASM job: an invalid module is refused, with a receipt", async () => {
  const { result, outcome } = await hostile(enc.encode("\0asm\x01\0\0\0garbage"));
  assertEquals(outcome, "invalid_module");
  assertEquals(result.exitCode, -1);
  assert(result.error.length > 0);
  const notWasm = await hostile(enc.encode("#!/bin/sh\necho hi\n"));
  assertEquals(notWasm.outcome, "invalid_module");
  assertMatch(notWasm.result.error, /magic/);
});

Deno.test("TM-16 hostile WASM job: a trap ends the job, with a receipt", async () => {
  const { result, outcome } = await hostile(
    await wat(`(module (memory 1) (func (export "_start") unreachable))`),
  );
  assertEquals(outcome, "trap");
  assertMatch(result.error, /unreachable/);
});

Deno.test("TM-16 hostile WASM job: an infinite loop is stopped at the timeout, with a receipt", async () => {
  const t0 = performance.now();
  const { result, outcome } = await hostile(
    await wat(`(module (func (export "_start") (loop $l (br $l))))`),
    { timeoutMs: 300 },
  );
  assertEquals(outcome, "timeout");
  assert(performance.now() - t0 < 5_000, "stopped near the timeout");
  assert(result.wallUs >= 300_000 && result.wallUs < 2_000_000, `wall ${result.wallUs} us`);
});

Deno.test("TM-16 hostile WASM job: a memory bomb stops at the memory cap, with a receipt", async () => {
  // Grows until refused, then writes far beyond what it got.
  const bomb = await wat(`(module (memory 1)
    (func (export "_start")
      (loop $grow (br_if $grow (i32.ne (memory.grow (i32.const 1)) (i32.const -1))))
      (i32.store (i32.const 0x7ffffff0) (i32.const 1))))`);
  const { result, outcome } = await hostile(bomb, { memoryBytes: 8 * 1024 * 1024 });
  assertEquals(outcome, "memory");
  assertMatch(result.error, /128 pages/);
  // A module that asks for more than the cap at start is refused before it runs.
  const greedy = await hostile(await wat(`(module (memory 2000) (func (export "_start")))`), {
    memoryBytes: 8 * 1024 * 1024,
  });
  assertEquals(greedy.outcome, "memory");
  // A declared maximum above the cap is clamped, not trusted.
  const declared = await hostile(
    await wat(`(module (memory 1 65536)
      (func (export "_start")
        (if (i32.ne (memory.grow (i32.const 1000)) (i32.const -1)) (then unreachable))))`),
    { memoryBytes: 1024 * 1024 },
  );
  assertEquals(declared.outcome, "ok");
});

Deno.test("TM-16 hostile WASM job: huge output is cut at the output cap, with a receipt", async () => {
  const module = await wat(`(module ${WASI} (memory 2)
    (func (export "_start")
      (i32.store (i32.const 0) (i32.const 1024)) (i32.store (i32.const 4) (i32.const 65536))
      (loop $l (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8))) (br $l))))`);
  const { result, outcome } = await hostile(module, { outputBytes: 100_000, timeoutMs: 5_000 });
  assertEquals(outcome, "output");
  assertEquals(result.stdout.length, 100_000);
});

Deno.test("TM-16 hostile WASM job: an import that was not granted is refused, with a receipt", async () => {
  const env = await hostile(
    await wat(`(module
    (import "env" "host_exec" (func (param i32) (result i32)))
    (func (export "_start")))`),
  );
  assertEquals(env.outcome, "import_denied");
  assertMatch(env.result.error, /env\.host_exec/);
  const mem = await hostile(
    await wat(`(module
    (import "wasi_snapshot_preview1" "memory" (memory 1))
    (func (export "_start")))`),
  );
  assertEquals(mem.outcome, "import_denied");
  const unknown = await hostile(
    await wat(`(module
    (import "wasi_snapshot_preview1" "sock_open" (func (param i32) (result i32)))
    (func (export "_start")))`),
  );
  assertEquals(unknown.outcome, "import_denied");
});

Deno.test("TM-16 hostile WASM job: code in the job worker holds no permission", async () => {
  // Component glue is JS running in the job worker: make it hostile and see
  // what the worker lets it do. Only the JCO_DEBUG variable is readable.
  const glue = `export async function instantiate() {
    const out = [];
    const probes = [
      () => Deno.readTextFile("/etc/hostname"),
      () => Deno.writeTextFile("/tmp/phase/pwned", "x"),
      () => Deno.env.get("HOME"),
      () => fetch("http://127.0.0.1:9/"),
      () => new Deno.Command("true").output(),
      () => Deno.hostname(),
      () => import("file:///etc/passwd"),
      () => Deno.env.get("JCO_DEBUG"),
    ];
    for (const f of probes) {
      try { await f(); out.push("allowed"); } catch (e) { out.push(e.name); }
    }
    return { run: () => new TextEncoder().encode(out.join(",")) };
  }`;
  const r = await runJob({
    module: new Uint8Array(8),
    input: new Uint8Array(0),
    component: { glue, coreModules: {} },
  });
  assertEquals(r.outcome, "ok");
  const got = dec.decode(r.stdout).split(",");
  assertEquals(got.length, 8);
  got.slice(0, 7).forEach((g, i) => assert(g !== "allowed", `probe ${i} was allowed`));
  assertEquals(got.filter((g) => g === "NotCapable").length >= 5, true, got.join(","));
  assertEquals(got[7], "allowed");
  await assertHostUnaffected();
});

Deno.test("TM-16 hostile WASM job: tables and GC objects cannot grow outside the cap", async () => {
  // Grows its table until refused, then exits with the table's size.
  const tables = await wat(`(module
    (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
    (table $t 1 funcref)
    (func (export "_start")
      (loop $g (br_if $g (i32.ne (table.grow $t (ref.null func) (i32.const 10000)) (i32.const -1))))
      (call $exit (table.size $t))))`);
  const grown = await runJob({ module: tables, input: new Uint8Array(0) });
  assertEquals(grown.outcome, "exit");
  assert(grown.exitCode <= 100_000, `table grew to ${grown.exitCode}`);
  const huge = await runJob({
    module: await wat(`(module (table 200000 funcref) (func (export "_start")))`),
    input: new Uint8Array(0),
  });
  assertEquals(huge.outcome, "memory");
  // GC arrays live on the JS heap: refused before anything runs.
  const gc = await hostile(gcBinary());
  assertEquals(gc.outcome, "invalid_module");
  assertMatch(gc.result.error, /GC/);
});

/** A minimal module with one GC array type, hand-encoded (wabt has no GC text format). */
function gcBinary(): Uint8Array {
  // type section: 1 type, array (0x5e) of mutable i8 (0x78 0x01)
  return new Uint8Array([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0, 1, 4, 1, 0x5e, 0x78, 0x01]);
}

Deno.test("TM-16 hostile WASM job: catching exit or the output cap does not change the outcome", async () => {
  const wabt = await (await import("wabt")).default();
  const eh = (source: string) => {
    const m = wabt.parseWat("eh.wat", source, { exceptions: true });
    try {
      m.resolveNames();
      m.validate();
      return new Uint8Array(m.toBinary({}).buffer);
    } finally {
      m.destroy();
    }
  };
  const exitThenWrite = eh(`(module
    (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
    ${WASI}
    (memory 1) (data (i32.const 16) "after")
    (func (export "_start")
      (try (do (call $exit (i32.const 0))) (catch_all))
      (i32.store (i32.const 0) (i32.const 16)) (i32.store (i32.const 4) (i32.const 5))
      (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))`);
  const r = await runJob({ module: exitThenWrite, input: new Uint8Array(0) });
  assertEquals([r.outcome, r.exitCode, r.stdout.length], ["ok", 0, 0]);
  const floodThenReturn = eh(`(module ${WASI} (memory 1)
    (func (export "_start")
      (i32.store (i32.const 4) (i32.const 4096))
      (try (do (loop $l (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8))) (br $l)))
        (catch_all))))`);
  const f = await runJob({
    module: floodThenReturn,
    input: new Uint8Array(0),
    limits: { outputBytes: 10_000 },
  });
  assertEquals([f.outcome, f.stdout.length], ["output", 10_000]);
});

Deno.test("WASI subset: poll_oneoff sleeps on a clock and reports stdin readable", async () => {
  const module = await wat(`(module
    (import "wasi_snapshot_preview1" "clock_time_get" (func $ct (param i32 i64 i32) (result i32)))
    (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll (param i32 i32 i32 i32) (result i32)))
    ${WASI}
    (memory (export "memory") 1)
    (func $sub (param $at i32) (param $userdata i64) (param $tag i32)
      (i64.store (local.get $at) (local.get $userdata))
      (i32.store8 (i32.add (local.get $at) (i32.const 8)) (local.get $tag)))
    (func (export "_start")
      ;; 1: a relative monotonic clock of 80 ms, userdata 7
      (call $sub (i32.const 1024) (i64.const 7) (i32.const 0))
      (i32.store (i32.const 1040) (i32.const 1))
      (i64.store (i32.const 1048) (i64.const 80000000))
      (drop (call $ct (i32.const 1) (i64.const 1) (i32.const 100)))
      (i32.store (i32.const 116) (call $poll (i32.const 1024) (i32.const 2048) (i32.const 1) (i32.const 120)))
      (drop (call $ct (i32.const 1) (i64.const 1) (i32.const 108)))
      ;; 2: stdin readable, userdata 9
      (call $sub (i32.const 1024) (i64.const 9) (i32.const 1))
      (i32.store (i32.const 1040) (i32.const 0))
      (drop (call $poll (i32.const 1024) (i32.const 2080) (i32.const 1) (i32.const 124)))
      ;; out: t0 t1 (16) errno nevents nevents2 (12) event1 (32) event2 (32)
      (i32.store (i32.const 0) (i32.const 100)) (i32.store (i32.const 4) (i32.const 28))
      (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
      (i32.store (i32.const 0) (i32.const 2048)) (i32.store (i32.const 4) (i32.const 64))
      (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))`);
  const r = await runJob({ module, input: enc.encode("abc") });
  assertEquals(r.outcome, "ok", r.error);
  const v = new DataView(r.stdout.buffer);
  const slept = Number(v.getBigUint64(8, true) - v.getBigUint64(0, true)) / 1e6;
  assert(slept >= 79 && slept < 2_000, `slept ${slept} ms`);
  assertEquals([v.getUint32(16, true), v.getUint32(20, true), v.getUint32(24, true)], [0, 1, 1]);
  assertEquals([v.getBigUint64(28, true), v.getUint16(36, true), v.getUint8(38)], [7n, 0, 0]);
  assertEquals([v.getBigUint64(60, true), v.getUint16(68, true), v.getUint8(70)], [9n, 0, 1]);
  assertEquals(v.getBigUint64(76, true), 3n, "stdin bytes left");
});

Deno.test("TM-16 hostile WASM job: a job sleeping forever is stopped at the timeout", async () => {
  const module = await wat(`(module
    (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll (param i32 i32 i32 i32) (result i32)))
    (memory (export "memory") 1)
    (func (export "_start")
      (i32.store (i32.const 1040) (i32.const 1))
      (i64.store (i32.const 1048) (i64.const 3600000000000))
      (drop (call $poll (i32.const 1024) (i32.const 2048) (i32.const 1) (i32.const 100)))))`);
  const t0 = performance.now();
  const r = await runJob({ module, input: new Uint8Array(0), limits: { timeoutMs: 300 } });
  assertEquals(r.outcome, "timeout");
  assert(performance.now() - t0 < 5_000);
  await assertHostUnaffected();
});

Deno.test("TM-16 hostile WASM job: a flood of empty iovecs ends at the write budget with a receipt; host memory stays bounded", async () => {
  // 500,000 zero-length iovecs per fd_write, forever: no byte of output, so
  // only counting calls and iovecs can end it before the timeout.
  const flood = (iovs: number) =>
    wat(`(module ${WASI} (memory 64)
    (func (export "_start")
      (loop $l
        (drop (call $fd_write (i32.const 1) (i32.const 16) (i32.const ${iovs}) (i32.const 8)))
        (br $l))))`);
  const rss0 = Deno.memoryUsage().rss;
  const t0 = performance.now();
  const { result, outcome } = await hostile(await flood(500_000), { timeoutMs: 5_000 });
  const rssGrowth = Deno.memoryUsage().rss - rss0;
  assertEquals(outcome, "output");
  assertMatch(result.error, /write calls and iovecs/);
  assertEquals(result.stdout.length, 0);
  assert(performance.now() - t0 < 4_000, "ended by the budget, not the timeout");
  assert(rssGrowth < 256 * 1024 * 1024, `host RSS grew ${rssGrowth} bytes`);
  // The largest legal iovec count floods the same way and meets the same end.
  const legal = await runJob({ module: await flood(1024), input: new Uint8Array(0) });
  assertEquals(legal.outcome, "output");
});

Deno.test("TM-16 hostile WASM job: more than IOV_MAX iovecs in one call is EINVAL", async () => {
  // fd_write and fd_read with 1025 iovecs: the job exits with the two errnos.
  const module = await wat(`(module ${WASI}
    (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
    (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
    (memory 1)
    (func (export "_start")
      (call $exit (i32.add
        (i32.mul (call $fd_write (i32.const 1) (i32.const 16) (i32.const 1025) (i32.const 8)) (i32.const 100))
        (call $fd_read (i32.const 0) (i32.const 16) (i32.const 1025) (i32.const 8))))))`);
  const r = await runJob({ module, input: enc.encode("x") });
  assertEquals([r.outcome, r.exitCode], ["exit", 28 * 100 + 28]);
});

/** Compiles WAT that uses exception handling (try/catch_all). */
async function ehWat(source: string): Promise<Uint8Array> {
  const wabt = await (await import("wabt")).default();
  const m = wabt.parseWat("eh.wat", source, { exceptions: true });
  try {
    m.resolveNames();
    m.validate();
    return new Uint8Array(m.toBinary({}).buffer);
  } finally {
    m.destroy();
  }
}

Deno.test("TM-17 misattributed outcome: memory at its cap, then an unrelated trap, is a trap", async () => {
  // One page of memory under a one-page cap from the start: full, never short.
  const { result, outcome } = await hostile(
    await wat(`(module (memory 1) (func (export "_start") unreachable))`),
    { memoryBytes: 64 * 1024 },
  );
  assertEquals(outcome, "trap");
  assertMatch(result.error, /unreachable/);
});

Deno.test("TM-17 misattributed outcome: a caught output-cap error, then a loop, is output with its stdout", async () => {
  const module = await ehWat(`(module ${WASI} (memory 1)
    (func (export "_start")
      (i32.store (i32.const 4) (i32.const 4096))
      (try (do (loop $l (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8))) (br $l)))
        (catch_all))
      (loop $spin (br $spin))))`);
  const t0 = performance.now();
  const { result, outcome } = await hostile(module, { outputBytes: 10_000, timeoutMs: 3_000 });
  assertEquals(outcome, "output");
  assertEquals(result.stdout.length, 10_000);
  assert(performance.now() - t0 < 2_500, "stopped at the event, not at the timeout");
});

Deno.test("TM-17 misattributed outcome: a caught proc_exit(0), then a trap or a loop, is ok with exit 0", async () => {
  for (const after of ["unreachable", "(loop $spin (br $spin))"]) {
    const module = await ehWat(`(module
      (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
      (memory 1)
      (func (export "_start")
        (try (do (call $exit (i32.const 0))) (catch_all))
        ${after}))`);
    const { result, outcome } = await hostile(module, { timeoutMs: 2_000 });
    assertEquals([outcome, result.exitCode, result.error], ["ok", 0, ""], after);
    assert(result.wallUs < 1_500_000, `${after}: stopped at the exit, not at the timeout`);
  }
});
