/**
 * The node's limits and configuration: named constants with their units,
 * the config file, and the checks every offer passes before anything runs.
 *
 * @module
 */
import { readFileCapped } from "../core/mod.ts";
import { isJsonObject, isKeyid, type JsonValue, parseStrictJson } from "../verify/mod.ts";
import {
  MAX_INPUT_BYTES,
  MAX_MEMORY_BYTES,
  MAX_MODULE_BYTES,
  MAX_TIMEOUT_MS,
} from "../wasm/mod.ts";
import { NodeError } from "./errors.ts";

/** Default jobs running at once. */
export const DEFAULT_MAX_CONCURRENT_JOBS = 2;
/** Default jobs waiting for a slot; beyond it offers are rejected `busy`. */
export const DEFAULT_QUEUE_LENGTH = 16;
/** Default ceiling on a job's memory, in bytes (256 MiB). */
export const DEFAULT_MAX_JOB_MEMORY_BYTES = 256 * 1024 * 1024;
/** Default ceiling on a job's wall-clock timeout, in ms. */
export const DEFAULT_MAX_JOB_TIMEOUT_MS = 60_000;
/** Default ceiling on a job's output, in bytes (1 MiB). */
export const DEFAULT_MAX_OUTPUT_BYTES = 1024 * 1024;
/** Default largest module accepted, in bytes (16 MiB, the sandbox's own cap). */
export const DEFAULT_MAX_MODULE_BYTES: number = MAX_MODULE_BYTES;
/** Default largest input accepted, in bytes (1 MiB). */
export const DEFAULT_MAX_INPUT_BYTES = 1024 * 1024;
/** Default offers one peer may make per minute on an `--open` node. */
export const DEFAULT_OPEN_OFFERS_PER_MINUTE = 600;
/** Largest config file read, in bytes. */
export const MAX_CONFIG_BYTES = 64 * 1024;
/** Most submitter keys an allow-list may hold. */
export const MAX_ALLOWED_KEYS = 4096;

/** The ceilings a node enforces whatever an offer says. */
export interface NodeLimits {
  /** Jobs running at once. */
  readonly maxConcurrentJobs: number;
  /** Jobs waiting for a slot. */
  readonly queueLength: number;
  /** Largest memory cap a job may ask for, in bytes. */
  readonly maxMemoryBytes: number;
  /** Longest timeout a job may ask for, in ms. */
  readonly maxTimeoutMs: number;
  /** Largest output cap a job may ask for, in bytes. */
  readonly maxOutputBytes: number;
  /** Largest module, in bytes. */
  readonly maxModuleBytes: number;
  /** Largest input, in bytes. */
  readonly maxInputBytes: number;
  /** Offers one peer may make per minute when the node is open. */
  readonly openOffersPerMinute: number;
}

/** The defaults of {@link NodeLimits}. */
export const DEFAULT_NODE_LIMITS: NodeLimits = Object.freeze({
  maxConcurrentJobs: DEFAULT_MAX_CONCURRENT_JOBS,
  queueLength: DEFAULT_QUEUE_LENGTH,
  maxMemoryBytes: DEFAULT_MAX_JOB_MEMORY_BYTES,
  maxTimeoutMs: DEFAULT_MAX_JOB_TIMEOUT_MS,
  maxOutputBytes: DEFAULT_MAX_OUTPUT_BYTES,
  maxModuleBytes: DEFAULT_MAX_MODULE_BYTES,
  maxInputBytes: DEFAULT_MAX_INPUT_BYTES,
  openOffersPerMinute: DEFAULT_OPEN_OFFERS_PER_MINUTE,
});

/** The hard bounds of each limit: a config may lower a ceiling, never lift the sandbox's. */
const BOUNDS: Readonly<Record<keyof NodeLimits, [number, number]>> = {
  maxConcurrentJobs: [1, 256],
  queueLength: [0, 4096],
  maxMemoryBytes: [65_536, MAX_MEMORY_BYTES],
  maxTimeoutMs: [1, MAX_TIMEOUT_MS],
  maxOutputBytes: [0, MAX_INPUT_BYTES],
  maxModuleBytes: [8, MAX_MODULE_BYTES],
  maxInputBytes: [0, MAX_INPUT_BYTES],
  openOffersPerMinute: [1, 1_000_000],
};

