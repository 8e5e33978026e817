/**
 * Execution receipts (formats.md §7): what a node ran, on what input, with
 * what result and limits, signed with the node key like a manifest (JCS of
 * the document without `signatures`). Decoding is strict: a receipt is
 * checked over the exact bytes read, then decoded into a readonly value
 * (TM-17: a forged or altered receipt is rejected).
 *
 * Beyond §7's members a receipt carries `outcome` (why the job ended) and
 * `error` (a short reason, empty on success), `limits.output_bytes`,
 * `args` (the job's argv, every string as the job received it) and, when a
 * directory was granted, `grants` (`["dir:ro:/data"]`) with `dir_digest`
 * (`sha256:` over the directory's files as the host read them before the
 * run, {@link ./dir_digest.ts}): every input of the job is bound (TM-17).
 * Verification requires `args`, and `dir_digest` whenever `grants` holds a
 * `dir:` grant; unknown members are covered by the signature. Each signature entry also
 * carries `public` (base64 of the raw node key, as DHT records do, §5) so a
 * receipt can be checked for self-consistency without the node's trust file;
 * only `--trust` says whether the node is one you trust.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { readFileCapped, writeFileAtomic } from "../core/mod.ts";
import type { SigningKey } from "../sign/mod.ts";
import {
  decodeBase64,
  decodeSignatures,
  encodeBase64,
  isJsonObject,
  isKeyid,
  type JsonValue,
  keyidOf,
  parseDocument,
  parseUtcTime,
  signEd25519,
  signedBytes,
  type Trust,
  verifyStrict,
} from "../verify/mod.ts";
import { WasmError } from "./errors.ts";
import type { JobResult, Outcome } from "./runner.ts";

/** Largest receipt read, in bytes. */
export const MAX_RECEIPT_BYTES = 64 * 1024;
/** Directory under the state dir where receipts are stored. */
export const RECEIPTS_DIR = "receipts";

const DIGEST_RE = /^sha256:[0-9a-f]{64}$/;
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

/** A decoded, checked receipt. */
export interface Receipt {
  /** Receipt format version. */
  readonly schema: 1;
  /** `sha256:<hex>` of the module (or component) bytes that ran. */
  readonly module: string;
  /** `sha256:<hex>` of the job's input. */
  readonly input: string;
  /** `sha256:<hex>` of the job's stdout. */
  readonly output: string;
  /** The job's exit status, or -1 when it did not exit by itself. */
  readonly exitCode: number;
  /** When the job was started (whole seconds). */
  readonly startedAt: Date;
  /** Spawn-to-result time in microseconds. */
  readonly wallUs: number;
  /** Keyid (`ed25519:<hex>`) of the node key that signed the receipt. */
  readonly node: string;
  /** The memory cap (bytes) and timeout (milliseconds) the job ran under. */
  readonly limits: { readonly memoryBytes: number; readonly timeoutMs: number };
  /** How the job ended (undefined in a receipt that does not say). */
  readonly outcome: Outcome | undefined;
  /** Human reason for any outcome other than `ok`; empty on success. */
  readonly error: string;
  /** The job's argv as it received it. */
  readonly args: readonly string[];
  /** Digest of the granted directory's contents, when one was granted. */
  readonly dirDigest: string | undefined;
  /** True when the node key was found in a trust file, not only embedded. */
  readonly anchored: boolean;
  /** The whole signed document as read, extra members included. */
  readonly document: { readonly [key: string]: JsonValue };
}

/** `sha256:<hex>` of `bytes`. */
export function sha256Digest(bytes: Uint8Array): string {
  return "sha256:" + createHash("sha256").update(bytes).digest("hex");
}

/** The unsigned receipt document for a finished job (formats.md §7). */
export function buildReceipt(
  job: {
    module: Uint8Array;
    input: Uint8Array;
    args: readonly string[];
    dir?: { guestPath: string; digest: string };
  },
  result: JobResult,
  node: string,
): Record<string, JsonValue> {
  return {
    ...(job.dir ? { grants: [`dir:ro:${job.dir.guestPath}`], dir_digest: job.dir.digest } : {}),
    args: [...job.args],
    schema: 1,
    module: sha256Digest(job.module),
    input: sha256Digest(job.input),
    output: sha256Digest(result.stdout),
    exit_code: result.exitCode,
    started_at: result.startedAt.toISOString().replace(/\.\d{3}Z$/, "Z"),
    wall_us: result.wallUs,
    node,
    limits: {
      memory_bytes: result.limits.memoryBytes,
      timeout_ms: result.limits.timeoutMs,
      output_bytes: result.limits.outputBytes,
    },
    outcome: result.outcome,
    error: result.error,
  };
}

