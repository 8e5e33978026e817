/**
 * The job worker. The host starts it with no permissions (a component job
 * additionally reads the JCO_DEBUG variable its transpiled glue asks for),
 * sends a job, gets one result, then terminates it or (JobPool) sends it
 * the next job of the same submitter, module and limits, which runs in a
 * fresh instance (TM-16). Untrusted module bytes are parsed, compiled and
 * run only here.
 *
 * @module
 */
import {
  capMemory,
  type CappedModule,
  MEMORY_IMPORT,
  ModuleLimitError,
  PAGE_BYTES,
} from "./_limits.ts";
import { Wasi, WASI_MODULE } from "./_wasi.ts";
import { compileWatched, refusedGrowPages, type WatchedModule } from "./_grow.ts";
import type { DirGrant } from "./_wasi_fs.ts";

/** A job as the host sends it. */
export interface JobRequest {
  readonly kind: "core" | "component";
  readonly module: Uint8Array;
  readonly stdin: Uint8Array;
  readonly args: readonly string[];
  readonly memoryPages: number;
  readonly stdoutCap: number;
  readonly stderrCap: number;
  /** Component jobs: the transpiled glue (ES module source) and its core modules. */
  readonly glue?: string;
  readonly coreModules?: Readonly<Record<string, Uint8Array>>;
  /** A directory granted read-only (core jobs only). */
  readonly dir?: DirGrant;
  /**
   * Core jobs: the module as an earlier worker compiled it for the same
   * verified digest and memory cap (the host's compile cache); `module`'s
   * bytes are then not parsed again.
   */
  readonly compiled?: CompiledCore;
  /**
   * The host may send this worker another job of the same submitter,
   * module and limits (JobPool's `jobsPerWorker`): keep listening, and
   * mark the report `idle` when it is sent after the job's code returned.
   */
  readonly reuse?: boolean;
}

/**
 * A core module compiled (capped and instrumented) by a job worker, posted
 * to the host before the job's code runs so that the host can cache it by
 * digest and memory cap. A WebAssembly.Module is immutable code: sharing it
 * shares no state between jobs (each gets its own instance and memory).
 */
export interface CompiledCore {
  readonly type: "compiled";
  readonly module: WebAssembly.Module;
  readonly memory: { readonly initial: number; readonly maximum: number } | undefined;
  readonly instrumented: boolean;
  readonly note: string;
}

/**
 * How a job ended, as receipts record it: `ok` (exited 0 or returned),
 * `exit` (exited with another status), `trap` (a fault in the job),
 * `timeout` (stopped at the wall-clock limit), `memory` (over the memory
 * cap), `output` (over the output cap), `invalid_module` (not a module
 * the runtime accepts), `import_denied` (imports something other than
 * WASI preview1), `cancelled` (stopped because its submitter cancelled it).
 */
export type Outcome =
  | "ok"
  | "exit"
  | "trap"
  | "timeout"
  | "memory"
  | "output"
  | "invalid_module"
  | "import_denied"
  | "cancelled";

/** A job's result as the worker reports it. */
export interface JobReport {
  readonly outcome: Outcome;
  readonly exitCode: number;
  readonly stdout: Uint8Array;
  readonly stderr: Uint8Array;
  readonly error: string;
}

/** What this worker says about itself in each report: which worker, its how-manieth job. */
interface WorkerStamp {
  readonly worker: { readonly id: string; readonly job: number };
  readonly idle?: true;
}

const scope = self as unknown as {
  onmessage: ((e: MessageEvent<JobRequest>) => void) | null;
  postMessage(m: (JobReport & WorkerStamp) | CompiledCore): void;
};

/**
 * Drawn once per worker: the host's results carry it, so a test can tell
 * from the worker itself (not from the host's bookkeeping) which jobs ran
 * in one worker (TM-16).
 */
const WORKER_ID = crypto.randomUUID();
/** Jobs this worker has been sent. */
let jobs = 0;

let reported = false;
/**
 * Sends the job's one report. The first call wins: a report sent at the
 * job's first terminal event (from inside a WASI call) is final, and the
 * host stops the worker when it arrives (TM-17).
 */
function post(r: JobReport, idle = false): void {
  if (reported) return;
  reported = true;
  const worker = { id: WORKER_ID, job: jobs };
  scope.postMessage(idle ? { ...r, worker, idle } : { ...r, worker });
}

