/**
 * JobPool: single-use workers started ahead of demand, the compile cache by
 * digest and memory cap, and cancellation; the TM-16 limits hold for a
 * job that runs a cached module exactly as for a freshly compiled one.
 */
import {
  deepStrictEqual as assertEquals,
  match as assertMatch,
  ok as assert,
  rejects as assertRejects,
} from "node:assert/strict";
import { watToWasm } from "./build.ts";
import { HELLO_INPUT, HELLO_OUTPUT, helloWasmPath } from "./hello.ts";
import { JobPool, runJob } from "./runner.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();
/** Far below the spinning jobs' timeouts, far above a worker's stop, in ms. */
const STOP_WITHIN_MS = 2_000;
/** Timeout of the jobs that must be stopped some other way, in ms. */
const LONG_TIMEOUT_MS = 20_000;

async function withPool(fn: (pool: JobPool) => Promise<void>, workers = 2): Promise<void> {
  const pool = await JobPool.create({ workers });
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
    await new Promise((r) => setTimeout(r, 50));
    assertEquals(pool.idle, 2, "refilled to its size after every job");
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