/** Signs a receipt document with the node key; returns the signed document. */
export function signReceipt(
  doc: Record<string, JsonValue>,
  key: SigningKey,
): Record<string, JsonValue> {
  if (doc.node !== key.keyid) throw new TypeError("the receipt names another node key");
  const sig = signEd25519(key.key, signedBytes(doc));
  return {
    ...doc,
    signatures: [{ keyid: key.keyid, public: encodeBase64(key.publicRaw), sig: encodeBase64(sig) }],
  };
}

/** The bytes a receipt is stored as. */
export function formatReceipt(doc: Record<string, JsonValue>): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(doc, null, 2) + "\n");
}

/**
 * Stores receipt bytes under `<state>/receipts/`, named by time and digest,
 * never replacing a file. Returns the path.
 */
export async function storeReceipt(
  stateDir: string,
  bytes: Uint8Array,
  startedAt: Date,
): Promise<string> {
  const dir = `${stateDir}/${RECEIPTS_DIR}`;
  const stamp = startedAt.toISOString().replace(/[-:]/g, "").replace(/\.\d{3}Z$/, "Z");
  const path = `${dir}/${stamp}-${sha256Digest(bytes).slice(7, 23)}.json`;
  try {
    await Deno.mkdir(dir, { recursive: true, mode: 0o755 });
    await writeFileAtomic(path, bytes, { mode: 0o644, createNew: true });
  } catch (err) {
    throw new WasmError("E_IO", `cannot store the receipt in ${dir}: ${(err as Error).message}`, {
      cause: err,
      hint: "pass --state with a directory the 'wasm' permission set may write, or --private",
    });
  }
  return path;
}

function bad(message: string): WasmError {
  return new WasmError("E_RECEIPT", `not a valid receipt: ${message}`, {
    hint: "a receipt is the JSON document 'deno task wasm run' stored (formats.md §7)",
  });
}

function nonNegInt(v: JsonValue | undefined, name: string): number {
  if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 0) {
    throw bad(`'${name}' must be a non-negative integer`);
  }
  return v;
}

function digest(doc: { readonly [k: string]: JsonValue }, name: string): string {
  const v = doc[name];
  if (typeof v !== "string" || !DIGEST_RE.test(v)) throw bad(`'${name}' must be sha256:<64 hex>`);
  return v;
}

/**
 * Checks receipt bytes: strict JSON, the §7 schema, one signature by the
 * node key that verifies over the JCS bytes; `what` names the receipt in
 * errors. With `trust`, the node key must be in it and is taken from it;
 * without, the embedded `public` is used and must hash to the keyid: that
 * proves only self-consistency (anyone can sign a receipt), so check
 * {@link Receipt.anchored} or pass a trust. At most 64 KiB. Throws
 * {@link WasmError}: E_RECEIPT (schema), E_SIGNATURE (bad signature),
 * E_TRUST (node not trusted).
 */