// Set before anything else runs: a message sent before the handler exists is lost.
scope.onmessage = (e) => {
  const job = e.data;
  if (!job.reuse) scope.onmessage = null;
  reported = false; // the only state a job leaves in this module, with `jobs`
  jobs++;
  const run = job.kind === "component" ? runComponent(job) : runCore(job);
  // A report sent once the job's code has returned says `idle` (reuse
  // only): a job that reported early (TM-17) and went on running never
  // does, and its worker is terminated.
  run.then((r) => post(r, job.reuse === true), (err) =>
    post({
      outcome: "trap",
      exitCode: -1,
      stdout: new Uint8Array(0),
      stderr: new Uint8Array(0),
      error: `runtime failure: ${err instanceof Error ? err.message : String(err)}`,
    }));
};

function report(outcome: Outcome, error: string, wasi?: Wasi, exitCode = -1): JobReport {
  return {
    outcome,
    exitCode,
    stdout: wasi?.stdout.bytes() ?? new Uint8Array(0),
    stderr: wasi?.stderr.bytes() ?? new Uint8Array(0),
    error,
  };
}

function message(err: unknown): string {
  return err instanceof Error ? `${err.name}: ${err.message}` : String(err);
}

function hostMemory(capped: Pick<CappedModule, "memory">): WebAssembly.Memory | undefined {
  return capped.memory ? new WebAssembly.Memory(capped.memory) : undefined;
}

async function runCore(job: JobRequest): Promise<JobReport> {
  let capped: Pick<CappedModule, "memory">;
  let module: WebAssembly.Module;
  let watched: WatchedModule;
  let memory: WebAssembly.Memory | undefined;
  if (job.compiled) {
    ({ module } = job.compiled);
    capped = { memory: job.compiled.memory };
    watched = { module, instrumented: job.compiled.instrumented, note: job.compiled.note };
  } else {
    try {
      const c = capMemory(job.module, job.memoryPages);
      capped = c;
      // Async compilation keeps the worker's event loop free (see bench/README.md).
      // TM-17: memory.grow instrumented so that a refused grow is seen (_grow.ts).
      watched = await compileWatched(c.bytes);
      module = watched.module;
    } catch (err) {
      if (err instanceof ModuleLimitError) return report(err.kind, err.message);
      return report("invalid_module", message(err));
    }
    // Offered to the host's compile cache before any of the job's code runs.
    scope.postMessage({
      type: "compiled",
      module,
      memory: capped.memory,
      instrumented: watched.instrumented,
      note: watched.note,
    });
  }
  for (const imp of WebAssembly.Module.imports(module)) {
    const ours = capped.memory !== undefined && imp.kind === "memory" &&
      imp.module === MEMORY_IMPORT.module && imp.name === MEMORY_IMPORT.name;
    if (ours) continue;
    if (imp.module !== WASI_MODULE || imp.kind !== "function" || !Wasi.importable(imp.name)) {
      return report(
        "import_denied",
        `the module imports ${imp.kind} '${imp.module}.${imp.name}', which this job was not granted`,
      );
    }
  }
  const start = WebAssembly.Module.exports(module).find((e) => e.name === "_start");
  if (!start || start.kind !== "function") {
    return report("invalid_module", "the module exports no '_start' function (not a WASI command)");
  }
  try {
    memory = hostMemory(capped);
  } catch (err) {
    return report("memory", message(err));
  }
  const wasi = new Wasi({
    args: job.args,
    stdin: job.stdin,
    stdoutCap: job.stdoutCap,
    stderrCap: job.stderrCap,
    dir: job.dir,
    // TM-17: report the first terminal event at once, before the job can
    // catch it and go on (loop until the timeout, trap, write more).
    onTerminal: () => post(finalReport(wasi)),
  });
  wasi.memory = memory;
  try {
    return await startCore(module, wasi, memory, job, watched);
  } finally {
    wasi.dir?.closeAll();
  }
}

async function startCore(
  module: WebAssembly.Module,
  wasi: Wasi,
  memory: WebAssembly.Memory | undefined,
  job: JobRequest,
  watched: WatchedModule,
): Promise<JobReport> {
  let instance: WebAssembly.Instance;
  try {
    instance = await WebAssembly.instantiate(module, {
      [WASI_MODULE]: wasi.imports(),
      ...(memory ? { [MEMORY_IMPORT.module]: { [MEMORY_IMPORT.name]: memory } } : {}),
    });
  } catch (err) {
    return report("trap", message(err), wasi);
  }
  let failure: unknown;
  try {
    (instance.exports._start as () => void)();
  } catch (err) {
    failure = err;
  }
  // What the job did first decides, whatever it caught afterwards (TM-16, TM-17).
  if (wasi.first) return finalReport(wasi);
  if (failure === undefined) return report("ok", "", wasi, 0);
  // TM-17: a refused memory.grow came before this trap: the memory limit was first.
  const refused = refusedGrowPages(instance, watched);
  if (refused !== undefined) {
    return report(
      "memory",
      `memory limit reached: a memory.grow to ${refused} pages was refused (the job's cap: ${job.memoryPages} pages), then ${
        message(failure)
      }`,
      wasi,
    );
  }
  // An out-of-bounds access with memory at its cap is what a memory bomb
  // ends in; any other trap is the job's own fault, whatever its memory.
  if (
    memory && memory.buffer.byteLength >= job.memoryPages * PAGE_BYTES && isOutOfBounds(failure)
  ) {
    return report(
      "memory",
      `memory limit of ${job.memoryPages} pages reached: ${message(failure)}`,
      wasi,
    );
  }
  return report("trap", message(failure) + (watched.note ? ` (${watched.note})` : ""), wasi);
}

