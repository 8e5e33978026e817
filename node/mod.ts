/**
 * The Plasm node and its SDK: remote WASM jobs over libp2p, discovered by
 * capability, answered with receipts signed by the node's key.
 *
 * - {@link PlasmNode} is the daemon (`deno task node`): a libp2p node
 *   (TCP, noise, yamux, identify, the Phase Kademlia DHT) whose Ed25519
 *   node key is both its peer id and the key that signs receipts and its
 *   {@link Capability} record. It answers `/phase/job/1.0.0`
 *   ({@link JOB_PROTOCOL}: length-prefixed frames, a byte cap and a
 *   deadline on every read) only for allowed submitter keys (or, `--open`,
 *   anyone at a per-peer rate), never beyond its {@link NodeLimits}, never
 *   running bytes that do not hash to the offered digest (TM-22).
 * - {@link Plasm} is the client: `connect`, `submit`, `result()`. Every
 *   receipt is verified against the peer's key and what was sent and
 *   received (TM-23); `verify: "reexecute"` runs the job twice and throws
 *   {@link DisagreeError} with both signed receipts when the outputs
 *   differ; a node that fails or vanishes is replaced by the next capable
 *   one; capability records not signed by their peer are ignored (TM-24).
 *
 * @example A node, a client, a verified remote job
 * ```ts
 * import { PlasmNode, Plasm } from "./mod.ts";
 * import { ephemeralNodeKey, helloWasmPath } from "../wasm/mod.ts";
 *
 * await Deno.mkdir("/tmp/phase", { recursive: true });
 * const state = await Deno.makeTempDir({ dir: "/tmp/phase", prefix: "node-doc-" });
 * const key = ephemeralNodeKey(); // the submitter's Ed25519 key
 * const node = await PlasmNode.start({ stateDir: state, allow: [key.keyid], statusFile: false });
 * const plasm = await Plasm.connect({ bootstrap: node.multiaddrs(), key });
 * try {
 *   const job = plasm.submit(await Deno.readFile(helloWasmPath()), {
 *     input: "Hello, World",
 *     timeoutMs: 2_000,
 *     select: { arch: Deno.build.arch },
 *   });
 *   const { output, receipt } = await job.result(); // verified, or it throws
 *   console.log(new TextDecoder().decode(output)); // dlroW ,olleH
 *   if (receipt.node !== node.identity.keyid) throw new Error("signed by another node");
 * } finally {
 *   await plasm.close();
 *   await node.stop();
 *   await Deno.remove(state, { recursive: true });
 * }
 * ```
 *
 * @module
 */
export {
  type Capability,
  CAPABILITY_REFRESH_MS,
  CAPABILITY_TTL_MS,
  type CapabilityInput,
  capabilityKey,
  matches,
  MAX_CAPABILITY_BYTES,
  PLASM_NAMESPACE,
  plasmSelector,
  plasmValidator,
  type Selector,
  signCapability,
  verifyCapability,
} from "./capability.ts";
export {
  DisagreeError,
  type NodeCode,
  NodeError,
  RejectedError,
  type RejectReason,
} from "./errors.ts";
export {
  ephemeralIdentity,
  type Identity,
  identityOf,
  type Libp2pKey,
  loadIdentity,
  peerIdOf,
  publicKeyOfPeerId,
} from "./key.ts";
export {
  DEFAULT_MAX_CONCURRENT_JOBS,
  DEFAULT_MAX_INPUT_BYTES,
  DEFAULT_MAX_JOB_MEMORY_BYTES,
  DEFAULT_MAX_JOB_TIMEOUT_MS,
  DEFAULT_MAX_MODULE_BYTES,
  DEFAULT_MAX_OUTPUT_BYTES,
  DEFAULT_NODE_LIMITS,
  DEFAULT_OPEN_OFFERS_PER_MINUTE,
  DEFAULT_QUEUE_LENGTH,
  loadNodeConfig,
  type NodeConfig,
  type NodeLimits,
  parseNodeConfig,
  resolveNodeLimits,
} from "./limits.ts";
export {
  type ConnectOptions,
  DEFAULT_JOB_MEMORY_MB,
  DEFAULT_JOB_OUTPUT_BYTES,
  DEFAULT_JOB_TIMEOUT_MS,
  type JobOutput,
  Plasm,
  PlasmJob,
  type SubmitOptions,
} from "./plasm.ts";
export {
  CAPABILITY_PROTOCOL,
  checkOffer,
  JOB_PROTOCOL,
  type Offer,
  OFFER_READ_TIMEOUT_MS,
  offerBytes,
  RUNTIMES,
  sha256,
  signOffer,
  transferTimeoutMs,
} from "./protocol.ts";
export { type NodeStats, PlasmNode, type PlasmNodeOptions, STATUS_FILE } from "./server.ts";
