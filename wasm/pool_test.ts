/**
 * JobPool: workers started ahead of demand, the compile cache by digest and
 * memory cap, cancellation, and the reuse rule (a worker runs only jobs of
 * one submitter, one module and one set of limits, and none after a job it
 * did not end cleanly); the TM-16 limits hold for a job that runs a cached
 * module, or in a reused worker, exactly as for a fresh one.
 */
import {
  deepStrictEqual as assertEquals,
  match as assertMatch,
  ok as assert,
  rejects as assertRejects,
} from "node:assert/strict";
import { waitFor } from "../testing/mod.ts";
import { watToWasm } from "./build.ts";
import { HELLO_INPUT, HELLO_OUTPUT, helloWasmPath } from "./hello.ts";
import { JobPool, type JobPoolOptions, type JobResult, runJob } from "./runner.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();
/** Far below the spinning jobs' timeouts, far above a worker's stop, in ms. */
const STOP_WITHIN_MS = 2_000;
/** Timeout of the jobs that must be stopped some other way, in ms. */
const LONG_TIMEOUT_MS = 20_000;
/** Longest a worker's start or an idle deadline's timer may lag on a loaded host, in ms. */
const SETTLE_TIMEOUT_MS = 5_000;

async function withPool(
  fn: (pool: JobPool) => Promise<void>,
  opts: JobPoolOptions = {},
): Promise<void> {
  const pool = await JobPool.create({ workers: 2, ...opts });
  try {
    await fn(pool);
  } finally {
    pool.close();
  }
}

Deno.test("JobPool: hello runs, each module is compiled once per memory cap, and the pool refills to its size", async () => {
  const hello = await Deno.readFile(helloWasmPath());
  await withPool(async (pool) => {
    for (let i = 0; i < 3; i++) {
      const r = await pool.run({ module: hello, input: enc.encode(HELLO_INPUT) });
      assertEquals([r.outcome, dec.decode(r.stdout)], ["ok", HELLO_OUTPUT]);
    }
    assertEquals(pool.cached, 1);
    await pool.run({ module: hello, input: enc.encode("ab"), limits: { memoryBytes: 1 << 20 } });
    assertEquals(pool.cached, 2, "another memory cap is another compiled module");
    // A replacement worker starts after the job: wait for it, do not guess its time.
    await waitFor(() => pool.idle === 2, SETTLE_TIMEOUT_MS, "the pool to refill to its size");
  });
  await assertRejects(() => JobPool.create({ workers: 0 }), RangeError);
});

Deno.test("TM-16 hostile WASM job (pool): a cached module keeps the memory cap and the timeout", async () => {
  const bomb = await watToWasm(
    "bomb.wat",
    `(module (memory 1)
    (func (export "_start")
      (loop $grow (br_if $grow (i32.ne (memory.grow (i32.const 1)) (i32.const -1))))
      (i32.store (i32.const 0x7ffffff0) (i32.const 1))))`,
  );
  const spin = await watToWasm("spin.wat", `(module (func (export "_start") (loop $l (br $l))))`);
  await withPool(async (pool) => {
    for (let i = 0; i < 2; i++) { // the second run uses the cached compiled module
      const r = await pool.run({
        module: bomb,
        input: enc.encode("x"),
        limits: { memoryBytes: 8 << 20 },
      });
      assertEquals(r.outcome, "memory");
      assertMatch(r.error, /128 pages/);
    }
    assertEquals(pool.cached, 1);
    for (let i = 0; i < 2; i++) {
      const t0 = performance.now();
      const r = await pool.run({
        module: spin,
        input: new Uint8Array(0),
        limits: { timeoutMs: 300 },
      });
      assertEquals(r.outcome, "timeout");
      assert(performance.now() - t0 < STOP_WITHIN_MS);
    }
    // The host is unaffected and the pool still serves.
    const hello = await Deno.readFile(helloWasmPath());
    const ok = await pool.run({ module: hello, input: enc.encode(HELLO_INPUT) });
    assertEquals(dec.decode(ok.stdout), HELLO_OUTPUT);
  });
});