/** Checks and completes limits; throws {@link NodeError} `E_CONFIG` outside the bounds. */
export function resolveNodeLimits(l: Partial<NodeLimits> = {}): NodeLimits {
  const out = { ...DEFAULT_NODE_LIMITS, ...l };
  for (const [k, [lo, hi]] of Object.entries(BOUNDS) as [keyof NodeLimits, [number, number]][]) {
    const v = out[k];
    if (!Number.isSafeInteger(v) || v < lo || v > hi) {
      throw new NodeError("E_CONFIG", `limit ${k} must be an integer ${lo}..${hi}, got ${v}`, {
        hint: "fix the flag or the config file's 'limits' member",
      });
    }
  }
  return Object.freeze(out);
}

/** What a config file may say (every member optional; flags override it). */
export interface NodeConfig {
  /** Listen multiaddrs. */
  readonly listen?: readonly string[];
  /** Bootstrap multiaddrs. */
  readonly bootstrap?: readonly string[];
  /** Submitter keyids (`ed25519:<hex>`) allowed to submit. */
  readonly allow?: readonly string[];
  /** Accept any submitter, rate-limited per peer. */
  readonly open?: boolean;
  /** Limits that differ from the defaults. */
  readonly limits?: Partial<NodeLimits>;
}

function bad(path: string, message: string): NodeError {
  return new NodeError("E_CONFIG", `${path}: ${message}`, {
    hint:
      'a node config is JSON: {"listen": [...], "bootstrap": [...], "allow": ["ed25519:<hex>"], "open": false, "limits": {"maxConcurrentJobs": 2, ...}}',
  });
}

function strings(v: JsonValue | undefined, path: string, name: string): string[] | undefined {
  if (v === undefined) return undefined;
  if (!Array.isArray(v) || v.some((x) => typeof x !== "string")) {
    throw bad(path, `'${name}' must be an array of strings`);
  }
  return v as string[];
}

/** Parses a config file's bytes (strict JSON, unknown members refused). */
export function parseNodeConfig(bytes: Uint8Array, path: string): NodeConfig {
  let doc: JsonValue;
  try {
    doc = parseStrictJson(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch (err) {
    throw bad(path, `not strict JSON: ${(err as Error).message}`);
  }
  if (!isJsonObject(doc)) throw bad(path, "must be a JSON object");
  for (const k of Object.keys(doc)) {
    if (!["listen", "bootstrap", "allow", "open", "limits"].includes(k)) {
      throw bad(path, `unknown member '${k}'`);
    }
  }
  const allow = strings(doc.allow, path, "allow");
  if (allow && allow.length > MAX_ALLOWED_KEYS) {
    throw bad(path, `more than ${MAX_ALLOWED_KEYS} keys`);
  }
  for (const k of allow ?? []) if (!isKeyid(k)) throw bad(path, `'${k}' is not ed25519:<64 hex>`);
  if (doc.open !== undefined && typeof doc.open !== "boolean") {
    throw bad(path, "'open' must be true or false");
  }
  let limits: Partial<NodeLimits> | undefined;
  if (doc.limits !== undefined) {
    if (!isJsonObject(doc.limits)) throw bad(path, "'limits' must be an object");
    const l: Record<string, number> = {};
    for (const [k, v] of Object.entries(doc.limits)) {
      if (!(k in BOUNDS)) throw bad(path, `unknown limit '${k}'`);
      if (typeof v !== "number") throw bad(path, `limit '${k}' must be a number`);
      l[k] = v;
    }
    limits = l as Partial<NodeLimits>;
    resolveNodeLimits(limits);
  }
  return {
    listen: strings(doc.listen, path, "listen"),
    bootstrap: strings(doc.bootstrap, path, "bootstrap"),
    allow,
    open: doc.open as boolean | undefined,
    limits,
  };
}

/** Reads a config file (at most {@link MAX_CONFIG_BYTES}); `undefined` when it does not exist and `optional`. */
export async function loadNodeConfig(
  path: string,
  optional = false,
): Promise<NodeConfig | undefined> {
  let bytes: Uint8Array;
  try {
    bytes = await readFileCapped(path, MAX_CONFIG_BYTES);
  } catch (err) {
    if (optional && err instanceof Deno.errors.NotFound) return undefined;
    throw new NodeError("E_CONFIG", `cannot read the config ${path}: ${(err as Error).message}`, {
      cause: err,
      hint: "pass --config with a readable JSON file in the node's state directory or /etc/phase",
    });
  }
  return parseNodeConfig(bytes, path);
}
