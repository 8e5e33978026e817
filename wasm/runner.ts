/**
 * The host side of a job: start a worker with no permissions, send the job,
 * wait at most the wall-clock timeout, terminate the worker. The worker's
 * report is untrusted input: it is checked and capped here (TM-16).
 *
 * @module
 */
import type { CompiledCore, JobReport, JobRequest, Outcome } from "./_worker.ts";
import type { DirGrant } from "./_wasi_fs.ts";
import { WORKER_OPTIONS_FEATURE, workerOptionsState } from "./_unstable.ts";
import { WasmError } from "./errors.ts";
import { sha256Hex } from "../verify/mod.ts";

export type { DirGrant } from "./_wasi_fs.ts";

export type { Outcome } from "./_worker.ts";

/** Default memory cap of a job, in bytes (formats.md §7 example). */
export const DEFAULT_MEMORY_BYTES = 64 * 1024 * 1024;
/** Largest memory cap a job may ask for, in bytes. */
export const MAX_MEMORY_BYTES = 1024 * 1024 * 1024;
/** Default wall-clock timeout of a job, in milliseconds. */
export const DEFAULT_TIMEOUT_MS = 5_000;
/** Longest timeout a job may ask for, in milliseconds. */
export const MAX_TIMEOUT_MS = 10 * 60_000;
/** Default cap on a job's stdout, in bytes. */
export const DEFAULT_OUTPUT_BYTES = 1024 * 1024;
/** Cap on a job's stderr, in bytes. */
export const MAX_STDERR_BYTES = 64 * 1024;
/** Largest module accepted, in bytes. */
export const MAX_MODULE_BYTES = 16 * 1024 * 1024;
/** Largest input accepted, in bytes. */
export const MAX_INPUT_BYTES = 16 * 1024 * 1024;
/** Bytes in a WebAssembly page. */
const PAGE_BYTES = 65536;
/** The argv a job gets when none is given. */
export const DEFAULT_ARGS: readonly string[] = Object.freeze(["job"]);

/** Limits of one job. */
export interface JobLimits {
  /** Memory cap in bytes: a multiple of 64 KiB (one WebAssembly page), at most 1 GiB. */
  readonly memoryBytes: number;
  /** Wall-clock timeout in milliseconds, 1 to 600 000 (ten minutes). */
  readonly timeoutMs: number;
  /** Cap on the job's stdout in bytes, 0 to 16 MiB; writing more stops the job. */
  readonly outputBytes: number;
}

/** The default limits: 64 MiB of memory, 5 s, 1 MiB of output. */
export const DEFAULT_LIMITS: JobLimits = Object.freeze({
  memoryBytes: DEFAULT_MEMORY_BYTES,
  timeoutMs: DEFAULT_TIMEOUT_MS,
  outputBytes: DEFAULT_OUTPUT_BYTES,
});

/** A transpiled component: its glue and core modules (`loadComponent` reads and checks them). */
export interface ComponentGlue {
  /** The jco glue, ES module source. */
  readonly glue: string;
  /** The component's core modules, by file name. */
  readonly coreModules: Readonly<Record<string, Uint8Array>>;
}

/** What to run. */
export interface JobSpec {
  /** The module (or component) bytes exactly as given, at most 16 MiB; receipts hash these. */
  readonly module: Uint8Array;
  /** The job's stdin (a component's `run` argument), at most 16 MiB. */
  readonly input: Uint8Array;
  /** The job's argv (default `["job"]`). */
  readonly args?: readonly string[];
  /** Limits that differ from {@link DEFAULT_LIMITS}. */
  readonly limits?: Partial<JobLimits>;
  /** Present for a component job. */
  readonly component?: ComponentGlue;
  /**
   * A host directory granted read-only (core jobs), as `guestPath` in the
   * job; `hostPath` must be canonical (see {@link resolveDirGrant}).
   */
  readonly dir?: DirGrant;
  /** Wall clock for `started_at` (injected for tests). */
  readonly now?: () => Date;
  /** Cancels the job: its worker is terminated and the outcome is `cancelled`. */
  readonly signal?: AbortSignal;
  /**
   * Who submitted the job (e.g. a submitter keyid). A {@link JobPool} may
   * run a job in a worker that ran earlier jobs only when they had the same
   * tenant, the same module digest and the same limits (TM-16); a job
   * without a tenant always gets a fresh worker.
   */
  readonly tenant?: string;
}

