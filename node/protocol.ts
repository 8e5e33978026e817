/**
 * The job protocol `/phase/job/1.0.0` (docs/dht-keys.md, "Plasm"): its
 * messages, the offer's canonical bytes and signature, and the caps and
 * deadlines both sides hold.
 *
 * ```text
 * client                                   node
 *   offer {offer, sig, input}  ───────────▶  (read ≤ cap, ≤ OFFER_READ_TIMEOUT_MS)
 *                              ◀───────────  accept {need_module} | reject {reason, message}
 *   module bytes (if needed)   ───────────▶  (read ≤ offered size, transfer deadline; hash = digest)
 *                              ◀───────────  result {outcome, output, stderr, receipt} | reject
 * ```
 *
 * @module
 */
import { createHash } from "node:crypto";
import type { KeyObject } from "node:crypto";
import {
  canonicalize,
  decodeBase64,
  encodeBase64,
  isJsonObject,
  type JsonValue,
  keyidOf,
  signEd25519,
  verifyStrict,
} from "../verify/mod.ts";
import type { RejectReason } from "./errors.ts";

/** The job protocol id. */
export const JOB_PROTOCOL = "/phase/job/1.0.0";
/** The capability protocol id: a connected peer asks for the signed record. */
export const CAPABILITY_PROTOCOL = "/phase/capability/1.0.0";
/** Longest a node waits for the offer frame after a stream opens, in ms. */
export const OFFER_READ_TIMEOUT_MS = 5_000;
/** Longest a client waits for accept or reject, in ms. */
export const DECISION_TIMEOUT_MS = 5_000;
/** Cap on a control frame other than offer and result, in bytes. */
export const MAX_CONTROL_FRAME_BYTES = 16 * 1024;
/** Cap on an offer's members besides the input, in bytes. */
export const MAX_OFFER_OVERHEAD_BYTES = 8 * 1024;
/** Cap on a result's members besides output and stderr, in bytes (the receipt is ≤ 64 KiB). */
export const MAX_RESULT_OVERHEAD_BYTES = 96 * 1024;
/** Time any module transfer gets before the rate term, in ms. */
export const TRANSFER_BASE_MS = 2_000;
/** Slowest module transfer accepted, in bytes per second (a stalled stream is cut, TM-22). */
export const MIN_TRANSFER_BYTES_PER_S = 1024 * 1024;
/** Time a result may take beyond the job's own timeout, in ms (spawn, signing, transfer). */
export const RESULT_MARGIN_MS = 5_000;
/** Cap on stderr sent back, in bytes. */
export const MAX_RESULT_STDERR_BYTES = 64 * 1024;
/** The members of a job offer, in their documented order; no other member is accepted. */
export const OFFER_MEMBERS: readonly string[] = Object.freeze([
  "schema",
  "runtime",
  "module",
  "module_size",
  "input",
  "input_size",
  "limits",
  "deadline",
  "nonce",
  "node",
  "submitter",
]);
/** The runtimes a node offers (capability record `runtimes`). */
export const RUNTIMES: readonly string[] = Object.freeze(["wasi-preview1"]);
/** Every reject reason. */
export const REJECT_REASONS: readonly RejectReason[] = Object.freeze([
  "busy",
  "over-limit",
  "unauthorized",
  "unsupported",
]);

/** Bytes the base64 of `n` bytes takes. */
export function base64Length(n: number): number {
  return Math.ceil(n / 3) * 4;
}

/** Deadline of a module transfer of `size` bytes, in ms. */
export function transferTimeoutMs(size: number): number {
  return TRANSFER_BASE_MS + Math.ceil((size * 1000) / MIN_TRANSFER_BYTES_PER_S);
}

/** `sha256:<hex>` of `bytes`. */
export function sha256(bytes: Uint8Array): string {
  return "sha256:" + createHash("sha256").update(bytes).digest("hex");
}