export function verifyReceipt(bytes: Uint8Array, what: string, trust?: Trust): Receipt {
  let doc: { readonly [k: string]: JsonValue };
  try {
    doc = parseDocument(bytes, what, MAX_RECEIPT_BYTES);
  } catch (err) {
    throw bad((err as Error).message);
  }
  if (doc.schema !== 1) throw bad("'schema' must be the integer 1");
  const module = digest(doc, "module");
  const input = digest(doc, "input");
  const output = digest(doc, "output");
  const exitCode = doc.exit_code;
  if (typeof exitCode !== "number" || !Number.isSafeInteger(exitCode) || exitCode < -1) {
    throw bad("'exit_code' must be an integer >= -1");
  }
  const startedText = doc.started_at;
  const startedAt = typeof startedText === "string" ? parseUtcTime(startedText) : undefined;
  if (!startedAt) throw bad("'started_at' must be RFC 3339 UTC ending in Z");
  const wallUs = nonNegInt(doc.wall_us, "wall_us");
  const node = doc.node;
  if (typeof node !== "string" || !isKeyid(node)) throw bad("'node' must be ed25519:<64 hex>");
  const limits = doc.limits;
  if (!isJsonObject(limits)) throw bad("'limits' must be an object");
  const memoryBytes = nonNegInt(limits.memory_bytes, "limits.memory_bytes");
  const timeoutMs = nonNegInt(limits.timeout_ms, "limits.timeout_ms");
  if (limits.output_bytes !== undefined) nonNegInt(limits.output_bytes, "limits.output_bytes");
  let outcome: Outcome | undefined;
  if (doc.outcome !== undefined) {
    if (typeof doc.outcome !== "string" || !OUTCOMES.has(doc.outcome)) {
      throw bad(`'outcome' must be one of ${[...OUTCOMES].join(", ")}`);
    }
    outcome = doc.outcome as Outcome;
  }
  let error = "";
  if (doc.error !== undefined) {
    if (typeof doc.error !== "string") throw bad("'error' must be a string");
    error = doc.error;
  }
  if (doc.grants !== undefined) {
    if (!Array.isArray(doc.grants) || doc.grants.some((g) => typeof g !== "string")) {
      throw bad("'grants' must be an array of strings");
    }
  }
  // TM-17: every input is bound: the argv, and a granted directory's contents.
  const args = doc.args;
  if (!Array.isArray(args) || args.some((a) => typeof a !== "string")) {
    throw bad("'args' must be an array of strings (the job's argv)");
  }
  const grantsDir = Array.isArray(doc.grants) &&
    doc.grants.some((g) => typeof g === "string" && g.startsWith("dir:"));
  let dirDigest: string | undefined;
  if (doc.dir_digest !== undefined || grantsDir) {
    if (!grantsDir) throw bad("'dir_digest' without a dir grant");
    dirDigest = digest(doc, "dir_digest");
  }
  if (outcome === "ok" && exitCode !== 0) throw bad("outcome 'ok' with a non-zero exit code");
  const signatures = decodeSignatures(doc.signatures, (m) => bad(m));
  if (signatures.length !== 1) throw bad("a receipt carries exactly one signature, by its node");
  const [entry] = signatures;
  if (entry.keyid !== node) throw bad(`signed by ${entry.keyid}, but 'node' is ${node}`);

  let publicRaw: Uint8Array | undefined;
  if (trust) {
    const key = trust.keys.get(node);
    if (!key) {
      throw new WasmError("E_TRUST", `the receipt's node ${node} is not in the trust file`, {
        hint: "a node's key is in <state>/node-key/trust.json on that node",
      });
    }
    publicRaw = key.publicKey;
  } else {
    const raw = (doc.signatures as readonly JsonValue[])[0];
    const embedded = isJsonObject(raw) && typeof raw.public === "string"
      ? decodeBase64(raw.public)
      : undefined;
    if (!embedded || embedded.length !== 32) {
      throw new WasmError(
        "E_SIGNATURE",
        "the receipt embeds no node key and no --trust was given",
        {
          hint: "pass --trust with the node's trust file",
        },
      );
    }
    // TM-17: an embedded key only counts if it is the key the receipt names.
    if (keyidOf(embedded) !== node) {
      throw new WasmError(
        "E_SIGNATURE",
        "the embedded public key does not hash to the node keyid",
        {
          hint: "the receipt was altered or forged",
        },
      );
    }
    publicRaw = embedded;
  }
  if (!verifyStrict(publicRaw, signedBytes(doc), entry.sig)) {
    throw new WasmError("E_SIGNATURE", `the receipt's signature by ${node} does not verify`, {
      hint: "the receipt was altered after signing, or forged",
    });
  }
  return Object.freeze({
    schema: 1 as const,
    module,
    input,
    output,
    exitCode,
    startedAt,
    wallUs,
    node,
    limits: Object.freeze({ memoryBytes, timeoutMs }),
    outcome,
    error,
    args: Object.freeze([...args as string[]]),
    dirDigest,
    anchored: trust !== undefined,
    document: doc,
  });
}

/** Reads (at most 64 KiB) and verifies a receipt file, as {@link verifyReceipt}; E_IO when unreadable. */
export async function verifyReceiptFile(path: string, trust?: Trust): Promise<Receipt> {
  let bytes: Uint8Array;
  try {
    bytes = await readFileCapped(path, MAX_RECEIPT_BYTES);
  } catch (err) {
    throw new WasmError("E_IO", `cannot read receipt ${path}: ${(err as Error).message}`, {
      cause: err,
    });
  }
  return verifyReceipt(bytes, path, trust);
}
