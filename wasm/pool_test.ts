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

async function withPool(
  fn: (pool: JobPool) => Promise<void>,
  unsafeReuseWorkers = 1,
): Promise<void> {
  const pool = await JobPool.create({ workers: 2, unsafeReuseWorkers });
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

Deno.test("JobPool unsafeReuseWorkers: off by default; on, a worker is kept only for its own tenant and only after a job that ended by itself and returned", async () => {
  const hello = await Deno.readFile(helloWasmPath());
  const spin = await watToWasm("spin.wat", `(module (func (export "_start") (loop $l (br $l))))`);
  const settle = () => new Promise((r) => setTimeout(r, 200));
  const input = enc.encode(HELLO_INPUT);
  await withPool(async (pool) => {
    await pool.run({ module: hello, input, tenant: "a" });
    await settle();
    assertEquals(pool.reusable, 0, "single-use unless asked");
  });
  await withPool(async (pool) => {
    const r1 = await pool.run({ module: hello, input, tenant: "a" });
    assertEquals(dec.decode(r1.stdout), HELLO_OUTPUT);
    await settle();
    assertEquals(pool.reusable, 1);
    await pool.run({ module: hello, input, tenant: "b" }); // never a's worker
    await settle();
    assertEquals(pool.reusable, 2);
    const r2 = await pool.run({ module: hello, input: enc.encode("xy"), tenant: "a" });
    assertEquals(dec.decode(r2.stdout), "yx", "a fresh instance: no state of the last job");
    await settle();
    assertEquals(pool.reusable, 2);
    // A timed-out worker is never kept.
    const t = await pool.run({ module: spin, input, tenant: "c", limits: { timeoutMs: 200 } });
    assertEquals(t.outcome, "timeout");
    await settle();
    assertEquals(pool.reusable, 2, "the timed-out worker was not kept");
    await pool.run({ module: hello, input, tenant: "a" }); // third job of a: its limit
    await settle();
    assertEquals(pool.reusable, 1, "a worker that ran its last job is terminated");
  }, 3);
});
