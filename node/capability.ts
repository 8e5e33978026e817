/**
 * Capability records (docs/dht-keys.md, "Plasm"): what a node can run,
 * signed by its node key, so a client can pick a node by capability and
 * ignore any record whose signer is not the peer it names (TM-24).
 *
 * Published in the DHT under `/plasm/node/<peerId>` (value) and announced
 * as a provider of the CID of `/plasm/arch/<arch>`; also answered on
 * `/phase/capability/1.0.0` to connected peers.
 *
 * @module
 */
import { CID } from "multiformats/cid";
import * as raw from "multiformats/codecs/raw";
import { sha256 } from "multiformats/hashes/sha2";
import {
  canonicalArch,
  decodeBase64,
  encodeBase64,
  isJsonObject,
  type JsonValue,
  keyidOf,
  parseDocument,
  signEd25519,
  signedBytes,
  verifyStrict,
} from "../verify/mod.ts";
import type { Identity } from "./key.ts";
import { peerIdOf } from "./key.ts";
import type { NodeLimits } from "./limits.ts";

/** DHT namespace (second path segment) of Plasm keys. */
export const PLASM_NAMESPACE = "plasm";
/** Lifetime of a capability record, in ms. */
export const CAPABILITY_TTL_MS = 30 * 60_000;
/** A node re-signs and republishes its record this often, in ms (well before the TTL). */
export const CAPABILITY_REFRESH_MS = 10 * 60_000;
/** Largest capability record accepted, in bytes. */
export const MAX_CAPABILITY_BYTES = 8 * 1024;
/** Most multiaddrs a record may list. */
export const MAX_CAPABILITY_ADDRS = 16;
/** Clock skew tolerated on `issued_at`, in ms. */
export const MAX_CLOCK_SKEW_MS = 5 * 60_000;

/** A checked capability record. */
export interface Capability {
  /** The node's peer id (its key is the record's signer). */
  readonly peer: string;
  /** The node keyid (`ed25519:<hex>`), the same key. */
  readonly node: string;
  /** `amd64` or `arm64`. */
  readonly arch: string;
  /** CPU cores. */
  readonly cores: number;
  /** Memory of the machine, in bytes (0 when unknown). */
  readonly memoryBytes: number;
  /** Runtimes offered (`wasi-preview1`). */
  readonly runtimes: readonly string[];
  /** The node's ceilings. */
  readonly limits: NodeLimits;
  /** True when the node accepts any submitter (rate-limited). */
  readonly open: boolean;
  /** Where it listens. */
  readonly multiaddrs: readonly string[];
  /** When it was signed and until when it holds, Unix ms. */
  readonly issuedAt: number;
  /** Until when the record holds, Unix ms. */
  readonly expiresAt: number;
}

/** What a node says about itself (signed by {@link signCapability}). */
export type CapabilityInput = Omit<Capability, "peer" | "node" | "issuedAt" | "expiresAt">;

const LIMIT_KEYS: readonly (keyof NodeLimits)[] = [
  "maxConcurrentJobs",
  "queueLength",
  "maxMemoryBytes",
  "maxTimeoutMs",
  "maxOutputBytes",
  "maxModuleBytes",
  "maxInputBytes",
  "openOffersPerMinute",
];
const snake = (k: string) => k.replace(/[A-Z]/g, (c) => "_" + c.toLowerCase());

