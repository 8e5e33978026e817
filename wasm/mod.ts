/**
 * Runs untrusted WebAssembly jobs in a sandbox and signs a receipt for each.
 *
 * {@link runJob} runs one job in a fresh Worker that holds no permissions
 * and is terminated at the job's wall-clock timeout (or when its
 * AbortSignal fires); a {@link JobPool} starts such workers ahead of demand,
 * compiles each module once, and lets a worker run the next job only of the
 * same submitter, module and limits (TM-16), each in a fresh instance. A core job is a WASI
 * preview1 command: it may import only preview1 functions (stdin, stdout,
 * stderr, args, clocks, random, exit), sees no filesystem unless one
 * directory is granted read-only ({@link resolveDirGrant}), and its memory
 * and output are capped ({@link JobLimits}, {@link DEFAULT_LIMITS}). A
 * component job (world `phase:job/job`) runs through jco glue transpiled
 * at build time and listed in the shipped allow-list
 * ({@link loadComponent}). Whatever the job does (trap, loop, allocate,
 * flood its output, import what it may not) is an {@link Outcome}, never
 * an error of the host process (TM-16). The sandbox needs Deno's unstable
 * `worker-options` feature: a project that runs jobs puts
 * `"unstable": ["worker-options"]` in its deno.json, and `runJob` refuses
 * with {@link WasmError} `E_RUNTIME` otherwise.
 *
 * {@link runAndSign} runs a job and signs its receipt (formats.md §7: the
 * digests of module, input and output, the argv, the limits, the outcome,
 * and with a granted directory its {@link dirDigest}) with the node's
 * Ed25519 key, created on first use under the state directory
 * ({@link nodeKeyPaths}). {@link verifyReceipt} and
 * {@link verifyReceiptFile} check a receipt over its exact bytes against a
 * trust file naming the node (TM-17).
 *
 * @example Run the bundled hello job, then check its signed receipt
 * ```ts
 * import { helloWasmPath, nodeKeyPaths, runAndSign, verifyReceipt } from "./mod.ts";
 * import { parseTrust } from "../verify/mod.ts";
 *
 * await Deno.mkdir("/tmp/phase", { recursive: true });
 * const state = await Deno.makeTempDir({ dir: "/tmp/phase", prefix: "wasm-doc-" });
 * try {
 *   const job = await runAndSign({
 *     module: await Deno.readFile(helloWasmPath()),
 *     input: new TextEncoder().encode("Hello, World"),
 *     limits: { timeoutMs: 2_000 },
 *     stateDir: state,
 *     private: false,
 *   });
 *   const stdout = new TextDecoder().decode(job.result.stdout);
 *   console.log(job.result.outcome, stdout); // ok dlroW ,olleH
 *
 *   // Anyone who trusts this node's key can check what it ran.
 *   const trust = parseTrust(await Deno.readFile(nodeKeyPaths(state).trust));
 *   const receipt = verifyReceipt(job.receiptBytes, "receipt", trust);
 *   if (!receipt.anchored || receipt.output !== job.receipt.output) {
 *     throw new Error("the receipt does not match the job");
 *   }
 *   console.log(receipt.node, receipt.outcome, receipt.wallUs, "µs");
 * } finally {
 *   await Deno.remove(state, { recursive: true });
 * }
 * ```
 *
 * @module
 */
export { runAndSign } from "./cli.ts";
export type { RunAndSignOptions, SignedJob } from "./cli.ts";
export { loadComponent } from "./component.ts";
export { dirDigest } from "./dir_digest.ts";
export { WasmError } from "./errors.ts";
export type { WasmCode } from "./errors.ts";
export { helloWasmPath } from "./hello.ts";
export { ephemeralNodeKey, loadOrCreateNodeKey, nodeKeyPaths } from "./node_key.ts";
export {
  buildReceipt,
  formatReceipt,
  MAX_RECEIPT_BYTES,
  sha256Digest,
  signReceipt,
  storeReceipt,
  verifyReceipt,
  verifyReceiptFile,
} from "./receipt.ts";
export type { Receipt } from "./receipt.ts";
export {
  DEFAULT_LIMITS,
  JobPool,
  MAX_INPUT_BYTES,
  MAX_JOBS_PER_WORKER,
  MAX_MEMORY_BYTES,
  MAX_MODULE_BYTES,
  MAX_TIMEOUT_MS,
  resolveDirGrant,
  REUSE_IDLE_MS,
  runJob,
} from "./runner.ts";
export type {
  ComponentGlue,
  DirGrant,
  JobLimits,
  JobPoolOptions,
  JobResult,
  JobSpec,
  Outcome,
} from "./runner.ts";
