/**
 * The `wasm` commands: `run` a job, `postboot` (the hello job the target
 * image starts after boot), and `receipt verify`.
 *
 * @module
 */
import { type Logger, UsageError } from "../core/mod.ts";
import { parseFlags, permissionSet, printResult } from "../cli/mod.ts";
import { explainFsError, readFileCapped } from "../core/mod.ts";
import { MAX_TRUST_BYTES, parseTrust, type Trust } from "../verify/mod.ts";
import { loadComponent } from "./component.ts";
import { type WasmCode, WasmError } from "./errors.ts";
import { dirDigest } from "./dir_digest.ts";
import { HELLO_INPUT, HELLO_WASM_DIGEST, helloWasmPath } from "./hello.ts";
import { isComponentBinary } from "./_limits.ts";
import { ephemeralNodeKey, loadOrCreateNodeKey, NODE_KEY_DIR } from "./node_key.ts";
import {
  buildReceipt,
  formatReceipt,
  sha256Digest,
  signReceipt,
  storeReceipt,
  verifyReceiptFile,
} from "./receipt.ts";
import {
  DEFAULT_ARGS,
  DEFAULT_LIMITS,
  type DirGrant,
  type JobResult,
  type JobSpec,
  MAX_INPUT_BYTES,
  MAX_MODULE_BYTES,
  MAX_TIMEOUT_MS,
  type Outcome,
  resolveDirGrant,
  runJob,
} from "./runner.ts";

/** Permission set of `wasm run` and `wasm postboot`. */
export const WASM_PERMISSION_SET = "wasm";
/** Permission set of `wasm receipt`. */
export const RECEIPT_PERMISSION_SET = "receipt";
/** State directory used when `--state` is not given. */
export const DEFAULT_STATE_DIR = "./.phase/wasm";
/** Prefix of every console line the post-boot service prints. */
export const CONSOLE_PREFIX = "phase-wasm:";

/** The flags of `deno task wasm run` (its `--help` lists each one; testing/help_test.ts checks). */
export const RUN_FLAGS = {
  input: { type: "string" },
  "input-file": { type: "string" },
  arg: { type: "string", multiple: true },
  dir: { type: "string" },
  "timeout-ms": { type: "string" },
  "memory-mb": { type: "string" },
  "output-kb": { type: "string" },
  state: { type: "string" },
  private: { type: "boolean" },
} as const;
/** The flags of `deno task wasm postboot`. */
export const POSTBOOT_FLAGS = {
  state: { type: "string" },
  private: { type: "boolean" },
} as const;
/** The flags of `deno task receipt verify`. */
export const RECEIPT_FLAGS = {
  trust: { type: "string" },
  "self-consistent-only": { type: "boolean" },
  json: { type: "boolean" },
} as const;

const RUN_USAGE =
  "deno task wasm run <module.wasm> [--input STR | --input-file F] [--arg A]... [--dir HOST[::GUEST]] [--timeout-ms N] [--memory-mb N] [--output-kb N] [--state DIR] [--private]";
const POSTBOOT_USAGE = "deno task wasm postboot [--state DIR] [--private]";
const RECEIPT_USAGE =
  "deno task receipt verify <receipt.json> (--trust FILE | --self-consistent-only) [--json]";

/** Where the commands write. */
export interface WasmIo {
  /** The job's stdout (raw bytes). */
  readonly stdout: (bytes: Uint8Array) => void;
  /** The job's stderr (raw bytes, capped by the runtime). */
  readonly stderr: (bytes: Uint8Array) => void;
  /** Human lines (one per call, with newline). */
  readonly line: (text: string) => void;
  /**
   * stdout is a terminal. A job's output is data and is written byte for
   * byte; only on a terminal, when it does not end with a newline, one is
   * added after it so the prompt (and the log) start on a line of their own.
   */
  readonly terminal?: boolean;
  readonly log: Logger;
  /** Whether stdout is a terminal (results as lines) or not (JSON); default: asks Deno. */
  readonly isTerminal?: () => boolean;
}

const OUTCOME_ERRORS: Readonly<Record<Exclude<Outcome, "ok">, [WasmCode, string]>> = {
  exit: ["E_EXIT", "the status is the job's own; its stderr (above) may say why"],
  trap: [
    "E_TRAP",
    "a fault in the job (unreachable, out-of-bounds access, stack overflow); the receipt records it",
  ],
  timeout: ["E_TIMEOUT", "raise --timeout-ms if the job is meant to run longer"],
  memory: ["E_MEMORY", "raise --memory-mb if the job needs more memory"],
  output: ["E_OUTPUT", "raise --output-kb if the job is meant to write more"],
  invalid_module: [
    "E_MODULE",
    "build a WASI preview1 command module (or a component with its glue)",
  ],
  import_denied: [
    "E_IMPORT",
    "a job may import only wasi_snapshot_preview1 functions (no filesystem, no network)",
  ],
  cancelled: ["E_CANCELLED", "the job was stopped on request before it finished"],
};

