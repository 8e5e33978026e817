import {
  deepStrictEqual as assertEquals,
  match as assertMatch,
  ok as assert,
} from "node:assert/strict";
import wabtInit from "wabt";
import { watToWasm } from "./build.ts";
import { runAndSign } from "./cli.ts";
import { GROW_REFUSED_EXPORT, instrumentGrow } from "./_grow.ts";
import { capMemory } from "./_limits.ts";
import { HELLO_INPUT, HELLO_OUTPUT, helloWasmPath } from "./hello.ts";
import { verifyReceipt } from "./receipt.ts";
import { type JobLimits, type JobResult, runJob } from "./runner.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();
const EXIT = `(import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))`;
/** Longest the clang build may take, in milliseconds. */
const CLANG_TIMEOUT_MS = 60_000;
/** A 1 MiB cap: 16 pages. */
const SMALL: Partial<JobLimits> = { memoryBytes: 1024 * 1024 };

/** Runs a job through the signing path; returns its result and its verified receipt's outcome. */
async function signed(
  module: Uint8Array,
  limits: Partial<JobLimits>,
): Promise<{ result: JobResult; receipt: { outcome: string | undefined; error: string } }> {
  await Deno.mkdir("/tmp/phase", { recursive: true });
  const state = await Deno.makeTempDir({ dir: "/tmp/phase", prefix: "grow-test-" });
  try {
    const job = await runAndSign({
      module,
      input: new Uint8Array(0),
      limits,
      stateDir: state,
      private: false,
    });
    const files = [];
    for await (const e of Deno.readDir(`${state}/receipts`)) files.push(e.name);
    assertEquals(files.length, 1, "one receipt per job");
    const receipt = verifyReceipt(await Deno.readFile(`${state}/receipts/${files[0]}`), "receipt");
    assertEquals([receipt.outcome, receipt.error], [job.result.outcome, job.result.error]);
    return { result: job.result, receipt };
  } finally {
    await Deno.remove(state, { recursive: true });
  }
}