/** What happened. */
export interface JobResult {
  /** How the job ended. */
  readonly outcome: Outcome;
  /** The WASI exit status, or -1 when the job did not exit by itself. */
  readonly exitCode: number;
  /** What the job wrote on stdout, up to the output cap (empty after a timeout). */
  readonly stdout: Uint8Array;
  /** What the job wrote on stderr, at most 64 KiB. */
  readonly stderr: Uint8Array;
  /** Human reason for any outcome other than `ok`. */
  readonly error: string;
  /** When the job was started. */
  readonly startedAt: Date;
  /** Spawn-to-result time in microseconds. */
  readonly wallUs: number;
  /** The limits the job ran under (defaults filled in). */
  readonly limits: JobLimits;
  /**
   * The worker that ran the job, as the worker itself reports it: a random
   * id drawn when the worker started and the job's number in that worker
   * (1 for a fresh worker). Untrusted diagnostics (never in a receipt);
   * absent when the host stopped the job (timeout, cancellation) or the
   * report was malformed. Tests use it to prove which jobs shared a worker.
   */
  readonly worker?: { readonly id: string; readonly job: number };
}

const OUTCOMES: ReadonlySet<string> = new Set<Outcome>([
  "ok",
  "exit",
  "trap",
  "timeout",
  "memory",
  "output",
  "invalid_module",
  "import_denied",
  "cancelled",
]);

const MALFORMED_REPORT = "the job worker sent a malformed report";

/** Bytes of the worker's reported error message kept, in UTF-16 units. */
const MAX_ERROR_CHARS = 1024;

function resolveLimits(l: Partial<JobLimits> | undefined): JobLimits {
  const limits = { ...DEFAULT_LIMITS, ...l };
  if (
    !Number.isSafeInteger(limits.memoryBytes) || limits.memoryBytes < PAGE_BYTES ||
    limits.memoryBytes > MAX_MEMORY_BYTES || limits.memoryBytes % PAGE_BYTES !== 0
  ) {
    throw new RangeError(
      `memory limit must be a multiple of 64 KiB up to ${MAX_MEMORY_BYTES} bytes`,
    );
  }
  if (
    !Number.isSafeInteger(limits.timeoutMs) || limits.timeoutMs < 1 ||
    limits.timeoutMs > MAX_TIMEOUT_MS
  ) {
    throw new RangeError(`timeout must be 1..${MAX_TIMEOUT_MS} ms`);
  }
  if (
    !Number.isSafeInteger(limits.outputBytes) || limits.outputBytes < 0 ||
    limits.outputBytes > MAX_INPUT_BYTES
  ) {
    throw new RangeError(`output cap must be 0..${MAX_INPUT_BYTES} bytes`);
  }
  return Object.freeze(limits);
}

/** Longest worker id kept from a report, in UTF-16 units. */
const MAX_WORKER_ID_CHARS = 64;

function checkWorker(r: unknown): { id: string; job: number } | undefined {
  const w = (r as { worker?: unknown } | null)?.worker as { id?: unknown; job?: unknown } | null;
  if (
    !w || typeof w !== "object" || typeof w.id !== "string" ||
    w.id.length > MAX_WORKER_ID_CHARS || !Number.isSafeInteger(w.job)
  ) return undefined;
  return Object.freeze({ id: w.id, job: w.job as number });
}

