/**
 * The `node` and `job` commands (entrypoints node/main.ts, node/job_main.ts).
 *
 * @module
 */
import { type Logger, PhaseError, readFileCapped, UsageError } from "../core/mod.ts";
import { parseFlags, parseIntFlag } from "../cli/mod.ts";
import { MAX_MODULE_BYTES, storeReceipt, WasmError } from "../wasm/mod.ts";
import { loadOrCreateNodeKey } from "../wasm/mod.ts";
import { JOB_STATE_DIR, JOB_USAGE, NODE_STATE_DIR, NODE_USAGE } from "./_help.ts";
import { DisagreeError, NodeError } from "./errors.ts";
import { loadIdentity } from "./key.ts";
import { loadNodeConfig, type NodeLimits } from "./limits.ts";
import { Plasm } from "./plasm.ts";
import { PlasmNode, STATUS_FILE, STATUS_INTERVAL_MS } from "./server.ts";

/** Permission set of `deno task node`. */
export const NODE_PERMISSION_SET = "node";
/** Permission set of `deno task job`. */
export const JOB_PERMISSION_SET = "job";
/** Largest status file read, in bytes. */
export const MAX_STATUS_BYTES = 64 * 1024;

/** Where the commands write. */
export interface NodeIo {
  /** Raw bytes on stdout (the job's output). */
  readonly stdout: (bytes: Uint8Array) => void;
  /** One line on stdout. */
  readonly line: (text: string) => void;
  /** One line on stderr. */
  readonly note: (text: string) => void;
  /** Log events. */
  readonly log: Logger;
  /** Resolves when the daemon should stop (SIGINT/SIGTERM). */
  readonly stopped?: Promise<void>;
  /** Called once the daemon listens (tests). */
  readonly onStarted?: (node: PlasmNode) => void;
}

function int(v: string | undefined, flag: string, usage: string): number | undefined {
  return parseIntFlag(v, flag, {}, usage);
}

/** The flags of `deno task node` (its `--help` lists each one; testing/help_test.ts checks). */
export const NODE_FLAGS = {
  state: { type: "string" },
  listen: { type: "string", multiple: true },
  bootstrap: { type: "string", multiple: true },
  config: { type: "string" },
  allow: { type: "string", multiple: true },
  open: { type: "boolean" },
  "no-mdns": { type: "boolean" },
  "fresh-worker-per-job": { type: "boolean" },
  "max-concurrent": { type: "string" },
  queue: { type: "string" },
  "max-memory-mb": { type: "string" },
  "max-timeout-ms": { type: "string" },
  "max-output-bytes": { type: "string" },
  "max-module-bytes": { type: "string" },
  "max-input-bytes": { type: "string" },
  "offers-per-minute": { type: "string" },
  json: { type: "boolean" },
} as const;