function positiveInt(text: string | undefined, flag: string, max: number): number | undefined {
  if (text === undefined) return undefined;
  if (!/^\d{1,10}$/.test(text) || Number(text) < 1 || Number(text) > max) {
    throw new UsageError(`--${flag} must be an integer from 1 to ${max}, got '${text}'`, RUN_USAGE);
  }
  return Number(text);
}

async function readInput(path: string, cap: number, what: string): Promise<Uint8Array> {
  try {
    return await readFileCapped(path, cap);
  } catch (err) {
    throw new WasmError(
      "E_IO",
      `cannot read ${what} ${explainFsError(err, path, WASM_PERMISSION_SET)}`,
      {
        cause: err,
        hint: readScopeHint(WASM_PERMISSION_SET),
      },
    );
  }
}

/**
 * The paths a set reads, from the permission table itself: a hint never
 * names a path the set does not grant.
 */
export function readScopeHint(set: string): string {
  const read = permissionSet(set).read;
  if (read === true) return `the '${set}' set reads any path`;
  if (read === false) return `the '${set}' set reads no file`;
  return `the '${set}' set reads ${read.join(", ")}`;
}

/** A finished job with its signed receipt. */
export interface SignedJob {
  /** What the job did. */
  readonly result: JobResult;
  /** The signed receipt document. */
  readonly receipt: Record<string, unknown>;
  /** The receipt as stored (pretty JSON): the bytes `verifyReceipt` checks. */
  readonly receiptBytes: Uint8Array;
  /** Keyid (`ed25519:<hex>`) of the node key that signed it. */
  readonly keyid: string;
  /** Where the receipt was stored; undefined in private mode. */
  readonly path: string | undefined;
}

/** What {@link runAndSign} runs, and where the node key and receipts live. */
export interface RunAndSignOptions {
  /** The module (or component) bytes, as {@link JobSpec.module}. */
  readonly module: Uint8Array;
  /** The job's input, as {@link JobSpec.input}. */
  readonly input: Uint8Array;
  /** The job's argv (default `["job"]`); bound into the receipt. */
  readonly args?: readonly string[];
  /** Limits that differ from the defaults, as {@link JobSpec.limits}. */
  readonly limits?: JobSpec["limits"];
  /** The transpiled glue, for a component job. */
  readonly component?: JobSpec["component"];
  /** A directory granted read-only; its contents' digest is bound into the receipt. */
  readonly dir?: JobSpec["dir"];
  /** State directory: the node key (`node-key/`) and receipts (`receipts/`). */
  readonly stateDir: string;
  /** Sign with an ephemeral key and write nothing (`stateDir` is not used). */
  readonly private: boolean;
}

/**
 * Runs a job, signs its receipt with the node key (created on first use)
 * and stores it under `<state>/receipts/` (private mode: ephemeral key,
 * nothing written). A job that fails is still a result with a receipt.
 * Throws RangeError for limits out of bounds, {@link WasmError} when the job
 * cannot be run or its receipt cannot be signed or stored.
 */
export async function runAndSign(opts: RunAndSignOptions): Promise<SignedJob> {
  const key = opts.private ? ephemeralNodeKey() : await loadOrCreateNodeKey(opts.stateDir);
  // TM-17: the directory's contents as read just before the run are bound.
  const dir = opts.dir && { ...opts.dir, digest: await dirDigest(opts.dir.hostPath) };
  const args = opts.args ?? DEFAULT_ARGS;
  const result = await runJob({
    module: opts.module,
    input: opts.input,
    args,
    limits: opts.limits,
    component: opts.component,
    dir: opts.dir,
  });
  const receipt = signReceipt(
    buildReceipt({ module: opts.module, input: opts.input, args, dir }, result, key.keyid),
    key,
  );
  const receiptBytes = formatReceipt(receipt);
  const path = opts.private
    ? undefined
    : await storeReceipt(opts.stateDir, receiptBytes, result.startedAt);
  return { result, receipt, receiptBytes, keyid: key.keyid, path };
}

function outcomeError(result: JobResult, receiptNote: string): WasmError | undefined {
  if (result.outcome === "ok") return undefined;
  const [code, hint] = OUTCOME_ERRORS[result.outcome];
  return new WasmError(code, `job ${result.outcome}: ${result.error} (${receiptNote})`, { hint });
}