function checkReport(r: unknown, limits: JobLimits): JobReport & { worker?: JobResult["worker"] } {
  const o = r as Partial<JobReport> | null;
  if (
    !o || typeof o !== "object" || typeof o.outcome !== "string" || !OUTCOMES.has(o.outcome) ||
    typeof o.exitCode !== "number" || !Number.isSafeInteger(o.exitCode) ||
    !(o.stdout instanceof Uint8Array) || !(o.stderr instanceof Uint8Array) ||
    typeof o.error !== "string"
  ) {
    return {
      outcome: "trap",
      exitCode: -1,
      stdout: new Uint8Array(0),
      stderr: new Uint8Array(0),
      error: MALFORMED_REPORT,
    };
  }
  const worker = checkWorker(o);
  return {
    outcome: o.outcome,
    exitCode: o.exitCode,
    stdout: o.stdout.slice(0, limits.outputBytes),
    stderr: o.stderr.slice(0, MAX_STDERR_BYTES),
    error: o.error.slice(0, MAX_ERROR_CHARS),
    ...(worker ? { worker } : {}),
  };
}

const GUEST_PATH_RE = /^\/[A-Za-z0-9._-]+(\/[A-Za-z0-9._-]+)*$|^\.$/;

/**
 * Makes a directory grant for {@link JobSpec.dir}: the host path must be a
 * directory (it is made canonical, symlinks resolved, so the worker's read
 * scope is exact) and the guest path `/name[/name]` or `.`. Throws
 * RangeError otherwise.
 */
export async function resolveDirGrant(hostPath: string, guestPath = "/data"): Promise<DirGrant> {
  if (!GUEST_PATH_RE.test(guestPath) || guestPath.split("/").includes("..")) {
    throw new RangeError(`guest path '${guestPath}' must look like /data or .`);
  }
  const real = await Deno.realPath(hostPath);
  const info = await Deno.stat(real);
  if (!info.isDirectory) throw new RangeError(`${hostPath} is not a directory`);
  return Object.freeze({ hostPath: real, guestPath });
}

/**
 * Runs one job in a fresh worker and returns its result. Never throws for
 * anything the job does: invalid modules, traps, timeouts, memory and
 * output limits and denied imports are outcomes, and so is a cancellation
 * through {@link JobSpec.signal} (`cancelled`: the worker is terminated at
 * once). Throws RangeError only for limits outside their bounds, and
 * {@link WasmError} `E_RUNTIME` when the process's deno.json does not
 * enable the unstable `worker-options` feature the sandbox needs (Deno
 * would otherwise exit the whole process).
 */
export function runJob(spec: JobSpec): Promise<JobResult> {
  return runIn(spec, undefined);
}

/** Workers a {@link JobPool} keeps started by default. */
export const DEFAULT_POOL_WORKERS = 2;
/** Most workers a {@link JobPool} keeps started. */
export const MAX_POOL_WORKERS = 64;
/** Compiled modules a {@link JobPool} keeps, by digest and memory cap. */
export const COMPILE_CACHE_ENTRIES = 32;
/** Module bytes (of the modules as given) a {@link JobPool}'s compile cache may stand for. */
export const COMPILE_CACHE_BYTES = 64 * 1024 * 1024;

/**
 * Most jobs one worker runs (the default of {@link JobPoolOptions.jobsPerWorker}),
 * all of one reuse class: one tenant, one module digest, one set of limits.
 */
export const MAX_JOBS_PER_WORKER = 64;
/** A worker kept for another job of its reuse class is terminated after this long unused, in ms. */
export const REUSE_IDLE_MS = 5_000;