/** `deno task node [id|status] ...`; returns the exit status. */
export async function runNodeCli(args: string[], io: NodeIo): Promise<number> {
  const { values: v, positionals } = parseFlags(args, NODE_FLAGS, NODE_USAGE, true);
  const state = v.state ?? NODE_STATE_DIR;
  const sub = positionals[0] ?? "run";
  if (positionals.length > 1 || !["run", "id", "status"].includes(sub)) {
    throw new UsageError(`unknown command '${positionals.join(" ")}'`, NODE_USAGE);
  }
  if (sub === "id") {
    const id = await loadIdentity(state);
    io.line(id.peerId);
    io.note(
      `phase-node: node key ${id.keyid}${id.created ? " (created)" : ""} in ${state}/node-key`,
    );
    return 0;
  }
  if (sub === "status") return await status(state, v.json === true, io);
  const config = v.config
    ? await loadNodeConfig(v.config)
    : await loadNodeConfig(`${state}/config.json`, true);
  const mb = int(v["max-memory-mb"], "max-memory-mb", NODE_USAGE);
  const flagLimits: Partial<Record<keyof NodeLimits, number | undefined>> = {
    maxConcurrentJobs: int(v["max-concurrent"], "max-concurrent", NODE_USAGE),
    queueLength: int(v.queue, "queue", NODE_USAGE),
    maxMemoryBytes: mb === undefined ? undefined : mb * 1024 * 1024,
    maxTimeoutMs: int(v["max-timeout-ms"], "max-timeout-ms", NODE_USAGE),
    maxOutputBytes: int(v["max-output-bytes"], "max-output-bytes", NODE_USAGE),
    maxModuleBytes: int(v["max-module-bytes"], "max-module-bytes", NODE_USAGE),
    maxInputBytes: int(v["max-input-bytes"], "max-input-bytes", NODE_USAGE),
    openOffersPerMinute: int(v["offers-per-minute"], "offers-per-minute", NODE_USAGE),
  };
  const limits = { ...config?.limits };
  for (const [k, x] of Object.entries(flagLimits)) {
    if (x !== undefined) (limits as Record<string, number>)[k] = x;
  }
  for (const k of v.allow ?? []) {
    if (!/^ed25519:[0-9a-f]{64}$/.test(k)) {
      throw new UsageError(
        `--allow takes a keyid ed25519:<64 hex>, got '${k}'`,
        "'deno task job key' prints a submitter's keyid",
      );
    }
  }
  const listen = v.listen ?? config?.listen;
  let node: PlasmNode;
  try {
    node = await PlasmNode.start({
      stateDir: state,
      listen,
      bootstrap: v.bootstrap ?? config?.bootstrap,
      allow: [...(config?.allow ?? []), ...(v.allow ?? [])],
      open: v.open ?? config?.open ?? false,
      mdns: v["no-mdns"] !== true,
      freshWorkerPerJob: v["fresh-worker-per-job"] === true,
      limits,
      logger: io.log,
    });
  } catch (err) {
    // libp2p reports a taken or foreign address as a generic Error: it is
    // the user's address, not a bug.
    if (/EADDRINUSE|EADDRNOTAVAIL|failed to be listened on/.test(String(err))) {
      throw new PhaseError(
        "E_BIND",
        `cannot listen on ${(listen ?? []).join(", ") || "the default address"}: ${
          /EADDRINUSE/.test(String(err))
            ? "address already in use"
            : "not an address of this machine"
        }`,
        {
          cause: err,
          hint:
            "another node may be running there ('deno task node status'); pick another --listen port",
        },
      );
    }
    throw err;
  }
  io.line(`phase-node: peer ${node.identity.peerId}`);
  io.line(`phase-node: node key ${node.identity.keyid}`);
  for (const a of node.multiaddrs()) io.line(`phase-node: listening ${a}`);
  io.onStarted?.(node);
  await (io.stopped ?? new Promise<void>(() => {}));
  await node.stop();
  return 0;
}

async function status(state: string, json: boolean, io: NodeIo): Promise<number> {
  const path = `${state}/${STATUS_FILE}`;
  let doc: Record<string, unknown>;
  try {
    doc = JSON.parse(new TextDecoder().decode(await readFileCapped(path, MAX_STATUS_BYTES)));
  } catch (err) {
    throw new NodeError("E_IO", `cannot read ${path}: ${(err as Error).message}`, {
      cause: err,
      hint:
        `is the node running with --state ${state}? it writes ${STATUS_FILE} every ${STATUS_INTERVAL_MS} ms`,
    });
  }
  const age = Date.now() - Date.parse(String(doc.updatedAt));
  const stale = !(age < 5 * STATUS_INTERVAL_MS);
  if (json) {
    io.line(JSON.stringify({ ...doc, stale }));
    return 0;
  }
  const r = (doc.refusals ?? {}) as Record<string, number>;
  io.line(
    `peer      ${String(doc.peerId)}${
      stale ? `  (STALE: last update ${Math.round(age / 1000)} s ago; is the node running?)` : ""
    }`,
  );
  io.line(`peers     ${Number(doc.peers)}`);
  io.line(
    `jobs      ${Number(doc.running)} running, ${Number(doc.queued)} queued, ${
      Number(doc.finished)
    } finished, ${Number(doc.failed)} failed, ${Number(doc.cancelled ?? 0)} cancelled`,
  );
  io.line(`refusals  ${Object.entries(r).map(([k, n]) => `${k} ${Number(n)}`).join(", ")}`);
  for (const a of (doc.multiaddrs ?? []) as string[]) io.line(`listening ${String(a)}`);
  return 0;
}