async function cmdRun(args: string[], io: WasmIo): Promise<number> {
  const { values, positionals } = parseFlags(
    args,
    RUN_FLAGS,
    RUN_USAGE,
    true,
  );
  if (positionals.length !== 1) throw new UsageError("give exactly one module to run", RUN_USAGE);
  if (values.input !== undefined && values["input-file"] !== undefined) {
    throw new UsageError("--input and --input-file are exclusive", RUN_USAGE);
  }
  if (values.private && values.state !== undefined) {
    throw new UsageError("--private writes nothing: it takes no --state", RUN_USAGE);
  }
  const timeoutMs = positiveInt(values["timeout-ms"], "timeout-ms", MAX_TIMEOUT_MS);
  const memoryMb = positiveInt(values["memory-mb"], "memory-mb", 1024);
  const outputKb = positiveInt(values["output-kb"], "output-kb", MAX_INPUT_BYTES / 1024);
  const path = positionals[0];
  const module = await readInput(path, MAX_MODULE_BYTES, "module");
  const input = values["input-file"] !== undefined
    ? await readInput(values["input-file"], MAX_INPUT_BYTES, "input")
    : new TextEncoder().encode(values.input ?? "");
  const component = isComponentBinary(module) ? await loadComponent(path, module) : undefined;
  let dir: DirGrant | undefined;
  if (values.dir !== undefined) {
    if (component) throw new UsageError("--dir is for core modules only", RUN_USAGE);
    const [host, guest] = values.dir.split("::");
    try {
      dir = await resolveDirGrant(host, guest ?? "/data");
    } catch (err) {
      if (err instanceof RangeError) throw new UsageError(err.message, RUN_USAGE);
      throw new WasmError(
        "E_IO",
        `cannot grant ${explainFsError(err, host, WASM_PERMISSION_SET)}`,
        {
          cause: err,
          hint:
            "grant a directory inside the 'wasm' set's read list, e.g. under /var/lib/phase or /tmp/phase",
        },
      );
    }
  }
  const job = await runAndSign({
    module,
    input,
    args: [path.split("/").pop() ?? "job", ...(values.arg ?? [])],
    limits: {
      timeoutMs: timeoutMs ?? DEFAULT_LIMITS.timeoutMs,
      memoryBytes: memoryMb !== undefined ? memoryMb * 1024 * 1024 : DEFAULT_LIMITS.memoryBytes,
      outputBytes: outputKb !== undefined ? outputKb * 1024 : DEFAULT_LIMITS.outputBytes,
    },
    component,
    dir,
    stateDir: values.state ?? DEFAULT_STATE_DIR,
    private: values.private ?? false,
  });
  const out = job.result.stdout;
  io.stdout(out);
  if (io.terminal && out.length > 0 && out[out.length - 1] !== 0x0a) {
    io.stdout(new Uint8Array([0x0a]));
  }
  if (job.result.stderr.length > 0) io.stderr(job.result.stderr);
  io.log.info("receipt", {
    outcome: job.result.outcome,
    keyid: job.keyid,
    receipt: job.path ?? "private (not stored)",
    digest: sha256Digest(job.receiptBytes),
    wall_us: job.result.wallUs,
  });
  const err = outcomeError(job.result, `receipt ${job.path ?? "not stored (private)"}`);
  if (err) throw err;
  return 0;
}

async function cmdPostboot(args: string[], io: WasmIo): Promise<number> {
  const { values } = parseFlags(args, POSTBOOT_FLAGS, POSTBOOT_USAGE);
  if (values.private && values.state !== undefined) {
    throw new UsageError("--private writes nothing: it takes no --state", POSTBOOT_USAGE);
  }
  const path = helloWasmPath();
  const module = await readInput(path, MAX_MODULE_BYTES, "the hello job");
  // Run exactly the bytes this version of Phase ships (TM-01).
  if (sha256Digest(module) !== HELLO_WASM_DIGEST) {
    throw new WasmError(
      "E_MODULE",
      `${path} is not the hello job this build ships (digest differs)`,
      {
        hint: "rebuild with 'deno task wasm:build' or reinstall the image",
      },
    );
  }
  const job = await runAndSign({
    module,
    input: new TextEncoder().encode(HELLO_INPUT),
    args: ["hello.wasm"],
    stateDir: values.state ?? DEFAULT_STATE_DIR,
    private: values.private ?? false,
  });
  const text = new TextDecoder().decode(job.result.stdout);
  io.line(`${CONSOLE_PREFIX} hello: ${JSON.stringify(text).slice(1, -1)}`);
  io.line(`${CONSOLE_PREFIX} receipt keyid ${job.keyid}`);
  io.line(
    `${CONSOLE_PREFIX} receipt ${job.path ?? "private (not stored)"} ${
      sha256Digest(job.receiptBytes)
    }`,
  );
  const err = outcomeError(job.result, `receipt ${job.path ?? "not stored (private)"}`);
  if (err) throw err;
  return 0;
}