/** Options of {@link JobPool.create}. */
export interface JobPoolOptions {
  /** Workers kept started ahead of demand, 1 to 64 (default 2). */
  readonly workers?: number;
  /**
   * Jobs one worker may run, 1 to {@link MAX_JOBS_PER_WORKER} (the
   * default); 1 gives every job a fresh worker. A worker runs a job after
   * an earlier one only when both have the same {@link JobSpec.tenant},
   * the same module (SHA-256) and the same limits, each job in a fresh
   * WebAssembly instance with fresh memory and WASI state, and only after
   * a job whose `_start` returned (outcome `ok`): a timeout, a
   * cancellation, a trap, the memory or output cap, `proc_exit` (reported
   * from inside the job's call) or a malformed report ends the worker.
   * Why this keeps the isolation of a fresh worker for everyone but the
   * module's own submitter: THREAT-MODEL.md TM-16.
   */
  readonly jobsPerWorker?: number;
  /** A kept worker unused this long is terminated, in ms (default {@link REUSE_IDLE_MS}). */
  readonly reuseIdleMs?: number;
}

interface Reusable {
  readonly worker: Worker;
  /** Tenant, module digest and limits of the jobs it ran (see {@link reuseClass}). */
  readonly reuseClass: string;
  readonly jobs: number;
  readonly timer: ReturnType<typeof setTimeout>;
}

function refuseWithoutFeature(
  feature: Awaited<ReturnType<typeof workerOptionsState>>,
): void {
  if (feature.state !== "missing") return;
  throw new WasmError(
    "E_RUNTIME",
    `WASM jobs need Deno's unstable '${WORKER_OPTIONS_FEATURE}' feature, which ${feature.config} does not enable`,
    {
      hint:
        `add "unstable": ["${WORKER_OPTIONS_FEATURE}"] to ${feature.config} (the job worker runs with no permissions only through Worker's deno.permissions option)`,
    },
  );
}

/**
 * Runs core jobs like {@link runJob}, faster: workers with no permissions
 * are started ahead of demand, and the compiled module of a job is kept by
 * the SHA-256 of its bytes and its memory cap, so a module is parsed,
 * capped, instrumented and compiled once (in a job worker, never in the
 * host) and later jobs instantiate it afresh. A worker runs the next job
 * of its reuse class (same tenant, same module, same limits; see
 * {@link JobPoolOptions.jobsPerWorker}) and no other: a job of another
 * submitter or another module gets a worker that never ran a job (TM-16).
 * Component jobs and jobs with a granted directory need other worker
 * permissions and get a fresh worker, as with runJob.
 */
export class JobPool {
  readonly #size: number;
  /** Jobs one worker may run (1: a fresh worker per job). */
  readonly jobsPerWorker: number;
  readonly #idleMs: number;
  readonly #idle: Worker[] = [];
  readonly #reusable: Reusable[] = [];
  readonly #cache = new Map<string, { compiled: CompiledCore; bytes: number }>();
  #cacheBytes = 0;
  #refilling = false;
  #closed = false;

  private constructor(size: number, jobsPerWorker: number, idleMs: number) {
    this.#size = size;
    this.jobsPerWorker = jobsPerWorker;
    this.#idleMs = idleMs;
  }

  /** Starts a pool (throws like {@link runJob} without the worker-options feature). */
  static async create(opts: JobPoolOptions = {}): Promise<JobPool> {
    const size = opts.workers ?? DEFAULT_POOL_WORKERS;
    if (!Number.isSafeInteger(size) || size < 1 || size > MAX_POOL_WORKERS) {
      throw new RangeError(`a pool keeps 1..${MAX_POOL_WORKERS} workers`);
    }
    const jobs = opts.jobsPerWorker ?? MAX_JOBS_PER_WORKER;
    if (!Number.isSafeInteger(jobs) || jobs < 1 || jobs > MAX_JOBS_PER_WORKER) {
      throw new RangeError(`a worker may run 1..${MAX_JOBS_PER_WORKER} jobs`);
    }
    const idleMs = opts.reuseIdleMs ?? REUSE_IDLE_MS;
    if (!Number.isSafeInteger(idleMs) || idleMs < 1 || idleMs > REUSE_IDLE_MS) {
      throw new RangeError(`a kept worker may wait 1..${REUSE_IDLE_MS} ms`);
    }
    refuseWithoutFeature(await workerOptionsState());
    const pool = new JobPool(size, jobs, idleMs);
    pool.#refill();
    return pool;
  }