/** The flags of `deno task job` (its `--help` lists each one; testing/help_test.ts checks). */
export const JOB_FLAGS = {
  peer: { type: "string" },
  input: { type: "string" },
  "timeout-ms": { type: "string" },
  "memory-mb": { type: "string" },
  "reexecute-on": { type: "string" },
  state: { type: "string" },
  json: { type: "boolean" },
} as const;

const OUTCOME_CODES = {
  exit: "E_EXIT",
  trap: "E_TRAP",
  timeout: "E_TIMEOUT",
  memory: "E_MEMORY",
  output: "E_OUTPUT",
  invalid_module: "E_MODULE",
  import_denied: "E_IMPORT",
  cancelled: "E_CANCELLED",
} as const;

/** `deno task job submit|key ...`; returns the exit status. */
export async function runJobCli(args: string[], io: NodeIo): Promise<number> {
  const { values: v, positionals } = parseFlags(args, JOB_FLAGS, JOB_USAGE, true);
  const state = v.state ?? JOB_STATE_DIR;
  const [sub, modulePath, ...rest] = positionals;
  if (sub === "key" && modulePath === undefined) {
    const k = await loadOrCreateNodeKey(state);
    io.line(k.keyid);
    io.note(
      `phase-job: submitter key in ${state}/node-key; a node accepts it with --allow ${k.keyid}`,
    );
    return 0;
  }
  if (sub !== "submit" || modulePath === undefined || rest.length) {
    throw new UsageError(
      `expected 'submit MODULE' or 'key', got '${positionals.join(" ")}'`,
      JOB_USAGE,
    );
  }
  if (!v.peer) throw new UsageError("missing required flag --peer", JOB_USAGE);
  let module: Uint8Array;
  try {
    module = await readFileCapped(modulePath, MAX_MODULE_BYTES);
  } catch (err) {
    throw new NodeError("E_IO", `cannot read ${modulePath}: ${(err as Error).message}`, {
      cause: err,
      hint: "the 'job' set reads modules under ./wasm, ./.phase/job and /tmp/phase",
    });
  }
  const key = await loadOrCreateNodeKey(state);
  const plasm = await Plasm.connect({ key });
  try {
    const reexecuteOn = v["reexecute-on"];
    let out;
    try {
      out = await plasm.submit(module, {
        input: v.input ?? "",
        timeoutMs: int(v["timeout-ms"], "timeout-ms", JOB_USAGE),
        memoryMb: int(v["memory-mb"], "memory-mb", JOB_USAGE),
        peers: [v.peer],
        verify: reexecuteOn ? "reexecute" : "receipt",
        reexecuteOn,
      }).result();
    } catch (err) {
      if (err instanceof DisagreeError) {
        const a = await storeReceipt(state, err.first, new Date());
        const b = await storeReceipt(state, err.second, new Date());
        io.note(`phase-job: receipts that disagree: ${a} ${b}`);
      }
      throw err;
    }
    const path = await storeReceipt(state, out.receiptBytes, out.receipt.startedAt);
    if (v.json) {
      io.line(JSON.stringify({
        peer: out.peer,
        node: out.receipt.node,
        outcome: out.outcome,
        exit_code: out.receipt.exitCode,
        output: new TextDecoder().decode(out.output),
        output_digest: out.receipt.output,
        receipt: path,
        verified: true,
        reexecuted_on: out.second?.peer,
      }));
    } else {
      io.stdout(out.output);
      if (out.output.length && out.output[out.output.length - 1] !== 10) {
        io.stdout(new Uint8Array([10]));
      }
      io.note(`phase-job: receipt ${path} (verified: node ${out.receipt.node}, peer ${out.peer})`);
      if (out.second) {
        io.note(`phase-job: re-executed on ${out.second.peer}: same output ${out.receipt.output}`);
      }
    }
    if (out.outcome !== "ok") {
      const code = OUTCOME_CODES[out.outcome];
      throw new WasmError(code, `the job ended with '${out.outcome}': ${out.receipt.error}`, {
        hint: `the signed receipt (${path}) records it`,
      });
    }
    return 0;
  } finally {
    await plasm.close();
  }
}