Deno.test("TM-22 cancelled job: an AbortSignal stops a running job at once (outcome cancelled), in a pool or not", async () => {
  const spin = await watToWasm("spin.wat", `(module (func (export "_start") (loop $l (br $l))))`);
  await withPool(async (pool) => {
    for (const run of [(s: Parameters<typeof runJob>[0]) => pool.run(s), runJob]) {
      const ac = new AbortController();
      const t0 = performance.now();
      setTimeout(() => ac.abort(), 200);
      const r = await run({
        module: spin,
        input: new Uint8Array(0),
        limits: { timeoutMs: LONG_TIMEOUT_MS },
        signal: ac.signal,
      });
      assertEquals(r.outcome, "cancelled");
      assert(performance.now() - t0 < STOP_WITHIN_MS, "stopped long before its timeout");
      // Already aborted: never started.
      const again = await run({ module: spin, input: new Uint8Array(0), signal: ac.signal });
      assertEquals([again.outcome, again.exitCode], ["cancelled", -1]);
    }
  });
});

/**
 * One module whose behaviour its first input byte picks: none: return at
 * once; "e": proc_exit(3); "l": loop forever; "d": recurse without end; "b":
 * grow memory to its cap, then store past it; any other: return. The hostile runs share the
 * benign run's module digest, so they may land in its reused worker.
 */
const SWITCH_WAT = `(module
  (import "wasi_snapshot_preview1" "fd_read" (func $read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (func $deep (call $deep))
  (func (export "_start") (local $c i32)
    (i32.store (i32.const 0) (i32.const 16))
    (i32.store (i32.const 4) (i32.const 1))
    (drop (call $read (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 8)))
    (if (i32.eqz (i32.load (i32.const 8))) (then (return)))
    (local.set $c (i32.load8_u (i32.const 16)))
    (if (i32.eq (local.get $c) (i32.const 101)) (then (call $exit (i32.const 3))))
    (if (i32.eq (local.get $c) (i32.const 108)) (then (loop $l (br $l))))
    (if (i32.eq (local.get $c) (i32.const 100)) (then (call $deep)))
    (if (i32.eq (local.get $c) (i32.const 98)) (then
      (loop $grow (br_if $grow (i32.ne (memory.grow (i32.const 1)) (i32.const -1))))
      (i32.store (i32.const 0x7ffffff0) (i32.const 1))))))`;

/** The worker that ran `r`, as the worker reported itself (it must have). */
function wk(r: JobResult): { id: string; job: number } {
  assert(r.worker, `no worker in the result (${r.outcome})`);
  return r.worker;
}

/** Timeout of the reuse tests' jobs, in ms: far above a no-op's run under load. */
const REUSE_TIMEOUT_MS = 3_000;

Deno.test("TM-16 hostile WASM job (reused worker): a job of another submitter or of another module never runs in a worker that ran a job; the same submitter's same module does, up to the cap", async () => {
  const sw = await watToWasm("switch.wat", SWITCH_WAT);
  const hello = await Deno.readFile(helloWasmPath());
  const limits = { timeoutMs: REUSE_TIMEOUT_MS };
  const none = new Uint8Array(0);
  await withPool(async (pool) => {
    const run = (module: Uint8Array, tenant: string | undefined, input = none, l = limits) =>
      pool.run({ module, input, tenant, limits: l });
    const a1 = await run(sw, "a");
    assertEquals([a1.outcome, wk(a1).job], ["ok", 1], "a fresh worker");
    assertEquals(pool.reusable, 1);
    // Each of these would find a's worker kept if the rule let it: the
    // worker's own id and job count say it never ran anything before.
    const others = [
      await run(sw, "b"), // another submitter, same module
      await run(hello, "a", enc.encode(HELLO_INPUT)), // same submitter, another module
      await run(sw, "a", none, { timeoutMs: REUSE_TIMEOUT_MS + 1 }), // other limits
      await pool.run({
        module: sw,
        input: none,
        tenant: "a",
        limits: { ...limits, memoryBytes: 1 << 20 },
      }),
      await run(sw, undefined), // no tenant: never reused
    ];
    for (const [i, r] of others.entries()) {
      assertEquals(wk(r).job, 1, `job ${i} ran in a worker that had run a job`);
      assert(wk(r).id !== wk(a1).id, `job ${i} ran in a's worker`);
    }
    const ids = new Set([wk(a1).id, ...others.map((r) => wk(r).id)]);
    assertEquals(ids.size, others.length + 1, "every one in its own worker");
    // The same submitter's same module with the same limits: a's worker.
    const a2 = await run(sw, "a", enc.encode("xy")); // another input: the same class
    assertEquals(a2.worker, { id: wk(a1).id, job: 2 });
    const a3 = await run(sw, "a");
    assertEquals(a3.worker, { id: wk(a1).id, job: 3 });
    // b's worker was kept for b too, and still serves only b.
    const b2 = await run(sw, "b");
    assertEquals(b2.worker, { id: wk(others[0]).id, job: 2 });
  }, { jobsPerWorker: 3, workers: 6 }); // room to keep every worker above
  await withPool(async (pool) => {
    const seen: string[] = [];
    for (let i = 0; i < 4; i++) {
      const r = await pool.run({ module: sw, input: none, tenant: "a", limits });
      seen.push(`${wk(r).id}#${wk(r).job}`);
    }
    const first = seen[0].split("#")[0];
    assertEquals(seen.slice(0, 3), [1, 2, 3].map((n) => `${first}#${n}`));
    assert(
      seen[3].endsWith("#1") && !seen[3].startsWith(first),
      "a worker runs at most jobsPerWorker jobs",
    );
    assertEquals(pool.reusable, 1);
  }, { jobsPerWorker: 3 });
  await withPool(async (pool) => {
    const r1 = await pool.run({ module: sw, input: none, tenant: "a", limits });
    const r2 = await pool.run({ module: sw, input: none, tenant: "a", limits });
    assertEquals(
      [wk(r1).job, wk(r2).job],
      [1, 1],
      "jobsPerWorker 1: a fresh worker per job",
    );
    assertEquals(pool.reusable, 0);
  }, { jobsPerWorker: 1 });
  await withPool(async (pool) => {
    const r1 = await pool.run({ module: sw, input: none, tenant: "a", limits });
    assertEquals(pool.reusable, 1);
    await waitFor(() => pool.reusable === 0, SETTLE_TIMEOUT_MS, "the idle worker's deadline");
    const r2 = await pool.run({ module: sw, input: none, tenant: "a", limits });
    assertEquals(wk(r2).job, 1);
    assert(wk(r2).id !== wk(r1).id);
  }, { reuseIdleMs: 100 });
});