Deno.test("TM-17 forged receipt: a refused big memory.grow, then unreachable, is memory (the cap came first), and the receipt says so", async () => {
  // Memory stays at 1 page of a 16-page cap: only the refused grow shows the cap was hit.
  const module = await watToWasm(
    "refused.wat",
    `(module (memory 1)
      (func (export "_start") (drop (memory.grow (i32.const 1000))) unreachable))`,
  );
  const { result, receipt } = await signed(module, SMALL);
  assertEquals(receipt.outcome, "memory");
  assertEquals(result.exitCode, -1);
  assertMatch(
    receipt.error,
    /memory limit reached: a memory\.grow to 1001 pages was refused \(the job's cap: 16 pages\), then .*unreachable/,
  );
  // Only the first refusal counts: a later, smaller one does not replace it.
  const twice = await runJob({
    module: await watToWasm(
      "twice.wat",
      `(module (memory 1)
        (func (export "_start")
          (drop (memory.grow (i32.const 500))) (drop (memory.grow (i32.const 20))) unreachable))`,
    ),
    input: new Uint8Array(0),
    limits: SMALL,
  });
  assertEquals(twice.outcome, "memory");
  assertMatch(twice.error, /to 501 pages/);
});

Deno.test("TM-17 forged receipt: a memory.grow that succeeds, then a trap, stays a trap", async () => {
  for (const pages of [1, 15]) {
    // 15 fills the 16-page cap exactly: full, but nothing was refused.
    const module = await watToWasm(
      "grown.wat",
      `(module (memory 1)
        (func (export "_start")
          (if (i32.eq (memory.grow (i32.const ${pages})) (i32.const -1)) (then (return)))
          unreachable))`,
    );
    const { result, receipt } = await signed(module, SMALL);
    assertEquals(receipt.outcome, "trap", `grow by ${pages}`);
    assertMatch(result.error, /unreachable/);
    assert(!/grow not instrumented/.test(result.error), result.error);
  }
});

Deno.test("TM-17 forged receipt: a refused memory.grow the job handles is not terminal: exit 0 or a return is ok, exit 3 is exit", async () => {
  // The first terminal event decides: a refusal the job survives is not one.
  for (
    const [after, outcome, code] of [
      ["(call $exit (i32.const 0))", "ok", 0],
      ["", "ok", 0],
      ["(call $exit (i32.const 3))", "exit", 3],
    ] as const
  ) {
    const module = await watToWasm(
      "handled.wat",
      `(module ${EXIT} (memory 1)
        (func (export "_start")
          (if (i32.ne (memory.grow (i32.const 1000)) (i32.const -1)) (then unreachable))
          ${after}))`,
    );
    const { result, receipt } = await signed(module, SMALL);
    assertEquals([receipt.outcome, result.exitCode], [outcome, code], after);
  }
});

Deno.test("TM-17 forged receipt: a job's own export named like the host's probe is not read", async () => {
  // The job exports a non-zero global under the reserved name and traps:
  // the rewriter leaves it alone and the host does not trust that export.
  const module = await watToWasm(
    "own.wat",
    `(module (memory 1)
      (global (export "${GROW_REFUSED_EXPORT}") (mut i64) (i64.const 99))
      (func (export "_start") (drop (memory.grow (i32.const 1000))) unreachable))`,
  );
  const rewrite = instrumentGrow(module);
  assertEquals(rewrite.instrumented, false);
  assertMatch(rewrite.reason, /already exports/);
  const r = await runJob({ module, input: new Uint8Array(0), limits: SMALL });
  assertEquals(r.outcome, "trap");
  assertMatch(r.error, /grow not instrumented: the module already exports/);
});

Deno.test("TM-16 hostile WASM job: instrumented modules produce the same output (hello, the memory bomb, a wasi-libc program)", async () => {
  const hello = await Deno.readFile(helloWasmPath());
  // hello.wasm has no memory.grow: forced, it gets the probe all the same.
  assertEquals(instrumentGrow(hello).bytes, hello);
  const forced = instrumentGrow(hello, { always: true });
  assert(forced.instrumented && forced.sites === 0, forced.reason);
  const names = WebAssembly.Module.exports(await WebAssembly.compile(forced.bytes as BufferSource))
    .map((e) => e.name);
  assert(names.includes(GROW_REFUSED_EXPORT) && names.includes("_start"), names.join(","));
  for (const module of [hello, forced.bytes]) {
    const r = await runJob({ module, input: enc.encode(HELLO_INPUT) });
    assertEquals([r.outcome, dec.decode(r.stdout)], ["ok", HELLO_OUTPUT]);
  }
  // The runner's own jobs: the memory bomb (grows page by page, then writes
  // past its memory) ends as before, at its cap.
  const bomb = await watToWasm(
    "bomb.wat",
    `(module (memory 1)
      (func (export "_start")
        (loop $grow (br_if $grow (i32.ne (memory.grow (i32.const 1)) (i32.const -1))))
        (i32.store (i32.const 0x7ffffff0) (i32.const 1))))`,
  );
  assertEquals(instrumentGrow(capMemory(bomb, 128).bytes).sites, 1);
  const r = await runJob({ module: bomb, input: new Uint8Array(0), limits: SMALL });
  assertEquals(r.outcome, "memory");
  assertMatch(r.error, /16 pages/);
  // Real compiler output decodes in full: wasi-libc's malloc grows memory
  // (wasi_c_test.ts runs this program, instrumented, and checks its output).
  await Deno.mkdir("/tmp/phase", { recursive: true });
  const dir = await Deno.makeTempDir({ dir: "/tmp/phase", prefix: "grow-c-" });
  try {
    const built = await new Deno.Command("clang", {
      args: [
        "--target=wasm32-wasi",
        "--sysroot=/usr",
        "-O2",
        "-Wl,--strip-all",
        "-o",
        `${dir}/c.wasm`,
        new URL("./testdata/wasi_c.c", import.meta.url).pathname,
      ],
      stderr: "piped",
      signal: AbortSignal.timeout(CLANG_TIMEOUT_MS),
    }).output();
    assert(built.success, dec.decode(built.stderr));
    const c = instrumentGrow(capMemory(await Deno.readFile(`${dir}/c.wasm`), 1024).bytes);
    assert(c.instrumented && c.sites >= 1, c.reason);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/** Every kind of immediate the decoder must step over, with 0x40 bytes where a naive scan would see memory.grow. */
const ROUND_TRIP = `(module
  (type $ii (func (param i32) (result i32)))
  (memory 1 8)
  (table $t 4 funcref)
  (elem (table $t) (i32.const 0) func $id $sq)
  (data $d "\\40\\00\\40\\00")
  (global $g (mut i32) (i32.const -64))
  (func $id (type $ii) (local.get 0))
  (func $sq (type $ii) (i32.mul (local.get 0) (local.get 0)))
  (func (export "run") (param $x i32) (result i64) (local $acc i64) (local $v v128)
    (block (nop))
    (block $b (block $a (block
      (br_table 0 $a $b (i32.and (local.get $x) (i32.const 3))))))
    (local.set $acc (i64.const -64))
    (local.set $acc (i64.add (local.get $acc) (i64.extend_i32_s (i32.const 64))))
    (local.set $acc (i64.add (local.get $acc) (i64.const 0x4000400040)))
    (i32.store offset=64 (i32.const 0) (i32.const -64))
    (local.set $acc (i64.add (local.get $acc) (i64.extend_i32_s (i32.load offset=64 (i32.const 0)))))
    (local.set $acc (i64.add (local.get $acc)
      (i64.extend_i32_s (call_indirect $t (type $ii) (i32.const 9) (i32.const 1)))))
    (local.set $acc (i64.add (local.get $acc) (i64.extend_i32_s (memory.grow (i32.const 64)))))
    (local.set $acc (i64.add (local.get $acc) (i64.extend_i32_s (memory.size))))
    (local.set $acc (i64.add (local.get $acc) (i64.extend_i32_s (memory.grow (i32.const 0x40)))))
    (local.set $acc (i64.add (local.get $acc) (i64.extend_i32_s (i32.trunc_sat_f32_s (f32.const 2)))))
    (local.set $acc (i64.add (local.get $acc) (i64.trunc_sat_f64_u (f64.const 64.25))))
    (memory.fill (i32.const 128) (i32.const 0x40) (i32.const 16))
    (memory.copy (i32.const 256) (i32.const 128) (i32.const 16))
    (memory.init $d (i32.const 512) (i32.const 0) (i32.const 4))
    (data.drop $d)
    (local.set $acc (i64.add (local.get $acc) (i64.load offset=512 (i32.const 0))))
    (local.set $acc (i64.add (local.get $acc)
      (i64.extend_i32_s (table.grow $t (ref.func $id) (i32.const 0x40)))))
    (local.set $acc (i64.add (local.get $acc) (i64.extend_i32_s (table.size $t))))
    (table.fill $t (i32.const 2) (ref.null func) (i32.const 1))
    (local.set $acc (i64.add (local.get $acc) (i64.extend_i32_s (ref.is_null (table.get $t (i32.const 2))))))
    (global.set $g (i32.add (global.get $g) (i32.const 1)))
    (local.set $acc (i64.add (local.get $acc) (i64.extend_i32_s (global.get $g))))
    (local.set $v (v128.const i8x16 0x40 0 0x40 0 0x40 0 0x40 0 0x40 0 0x40 0 0x40 0 0x40 0))
    (local.set $v (i8x16.shuffle 0 2 4 6 8 10 12 14 1 3 5 7 9 11 13 15 (local.get $v) (local.get $v)))
    (local.set $v (v128.load8_lane offset=64 15 (i32.const 0) (local.get $v)))
    (v128.store offset=1024 (i32.const 0) (i32x4.add (local.get $v) (v128.load offset=128 (i32.const 0))))
    (local.set $acc (i64.add (local.get $acc) (i64x2.extract_lane 1 (v128.load offset=1024 (i32.const 0)))))
    (local.set $acc (i64.add (local.get $acc) (i64.extend_i32_s (i8x16.extract_lane_u 0 (local.get $v)))))
    (local.set $acc (i64.add (local.get $acc) (i64.extend_i32_s (select (i32.const 1) (i32.const 2) (local.get $x)))))
    (local.get $acc)))`;

Deno.test("grow rewriter: round-trips blocks of empty type, 0x40 inside LEBs and immediates, br_table, call_indirect, 0xFC and SIMD", async () => {
  const module = await watToWasm("roundtrip.wat", ROUND_TRIP);
  const rewrite = instrumentGrow(module);
  // Exactly the two real memory.grow: a byte scan would find many more 0x40s.
  assertEquals([rewrite.instrumented, rewrite.sites, rewrite.reason], [true, 2, ""]);
  const zeroForty = module.reduce(
    (n, b, i) => n + (b === 0x40 && module[i + 1] === 0x00 ? 1 : 0),
    0,
  );
  assert(zeroForty > 2, `only ${zeroForty} 40 00 pairs`);
  const run = async (bytes: Uint8Array, x: number) => {
    const inst = await WebAssembly.instantiate(await WebAssembly.compile(bytes as BufferSource));
    return (inst.exports.run as (x: number) => bigint)(x);
  };
  for (const x of [0, 1, 2, 7]) {
    assertEquals(await run(rewrite.bytes, x), await run(module, x), `run(${x})`);
  }
  // The second grow (to 1 + 64 + 64 pages) passes the declared maximum of 8:
  // the probe holds the first refused request.
  const inst = await WebAssembly.instantiate(
    await WebAssembly.compile(rewrite.bytes as BufferSource),
  );
  (inst.exports.run as (x: number) => bigint)(0);
  assertEquals((inst.exports[GROW_REFUSED_EXPORT] as WebAssembly.Global).value, 65n);
  // Sections the module lacks (globals, exports) are created in their place.
  const bare = await watToWasm(
    "bare.wat",
    `(module (memory 1) (func $f (drop (memory.grow (i32.const 1)))) (start $f))`,
  );
  const b = instrumentGrow(bare);
  assert(b.instrumented, b.reason);
  const exports = WebAssembly.Module.exports(await WebAssembly.compile(b.bytes as BufferSource));
  assertEquals(exports, [{ name: GROW_REFUSED_EXPORT, kind: "global" }]);
});

/** Assembles WAT without validation: for modules that are meant to be invalid or need a feature wabt lacks. */
async function unvalidated(source: string): Promise<Uint8Array> {
  const wabt = await wabtInit();
  const m = wabt.parseWat("raw.wat", source);
  try {
    return new Uint8Array(m.toBinary({}).buffer);
  } finally {
    m.destroy();
  }
}

Deno.test("TM-17 forged receipt: a module the rewriter cannot decode runs uninstrumented, never rejected; an invalid one stays invalid", async () => {
  // ref.as_non_null (0xd4, typed function references) is valid in V8 and
  // unknown to the decoder: patch `ref.is_null` (0xd1) into it.
  const base = await watToWasm(
    "unknown.wat",
    `(module (memory 1)
      (elem declare func $s)
      (func $s (export "_start") (drop (ref.is_null (ref.func $s)))
        (drop (memory.grow (i32.const 1000))) unreachable))`,
  );
  const at = base.findIndex((b, i) => b === 0xd2 && base[i + 1] === 0x00 && base[i + 2] === 0xd1);
  assert(at > 0);
  const module = base.slice();
  module[at + 2] = 0xd4;
  assert(await WebAssembly.validate(module as BufferSource), "V8 accepts ref.as_non_null");
  const rewrite = instrumentGrow(module);
  assertEquals(rewrite.instrumented, false);
  assertMatch(rewrite.reason, /opcode 0xd4/);
  const r = await runJob({ module, input: new Uint8Array(0), limits: SMALL });
  // Today's behaviour, with the reason: a trap, not a rejection.
  assertEquals(r.outcome, "trap");
  assertMatch(r.error, /unreachable.*grow not instrumented: opcode 0xd4/);
  // A call to the index the new function would take: invalid before the
  // rewrite, and must not become valid through it.
  const invalid = await unvalidated(
    `(module (memory 1) (func (export "_start") (drop (memory.grow (i32.const 1))) (call 1)))`,
  );
  assertEquals(await WebAssembly.validate(invalid as BufferSource), false);
  const ri = instrumentGrow(invalid);
  assertEquals(ri.instrumented, false);
  assertMatch(ri.reason, /function index out of range/);
  const job = await runJob({ module: invalid, input: new Uint8Array(0) });
  assertEquals(job.outcome, "invalid_module");
  // Malformed bytes: left as they are for compile to reject, never a throw.
  for (
    const junk of [module.subarray(0, module.length - 3), enc.encode("\0asm\x01\0\0\0\x0a\xff")]
  ) {
    const j = instrumentGrow(junk);
    assertEquals([j.instrumented, j.bytes], [false, junk]);
    assert(j.reason.length > 0);
  }
});