async function cmdReceipt(args: string[], io: WasmIo): Promise<number> {
  if (args[0] !== "verify") throw new UsageError("the receipt command is 'verify'", RECEIPT_USAGE);
  const { values, positionals } = parseFlags(
    args.slice(1),
    RECEIPT_FLAGS,
    RECEIPT_USAGE,
    true,
  );
  if (positionals.length !== 1) {
    throw new UsageError("give exactly one receipt file", RECEIPT_USAGE);
  }
  if (values.trust !== undefined && values["self-consistent-only"]) {
    throw new UsageError("--trust and --self-consistent-only are exclusive", RECEIPT_USAGE);
  }
  let trust: Trust | undefined;
  if (values.trust !== undefined) {
    let bytes: Uint8Array;
    try {
      bytes = await readFileCapped(values.trust, MAX_TRUST_BYTES);
    } catch (err) {
      throw new WasmError(
        "E_IO",
        `cannot read ${explainFsError(err, values.trust, RECEIPT_PERMISSION_SET)}`,
        {
          cause: err,
        },
      );
    }
    try {
      trust = parseTrust(bytes);
    } catch (err) {
      throw new WasmError("E_TRUST", (err as Error).message, {
        cause: err,
        hint: (err as WasmError).hint,
      });
    }
  }
  const nodeTrust = nodeTrustFile(positionals[0]);
  let r;
  try {
    r = await verifyReceiptFile(positionals[0], trust);
  } catch (err) {
    if (err instanceof WasmError && err.code === "E_TRUST") {
      throw new WasmError("E_TRUST", `${err.message} ${values.trust}`, {
        cause: err,
        hint: `the node that ran the job keeps its key in <state>/node-key/trust.json; ` +
          `for a receipt under ${nodeTrust.state}: --trust ${nodeTrust.path}`,
      });
    }
    throw err;
  }
  // TM-17: any key can sign a self-consistent receipt. Without a trust
  // anchor nothing says the node is one you trust, so that is a trust
  // failure (E_TRUST, the status of an untrusted node), after the schema and
  // signature checks so a forged receipt still reports what is wrong with it.
  if (!r.anchored && !values["self-consistent-only"]) {
    throw new WasmError(
      "E_TRUST",
      `the receipt is self-consistent (signed by ${r.node}), but no --trust anchors that node`,
      {
        hint:
          `pass --trust ${nodeTrust.path} (the node's trust file: <state>/node-key/trust.json ` +
          `of the node that ran the job), or --self-consistent-only to check only that the receipt is intact`,
      },
    );
  }
  // One rule (cli/output.ts): a terminal gets the line, a pipe or --json the JSON.
  printResult(
    {
      ok: true,
      node: r.node,
      anchored: r.anchored,
      trust: values.trust ?? null,
      outcome: r.outcome ?? null,
      exit_code: r.exitCode,
      module: r.module,
      input: r.input,
      output: r.output,
    },
    () =>
      `${CONSOLE_PREFIX} receipt ok: node ${r.node} ${
        r.anchored
          ? `(trusted: its key is in ${values.trust})`
          : `(self-consistent only; pass --trust ${nodeTrust.path} to check the node)`
      } outcome ${r.outcome ?? "unrecorded"} exit ${r.exitCode} module ${r.module}`,
    { json: values.json, isTerminal: io.isTerminal, out: io.line },
  );
  return 0;
}

/**
 * The trust file of the node that signed a receipt, from where the receipt
 * lies: `wasm run` stores receipts in `<state>/receipts/` and the node's
 * key in `<state>/node-key/trust.json`; a receipt elsewhere points at the
 * default state directory.
 */
export function nodeTrustFile(receiptPath: string): { state: string; path: string } {
  const m = /^(.*)\/receipts\/[^/]+$/.exec(receiptPath);
  const state = m ? (m[1] || "/") : DEFAULT_STATE_DIR;
  return { state, path: `${state.replace(/\/$/, "")}/${NODE_KEY_DIR}/trust.json` };
}

/** Dispatches `wasm <command>`. */
export function runWasm(args: string[], io: WasmIo): Promise<number> {
  const [command, ...rest] = args;
  switch (command) {
    case "run":
      return cmdRun(rest, io);
    case "postboot":
      return cmdPostboot(rest, io);
    case "receipt":
      return cmdReceipt(rest, io);
    default:
      throw new UsageError(
        command === undefined ? "missing command" : `unknown command '${command}'`,
        `${RUN_USAGE}\n      ${POSTBOOT_USAGE}\n      ${RECEIPT_USAGE}`,
      );
  }
}
