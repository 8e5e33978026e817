/**
 * WASM job benchmarks (issue #6). Short by design (shared 2-core machine).
 *
 * 1. Spawn-to-result latency of the hello job: `runJob` (new worker with no
 *    permissions, compile, run, terminate), in process, N runs.
 * 2. The same through the CLI: `deno task wasm run ... --private`, process
 *    start to exit, a few runs.
 * 3. Instantiate + run of a CPU-bound job (bench/wasm/cpu.wat) in the Phase
 *    runtime vs the same module under node (wasmtime is not in Debian 12).
 *
 * Run: deno run -q --no-prompt -P=test bench/wasm/bench.ts
 * (or with only --allow-read=./wasm,./bench/wasm,/tmp/phase
 * --allow-write=/tmp/phase --allow-run=node,deno).
 *
 * @module
 */
import { watToWasm } from "../../wasm/build.ts";
import { HELLO_INPUT, helloWasmPath } from "../../wasm/hello.ts";
import { runJob } from "../../wasm/runner.ts";

const HELLO_RUNS = 40;
const CLI_RUNS = 5;
const CPU_RUNS = 5;
const CPU_N = 300_000;

function stats(ms: number[]): string {
  const s = [...ms].sort((a, b) => a - b);
  const q = (p: number) => s[Math.min(s.length - 1, Math.floor(p * s.length))];
  return `median ${q(0.5).toFixed(1)} ms, p90 ${q(0.9).toFixed(1)} ms, min ${
    s[0].toFixed(1)
  } ms, max ${s[s.length - 1].toFixed(1)} ms (n=${s.length})`;
}

const root = new URL("../..", import.meta.url).pathname;
const hello = await Deno.readFile(helloWasmPath());
const input = new TextEncoder().encode(HELLO_INPUT);
await runJob({ module: hello, input }); // warm the worker script's compile cache
const helloMs: number[] = [];
for (let i = 0; i < HELLO_RUNS; i++) {
  const t0 = performance.now();
  const r = await runJob({ module: hello, input });
  helloMs.push(performance.now() - t0);
  if (r.outcome !== "ok") throw new Error(r.error);
}
console.log(`hello spawn-to-result (runJob, in process): ${stats(helloMs)}`);

const cliMs: number[] = [];
for (let i = 0; i < CLI_RUNS; i++) {
  const t0 = performance.now();
  const out = await new Deno.Command("deno", {
    args: [
      "task",
      "-q",
      "wasm",
      "run",
      "wasm/examples/hello.wasm",
      "--input",
      HELLO_INPUT,
      "--private",
    ],
    cwd: root,
    stdout: "piped",
    stderr: "null",
  }).output();
  cliMs.push(performance.now() - t0);
  if (!out.success) throw new Error("cli run failed");
}
console.log(`hello via CLI (deno task wasm run --private, process start to exit): ${stats(cliMs)}`);

const cpu = await watToWasm(
  "cpu.wat",
  await Deno.readTextFile(new URL("./cpu.wat", import.meta.url)),
);
await Deno.mkdir("/tmp/phase", { recursive: true });
const cpuPath = "/tmp/phase/bench-cpu.wasm";
const cpuInput = new Uint8Array(new Uint32Array([CPU_N]).buffer);
const phaseMs: number[] = [];
let phaseResult = 0n;
for (let i = 0; i < CPU_RUNS; i++) {
  const r = await runJob({ module: cpu, input: cpuInput, limits: { timeoutMs: 60_000 } });
  if (r.outcome !== "ok") throw new Error(r.error);
  phaseMs.push(r.wallUs / 1000);
  phaseResult = new DataView(r.stdout.buffer).getBigUint64(0, true);
}
console.log(
  `cpu job N=${CPU_N} in Phase (spawn + compile + instantiate + run): ${
    stats(phaseMs)
  }; result ${phaseResult}`,
);
await Deno.writeFile(cpuPath, cpu);
try {
  await run();
} finally {
  await Deno.remove(cpuPath).catch(() => {});
}

async function run(): Promise<void> {
  const node = await new Deno.Command("node", {
    args: [
      new URL("./node_run.mjs", import.meta.url).pathname,
      cpuPath,
      String(CPU_N),
      String(CPU_RUNS),
    ],
    stdout: "piped",
  }).output();
  const nodeOut = JSON.parse(new TextDecoder().decode(node.stdout)) as {
    result: string;
    times: number[];
  };
  const nodeVersion = new TextDecoder().decode(
    (await new Deno.Command("node", { args: ["--version"], stdout: "piped" }).output()).stdout,
  ).trim();
  console.log(
    `cpu job N=${CPU_N} under node ${nodeVersion} (compile + instantiate + run): first (cold) ${
      nodeOut.times[0].toFixed(1)
    } ms; warm ${stats(nodeOut.times.slice(1))}; result ${nodeOut.result}`,
  );
  if (nodeOut.result !== phaseResult.toString()) throw new Error("results differ");
  // The same host code in this Deno, without a worker: V8 vs V8, no sandbox.
  const plain = await new Deno.Command("deno", {
    args: [
      "run",
      "-q",
      `--allow-read=${cpuPath}`,
      new URL("./node_run.mjs", import.meta.url).pathname,
      cpuPath,
      String(CPU_N),
      String(CPU_RUNS),
    ],
    stdout: "piped",
  }).output();
  const plainOut = JSON.parse(new TextDecoder().decode(plain.stdout)) as {
    result: string;
    times: number[];
  };
  console.log(
    `cpu job N=${CPU_N} in plain Deno, no worker (compile + instantiate + run): first (cold) ${
      plainOut.times[0].toFixed(1)
    } ms; warm ${stats(plainOut.times.slice(1))}`,
  );
}