/** The report for a job whose first terminal event was exit or output. */
function finalReport(wasi: Wasi): JobReport {
  const first = wasi.first!;
  if (first.kind === "output") return report("output", first.error.message, wasi);
  const code = first.code;
  return report(code === 0 ? "ok" : "exit", code === 0 ? "" : `exit ${code}`, wasi, code);
}

/** True for V8's trap on a memory access outside the memory. */
function isOutOfBounds(err: unknown): boolean {
  return err instanceof WebAssembly.RuntimeError && /out of bounds/i.test(err.message) &&
    !/table/i.test(err.message);
}

type Glue = {
  instantiate: (
    getCoreModule: (name: string) => WebAssembly.Module,
    imports: Record<string, unknown>,
    instantiateCore: (
      m: WebAssembly.Module,
      imports?: WebAssembly.Imports,
    ) => Promise<WebAssembly.Instance>,
  ) => Promise<Record<string, unknown>>;
};

async function runComponent(job: JobRequest): Promise<JobReport> {
  if (job.glue === undefined || job.coreModules === undefined) {
    return report("invalid_module", "a component job needs its transpiled glue");
  }
  const modules = new Map<string, WebAssembly.Module>();
  const memories = new Map<WebAssembly.Module, WebAssembly.Memory>();
  for (const [name, bytes] of Object.entries(job.coreModules)) {
    try {
      const capped = capMemory(bytes, job.memoryPages);
      const m = await WebAssembly.compile(capped.bytes as BufferSource);
      modules.set(name, m);
      const mem = hostMemory(capped);
      if (mem) memories.set(m, mem);
    } catch (err) {
      if (err instanceof ModuleLimitError) return report(err.kind, err.message);
      if (err instanceof RangeError) return report("memory", message(err));
      return report("invalid_module", message(err));
    }
  }
  // The glue is JS that jco generated from this component at build time and
  // the host checked by digest; it runs under the worker's empty permissions.
  const url = URL.createObjectURL(new Blob([job.glue], { type: "text/javascript" }));
  let glue: Glue;
  try {
    glue = await import(url);
  } catch (err) {
    return report("invalid_module", `the component glue does not load: ${message(err)}`);
  } finally {
    URL.revokeObjectURL(url);
  }
  let exports: Record<string, unknown>;
  try {
    // No host interfaces are granted to components: an import fails to link.
    exports = await glue.instantiate(
      (name) => {
        const m = modules.get(name);
        if (!m) throw new Error(`no core module '${name}'`);
        return m;
      },
      {},
      (m, imports) => {
        const mem = memories.get(m);
        return WebAssembly.instantiate(
          m,
          mem ? { ...imports, [MEMORY_IMPORT.module]: { [MEMORY_IMPORT.name]: mem } } : imports,
        );
      },
    );
  } catch (err) {
    return report(
      "import_denied",
      `the component does not link without host imports: ${message(err)}`,
    );
  }
  const run = exports.run;
  if (typeof run !== "function") {
    return report(
      "invalid_module",
      "the component exports no 'run' function (world phase:job/job)",
    );
  }
  let result: unknown;
  try {
    result = run(job.stdin);
  } catch (err) {
    for (const mem of memories.values()) {
      if (mem.buffer.byteLength >= job.memoryPages * PAGE_BYTES && isOutOfBounds(err)) {
        return report(
          "memory",
          `memory limit of ${job.memoryPages} pages reached: ${message(err)}`,
        );
      }
    }
    return report("trap", message(err));
  }
  if (!(result instanceof Uint8Array)) return report("trap", "'run' did not return bytes");
  if (result.length > job.stdoutCap) {
    return {
      ...report(
        "output",
        `the job returned ${result.length} bytes, above the cap of ${job.stdoutCap}`,
      ),
      stdout: result.slice(0, job.stdoutCap),
    };
  }
  return { ...report("ok", "", undefined, 0), stdout: result.slice() };
}