  /** Workers started and waiting for a job now. */
  get idle(): number {
    return this.#idle.length;
  }

  /** Workers kept for another job of their reuse class now. */
  get reusable(): number {
    return this.#reusable.length;
  }

  /** Compiled modules in the cache now. */
  get cached(): number {
    return this.#cache.size;
  }

  #refill(): void {
    while (!this.#closed && this.#idle.length < this.#size) this.#idle.push(spawnWorker("none"));
  }

  /** @internal A kept worker whose jobs were of `reuseClass`, removed from the kept ones. */
  takeReusable(reuseClass: string): { worker: Worker; jobs: number } | undefined {
    const i = this.#reusable.findIndex((r) => r.reuseClass === reuseClass);
    if (i < 0) return undefined;
    const [r] = this.#reusable.splice(i, 1);
    clearTimeout(r.timer);
    return { worker: r.worker, jobs: r.jobs };
  }

  #drop(r: Reusable): void {
    const i = this.#reusable.indexOf(r);
    if (i >= 0) this.#reusable.splice(i, 1);
    clearTimeout(r.timer);
    r.worker.terminate();
  }

  /**
   * @internal Keeps an idle worker that ran `jobs` jobs of `reuseClass`
   * while it may run more, for at most the pool's idle deadline and at most
   * as many kept as the pool's size (the longest kept goes first);
   * otherwise terminates it.
   */
  release(worker: Worker, reuseClass: string, jobs: number): void {
    if (this.#closed || jobs >= this.jobsPerWorker) return worker.terminate();
    if (this.#reusable.length >= this.#size) this.#drop(this.#reusable[0]);
    const r: Reusable = {
      worker,
      reuseClass,
      jobs,
      timer: setTimeout(() => this.#drop(r), this.#idleMs),
    };
    // Between jobs a worker has nothing to say: a message or an error from
    // one means a job's code is still running, and it is not reused.
    worker.onmessage = () => this.#drop(r);
    worker.onmessageerror = () => this.#drop(r);
    worker.onerror = (e) => {
      e.preventDefault();
      this.#drop(r);
    };
    this.#reusable.push(r);
  }

  /** @internal A started worker for one job; a new one is started in the background. */
  take(): Worker {
    const w = this.#idle.shift() ?? spawnWorker("none");
    if (!this.#refilling) {
      this.#refilling = true;
      // After the job's message is posted: the job goes first.
      setTimeout(() => {
        this.#refilling = false;
        this.#refill();
      }, 0);
    }
    return w;
  }

  /** @internal */
  lookup(key: string): CompiledCore | undefined {
    const e = this.#cache.get(key);
    if (!e) return undefined;
    this.#cache.delete(key); // LRU: most recent last
    this.#cache.set(key, e);
    return e.compiled;
  }

  /** @internal */
  remember(key: string, compiled: CompiledCore, bytes: number): void {
    if (this.#closed || bytes > COMPILE_CACHE_BYTES || this.#cache.has(key)) return;
    this.#cache.set(key, { compiled, bytes });
    this.#cacheBytes += bytes;
    for (const [k, e] of this.#cache) {
      if (this.#cache.size <= COMPILE_CACHE_ENTRIES && this.#cacheBytes <= COMPILE_CACHE_BYTES) {
        break;
      }
      this.#cache.delete(k);
      this.#cacheBytes -= e.bytes;
    }
  }

  /** Runs one job (see {@link runJob}). */
  run(spec: JobSpec): Promise<JobResult> {
    return runIn(spec, this.#closed ? undefined : this);
  }

  /** Terminates the waiting workers and forgets the compiled modules. */
  close(): void {
    this.#closed = true;
    for (const w of this.#idle.splice(0)) w.terminate();
    for (const r of this.#reusable.splice(0)) {
      clearTimeout(r.timer);
      r.worker.terminate();
    }
    this.#cache.clear();
    this.#cacheBytes = 0;
  }
}

type WorkerPermissions = "none" | Record<string, unknown>;

/**
 * Where the job worker is, seen from the module that holds this code
 * (`base`: its `import.meta.url`). `../wasm/` and not `./`: bundled, this
 * code lives in the bundle of whichever entrypoint runs jobs
 * (/usr/lib/phase/wasm/wasm.js for phase-wasm, /usr/lib/phase/node/node.js
 * for phase-node) and the worker is shipped once, in wasm/. The worker is
 * the same kind of file as its loader: from a bundled `.js` module, the
 * bundled `_worker.js` (plain JavaScript: Deno does not transpile it at
 * each start and the prepared code cache covers it, issue 17); from
 * source (`.ts`, also under `deno compile`), `_worker.ts`.
 */
export function workerUrl(base: string): URL {
  const ext = new URL(base).pathname.endsWith(".js") ? "js" : "ts";
  return new URL(`../wasm/_worker.${ext}`, base);
}

function spawnWorker(permissions: WorkerPermissions): Worker {
  return new Worker(workerUrl(import.meta.url), {
    type: "module",
    name: "phase-wasm-job",
    deno: { permissions },
  } as WorkerOptions);
}

function isCompiled(d: unknown): d is CompiledCore {
  const c = d as Partial<CompiledCore> | null;
  const m = c?.memory;
  return !!c && typeof c === "object" && c.type === "compiled" &&
    c.module instanceof WebAssembly.Module && typeof c.instrumented === "boolean" &&
    typeof c.note === "string" &&
    (m === undefined ||
      (typeof m === "object" && m !== null && Number.isSafeInteger(m.initial) &&
        Number.isSafeInteger(m.maximum)));
}

function stopped(outcome: "timeout" | "cancelled", error: string): JobReport {
  return {
    outcome,
    exitCode: -1,
    stdout: new Uint8Array(0),
    stderr: new Uint8Array(0),
    error,
  };
}

async function runIn(spec: JobSpec, pool: JobPool | undefined): Promise<JobResult> {
  const limits = resolveLimits(spec.limits);
  if (spec.module.length > MAX_MODULE_BYTES) {
    throw new RangeError(`module above ${MAX_MODULE_BYTES} bytes`);
  }
  if (spec.input.length > MAX_INPUT_BYTES) {
    throw new RangeError(`input above ${MAX_INPUT_BYTES} bytes`);
  }
  if (spec.dir && spec.component) {
    throw new RangeError("a directory can be granted to core jobs only");
  }
  const startedAt = (spec.now ?? (() => new Date()))();
  const t0 = performance.now();
  const memoryPages = limits.memoryBytes / PAGE_BYTES;
  // Only core jobs without a directory run with "none", the pool's permissions.
  const pooled = pool && !spec.component && !spec.dir ? pool : undefined;
  const key = pooled ? `${sha256Hex(spec.module)}:${memoryPages}` : "";
  const compiled = pooled?.lookup(key);
  // TM-16: the reuse class. A worker that ran a job runs only the next job
  // of the same submitter, module digest and limits (and so the same
  // permissions: pooled workers all have none).
  const reuseClass = pooled && pooled.jobsPerWorker > 1 && spec.tenant !== undefined
    ? reuseClassOf(spec.tenant, key, limits)
    : undefined;
  const request: JobRequest = {
    kind: spec.component ? "component" : "core",
    module: compiled ? new Uint8Array(0) : spec.module.slice(),
    stdin: spec.input.slice(),
    args: [...(spec.args ?? DEFAULT_ARGS)],
    memoryPages,
    stdoutCap: limits.outputBytes,
    stderrCap: MAX_STDERR_BYTES,
    glue: spec.component?.glue,
    coreModules: spec.component?.coreModules,
    dir: spec.dir,
    compiled,
    reuse: reuseClass !== undefined,
  };
  const done = (report: JobReport) =>
    Object.freeze({
      ...report,
      startedAt,
      wallUs: Math.round((performance.now() - t0) * 1000),
      limits,
    });
  const cancelledMsg = "the job was cancelled by its submitter and stopped";
  if (spec.signal?.aborted) return done(stopped("cancelled", cancelledMsg));
  // TM-16: the sandbox is the worker's own permission set; without the
  // feature Deno exits the process at `new Worker`, so refuse clearly first.
  if (!pooled) refuseWithoutFeature(await workerOptionsState());
  // TM-16: the job gets no read, write, net, run, sys, ffi or import
  // permission; transpiled component glue reads one variable (JCO_DEBUG).
  const permissions: WorkerPermissions = spec.component
    ? {
      read: false,
      write: false,
      net: false,
      env: ["JCO_DEBUG"],
      run: false,
      sys: false,
      ffi: false,
      import: false,
    }
    : spec.dir
    ? {
      // TM-10: read, and only below the one granted directory.
      read: [spec.dir.hostPath],
      write: false,
      net: false,
      env: false,
      run: false,
      sys: false,
      ffi: false,
      import: false,
    }
    : "none";
  const reused = reuseClass !== undefined ? pooled!.takeReusable(reuseClass) : undefined;
  const worker = reused?.worker ?? (pooled ? pooled.take() : spawnWorker(permissions));
  let timer: ReturnType<typeof setTimeout> | undefined;
  let onAbort: (() => void) | undefined;
  let idle = false; // reported by the worker itself, after the job's code returned
  const report = await new Promise<JobReport>((resolve) => {
    let settled = false;
    const finish = (r: JobReport, returned = false) => {
      if (settled) return;
      settled = true;
      idle = returned && r.error !== MALFORMED_REPORT;
      resolve(r);
    };
    timer = setTimeout(() => {
      finish(stopped("timeout", `the job ran longer than ${limits.timeoutMs} ms and was stopped`));
    }, limits.timeoutMs);
    onAbort = () => finish(stopped("cancelled", cancelledMsg));
    spec.signal?.addEventListener("abort", onAbort, { once: true });
    worker.onmessage = (e) => {
      if (isCompiled(e.data)) {
        if (pooled && !compiled) pooled.remember(key, e.data, spec.module.length);
        return;
      }
      finish(checkReport(e.data, limits), (e.data as { idle?: unknown } | null)?.idle === true);
    };
    worker.onmessageerror = () => finish(checkReport(null, limits));
    worker.onerror = (e) => {
      // An uncaught error in the worker must not reach the host's handler.
      e.preventDefault();
      finish({
        outcome: "trap",
        exitCode: -1,
        stdout: new Uint8Array(0),
        stderr: new Uint8Array(0),
        error: `the job worker failed: ${e.message}`.slice(0, MAX_ERROR_CHARS),
      });
    };
    worker.postMessage(request);
  });
  clearTimeout(timer);
  if (onAbort) spec.signal?.removeEventListener("abort", onAbort);
  // TM-16: a worker is kept, for its reuse class only, after a job whose
  // _start returned (outcome ok, reported once its code had returned). A
  // timeout, a cancellation, a fault (trap, memory, output cap: the job may
  // have been probing the engine), proc_exit (reported from inside the
  // job's call, which may catch it and go on: TM-17), a malformed report
  // end the worker.
  if (reuseClass !== undefined && idle && report.outcome === "ok") {
    pooled!.release(worker, reuseClass, (reused?.jobs ?? 0) + 1);
  } else worker.terminate();
  return done(report);
}

/** Tenant, module (digest and memory cap: the compile-cache key) and the other limits. */
function reuseClassOf(tenant: string, moduleKey: string, limits: JobLimits): string {
  return JSON.stringify([tenant, moduleKey, limits.timeoutMs, limits.outputBytes]);
}