/** Signs a capability record with the node key; returns its bytes. */
export function signCapability(
  id: Identity,
  cap: CapabilityInput,
  now: number = Date.now(),
): Uint8Array {
  const doc: Record<string, JsonValue> = {
    schema: 1,
    peer: id.peerId,
    node: id.keyid,
    arch: cap.arch,
    cores: cap.cores,
    memory_bytes: cap.memoryBytes,
    runtimes: [...cap.runtimes],
    limits: Object.fromEntries(LIMIT_KEYS.map((k) => [snake(k), cap.limits[k]])),
    open: cap.open,
    multiaddrs: cap.multiaddrs.slice(0, MAX_CAPABILITY_ADDRS),
    issued_at: now,
    expires_at: now + CAPABILITY_TTL_MS,
  };
  const sig = signEd25519(id.signing.key, signedBytes(doc));
  doc.signatures = [{
    keyid: id.keyid,
    public: encodeBase64(id.signing.publicRaw),
    sig: encodeBase64(sig),
  }];
  return new TextEncoder().encode(JSON.stringify(doc));
}

function int(v: JsonValue | undefined): number | undefined {
  return typeof v === "number" && Number.isSafeInteger(v) && v >= 0 ? v : undefined;
}

/**
 * Checks capability record bytes: strict JSON, schema, one signature by the
 * embedded key, whose keyid is `node` and whose peer id is `peer` (and
 * `expectedPeer`, when given: the peer that served or the key it sits
 * under), not expired. Returns the record or a reason string (TM-24).
 */
export function verifyCapability(
  bytes: Uint8Array,
  expectedPeer?: string,
  now: number = Date.now(),
): Capability | string {
  let doc: { readonly [k: string]: JsonValue };
  try {
    doc = parseDocument(bytes, "capability record", MAX_CAPABILITY_BYTES);
  } catch (err) {
    return (err as Error).message;
  }
  const l = doc.limits;
  const sigs = doc.signatures;
  if (
    doc.schema !== 1 || typeof doc.peer !== "string" || typeof doc.node !== "string" ||
    typeof doc.arch !== "string" || canonicalArch(doc.arch) !== doc.arch ||
    int(doc.cores) === undefined || int(doc.memory_bytes) === undefined ||
    !Array.isArray(doc.runtimes) || doc.runtimes.some((r) => typeof r !== "string") ||
    !isJsonObject(l) || LIMIT_KEYS.some((k) => int(l[snake(k)]) === undefined) ||
    typeof doc.open !== "boolean" || !Array.isArray(doc.multiaddrs) ||
    doc.multiaddrs.length > MAX_CAPABILITY_ADDRS ||
    doc.multiaddrs.some((a) => typeof a !== "string") ||
    int(doc.issued_at) === undefined || int(doc.expires_at) === undefined ||
    !Array.isArray(sigs) || sigs.length !== 1 || !isJsonObject(sigs[0])
  ) return "malformed capability record";
  const s = sigs[0] as { readonly [k: string]: JsonValue };
  const pub = typeof s.public === "string" ? decodeBase64(s.public) : undefined;
  const sig = typeof s.sig === "string" ? decodeBase64(s.sig) : undefined;
  if (!pub || pub.length !== 32 || !sig) return "capability record has no usable signature";
  if (keyidOf(pub) !== doc.node || s.keyid !== doc.node) {
    return "signer is not the record's node key";
  }
  // TM-24: the signer must be the peer the record names, and the peer we asked.
  if (peerIdOf(pub) !== doc.peer) return "signer is not the record's peer";
  if (expectedPeer !== undefined && doc.peer !== expectedPeer) {
    return `record names ${doc.peer}, not ${expectedPeer}`;
  }
  if (!verifyStrict(pub, signedBytes(doc), sig)) return "capability signature does not verify";
  const issuedAt = doc.issued_at as number, expiresAt = doc.expires_at as number;
  if (expiresAt <= now) return "capability record expired";
  if (issuedAt > now + MAX_CLOCK_SKEW_MS || expiresAt - issuedAt > 2 * CAPABILITY_TTL_MS) {
    return "capability record's times are implausible";
  }
  return Object.freeze({
    peer: doc.peer,
    node: doc.node,
    arch: doc.arch,
    cores: doc.cores as number,
    memoryBytes: doc.memory_bytes as number,
    runtimes: Object.freeze([...doc.runtimes as string[]]),
    limits: Object.freeze(
      Object.fromEntries(LIMIT_KEYS.map((k) => [k, l[snake(k)] as number])),
    ) as unknown as NodeLimits,
    open: doc.open,
    multiaddrs: Object.freeze([...doc.multiaddrs as string[]]),
    issuedAt,
    expiresAt,
  });
}