/** The offer: what the submitter signs. */
export interface Offer {
  /** Format version: 1. */
  readonly schema: 1;
  /** Runtime the job needs (one of {@link RUNTIMES}). */
  readonly runtime: string;
  /** `sha256:<hex>` of the module bytes. */
  readonly module: string;
  /** Module size in bytes. */
  readonly module_size: number;
  /** `sha256:<hex>` of the input. */
  readonly input: string;
  /** Input size in bytes. */
  readonly input_size: number;
  /** The limits the job runs under. */
  readonly limits: {
    readonly memory_bytes: number;
    readonly timeout_ms: number;
    readonly output_bytes: number;
  };
  /** Unix time in ms by which the result must be back. */
  readonly deadline: number;
  /** 16 random bytes, hex: each offer is distinct. */
  readonly nonce: string;
  /** Peer id of the node the offer is for (an offer is not replayable elsewhere). */
  readonly node: string;
  /** Base64 of the submitter's raw Ed25519 public key (the connection's peer key). */
  readonly submitter: string;
}

/** The canonical bytes of an offer (RFC 8785 JCS): what is signed and hashed. */
export function offerBytes(offer: Offer): Uint8Array {
  return new TextEncoder().encode(canonicalize(offer as unknown as JsonValue));
}

/** Signs an offer with the submitter's key; returns base64 of the signature. */
export function signOffer(offer: Offer, key: KeyObject): string {
  return encodeBase64(signEd25519(key, offerBytes(offer)));
}

const DIGEST_RE = /^sha256:[0-9a-f]{64}$/;
const NONCE_RE = /^[0-9a-f]{32}$/;

function int(v: unknown, lo: number, hi: number): v is number {
  return typeof v === "number" && Number.isSafeInteger(v) && v >= lo && v <= hi;
}

/**
 * Decodes an offer frame's `offer` and checks its shape and signature; the
 * submitter key must be `expectedSubmitter` (the connection's remote key).
 * Returns the offer and the submitter's keyid, or a reason string.
 */
export function checkOffer(
  raw: unknown,
  sig: unknown,
  expectedSubmitter: Uint8Array | undefined,
): { offer: Offer; submitter: string } | string {
  if (!isJsonObject(raw as JsonValue)) return "offer is not an object";
  const o = raw as Record<string, unknown>;
  for (const k of Object.keys(o)) {
    if (!OFFER_MEMBERS.includes(k)) return `unknown offer member '${k}'`;
  }
  const l = o.limits as Record<string, unknown> | undefined;
  if (
    o.schema !== 1 || typeof o.runtime !== "string" || typeof o.module !== "string" ||
    !DIGEST_RE.test(o.module) || !int(o.module_size, 0, 2 ** 40) ||
    typeof o.input !== "string" || !DIGEST_RE.test(o.input) || !int(o.input_size, 0, 2 ** 40) ||
    !l || typeof l !== "object" || Object.keys(l).length !== 3 ||
    !int(l.memory_bytes, 0, 2 ** 40) || !int(l.timeout_ms, 0, 2 ** 40) ||
    !int(l.output_bytes, 0, 2 ** 40) || !int(o.deadline, 0, 2 ** 53 - 1) ||
    typeof o.nonce !== "string" || !NONCE_RE.test(o.nonce) || typeof o.node !== "string" ||
    typeof o.submitter !== "string"
  ) return "malformed offer";
  const pub = decodeBase64(o.submitter);
  if (!pub || pub.length !== 32) return "offer's submitter is not an Ed25519 key";
  if (expectedSubmitter && !equal(pub, expectedSubmitter)) {
    return "offer is signed for another peer than the one connected";
  }
  const offer = o as unknown as Offer;
  const s = typeof sig === "string" ? decodeBase64(sig) : undefined;
  if (!s || !verifyStrict(pub, offerBytes(offer), s)) return "offer signature does not verify";
  return { offer, submitter: keyidOf(pub) };
}

function equal(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/** Random 16 bytes as hex. */
export function nonce(): string {
  return Array.from(
    crypto.getRandomValues(new Uint8Array(16)),
    (b) => b.toString(16).padStart(2, "0"),
  )
    .join("");
}