Deno.test("TM-16 hostile WASM job (reused worker): after a proc_exit, a timeout, a cancellation, a trap or the memory cap, the worker is never reused", async () => {
  const sw = await watToWasm("switch.wat", SWITCH_WAT);
  const limits = { timeoutMs: 1_000, memoryBytes: 8 << 20 };
  const cases: [string, string, boolean][] = [
    ["exit", "e", false], // proc_exit reports from inside the job's call: it may go on (TM-17)
    ["timeout", "l", false],
    ["cancelled", "l", true],
    ["trap", "d", false],
    ["memory", "b", false],
  ];
  for (const [outcome, input, cancel] of cases) {
    await withPool(async (pool) => {
      const run = (input: string, signal?: AbortSignal) =>
        pool.run({ module: sw, input: enc.encode(input), tenant: "a", limits, signal });
      const warm = await run("");
      assertEquals([warm.outcome, pool.reusable], ["ok", 1]);
      const ac = new AbortController();
      if (cancel) setTimeout(() => ac.abort(), 200);
      const bad = run(input, ac.signal);
      assertEquals(pool.reusable, 0, `the ${outcome} job took the kept worker`);
      const r = await bad;
      assertEquals(r.outcome, outcome);
      // Reported by the worker itself when it could report (trap, memory).
      if (r.worker) assertEquals(r.worker, { id: wk(warm).id, job: 2 });
      assertEquals(pool.reusable, 0, `the worker was not kept after ${outcome}`);
      const next = await run("");
      assertEquals(wk(next).job, 1, `a fresh worker after ${outcome}`);
      assert(wk(next).id !== wk(warm).id);
    });
  }
});

Deno.test("TM-16 hostile WASM job (reused worker): an infinite loop, a memory bomb and deep recursion stop within their limits in a worker that ran jobs before", async () => {
  const sw = await watToWasm("switch.wat", SWITCH_WAT);
  const limits = { timeoutMs: 500, memoryBytes: 8 << 20 };
  await withPool(async (pool) => {
    for (
      const [input, outcome, error] of [
        ["l", "timeout", /500 ms/],
        ["b", "memory", /128 pages/],
        ["d", "trap", /call stack/i],
      ] as const
    ) {
      // Two jobs first, so the hostile one is the worker's third.
      for (let i = 0; i < 2; i++) {
        const ok = await pool.run({ module: sw, input: new Uint8Array(0), tenant: "a", limits });
        assertEquals([ok.outcome, wk(ok).job], ["ok", i + 1]);
      }
      const t0 = performance.now();
      const r = await pool.run({ module: sw, input: enc.encode(input), tenant: "a", limits });
      assertEquals(r.outcome, outcome);
      assertMatch(r.error, error);
      if (r.worker) assertEquals(r.worker.job, 3, "ran in the reused worker");
      assert(performance.now() - t0 < STOP_WITHIN_MS, `${input} took ${performance.now() - t0} ms`);
    }
  });
});