/** The DHT key of a node's capability record: UTF-8 of `/plasm/node/<peerId>`. */
export function capabilityKey(peerId: string): Uint8Array {
  return new TextEncoder().encode(`/${PLASM_NAMESPACE}/node/${peerId}`);
}

/** The CID nodes of an arch announce themselves as providers of: raw sha2-256 of `/plasm/arch/<arch>`. */
export async function archCid(arch: string): Promise<CID> {
  const a = canonicalArch(arch);
  if (!a) throw new RangeError(`unknown arch '${arch}'`);
  const bytes = new TextEncoder().encode(`/${PLASM_NAMESPACE}/arch/${a}`);
  return CID.createV1(raw.code, await sha256.digest(bytes));
}

const KEY_RE = /^\/plasm\/node\/([1-9A-HJ-NP-Za-km-z]{40,60})$/;

/** DHT validator of the `plasm` namespace: a valid record under its own peer's key (TM-24). */
export function plasmValidator(
  now: () => number = Date.now,
): (key: Uint8Array, value: Uint8Array) => Promise<void> {
  // deno-lint-ignore require-await
  return async (key: Uint8Array, value: Uint8Array): Promise<void> => {
    const m = KEY_RE.exec(new TextDecoder().decode(key));
    if (!m) throw new Error("not a Plasm capability key");
    const r = verifyCapability(value, m[1], now());
    if (typeof r === "string") throw new Error(r);
  };
}

/** DHT selector of the `plasm` namespace: the newest valid record. */
export function plasmSelector(
  now: () => number = Date.now,
): (key: Uint8Array, values: Uint8Array[]) => number {
  return (key: Uint8Array, values: Uint8Array[]): number => {
    const m = KEY_RE.exec(new TextDecoder().decode(key));
    let best = 0, bestAt = -1;
    values.forEach((v, i) => {
      const r = verifyCapability(v, m?.[1], now());
      if (typeof r !== "string" && r.issuedAt > bestAt) [best, bestAt] = [i, r.issuedAt];
    });
    return best;
  };
}

/** What a client may ask of a node's capabilities. */
export interface Selector {
  /** Required arch (`amd64`, `arm64`, or an alias like `x86_64`). */
  readonly arch?: string;
  /** Least machine memory, in MiB. */
  readonly minMemoryMb?: number;
  /** Least cores. */
  readonly minCores?: number;
  /** Required runtime (default `wasi-preview1`). */
  readonly runtime?: string;
}

/** True when `cap` satisfies `sel` and its ceilings admit a job of these sizes and limits. */
export function matches(
  cap: Capability,
  sel: Selector,
  job?: {
    moduleBytes: number;
    inputBytes: number;
    memoryBytes: number;
    timeoutMs: number;
    outputBytes: number;
  },
): boolean {
  if (sel.arch !== undefined && canonicalArch(sel.arch) !== cap.arch) return false;
  if (sel.minMemoryMb !== undefined && cap.memoryBytes < sel.minMemoryMb * 1024 * 1024) {
    return false;
  }
  if (sel.minCores !== undefined && cap.cores < sel.minCores) return false;
  if (!cap.runtimes.includes(sel.runtime ?? "wasi-preview1")) return false;
  if (job) {
    const l = cap.limits;
    if (
      job.moduleBytes > l.maxModuleBytes || job.inputBytes > l.maxInputBytes ||
      job.memoryBytes > l.maxMemoryBytes || job.timeoutMs > l.maxTimeoutMs ||
      job.outputBytes > l.maxOutputBytes
    ) return false;
  }
  return true;
}
