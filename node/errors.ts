/**
 * The error family of node/: the job node, its protocol and the SDK.
 *
 * @module
 */
import { PhaseError } from "../core/mod.ts";

/** Codes of the job node and the SDK (core/errors.ts, 80-89, plus shared ones). */
export type NodeCode =
  | "E_REJECTED"
  | "E_PROTOCOL"
  | "E_NO_NODE"
  | "E_UNVERIFIED"
  | "E_DISAGREE"
  | "E_CANCELLED"
  | "E_CONFIG"
  | "E_KEY"
  | "E_IO"
  | "E_USAGE";

/** Why a node refused an offer (the protocol's reject reasons). */
export type RejectReason = "busy" | "over-limit" | "unauthorized" | "unsupported";

/** An error of the job node or the SDK. */
export class NodeError extends PhaseError<NodeCode> {}

/** A node refused the offer; `reason` is the node's. */
export class RejectedError extends NodeError {
  /** The node's reason. */
  readonly reason: RejectReason;
  /** The peer id of the node that refused. */
  readonly peer: string;
  /** A refusal by `peer` for `reason`, with the node's own words. */
  constructor(peer: string, reason: RejectReason, message: string, hint?: string) {
    super("E_REJECTED", `node ${peer} rejected the job (${reason}): ${message}`, {
      hint: hint ?? REJECT_HINTS[reason],
    });
    this.reason = reason;
    this.peer = peer;
  }
}

const REJECT_HINTS: Readonly<Record<RejectReason, string>> = {
  busy: "the node's queue is full or its rate limit reached: retry later or use another node",
  "over-limit":
    "lower --memory-mb / --timeout-ms or the module and input size to the node's limits (its capability record lists them)",
  unauthorized:
    "ask the node's operator to allow your submitter key (deno task job key prints it; the node takes --allow KEYID)",
  unsupported: "the node does not run this kind of job; pick another node",
};

/**
 * Two nodes signed different outputs for the same job: a proof that one of
 * them lied. Both receipts are signed; anyone can check them with
 * `deno task receipt verify`.
 */
export class DisagreeError extends NodeError {
  /** The first node's receipt bytes, as signed. */
  readonly first: Uint8Array;
  /** The second execution's receipt bytes, as signed. */
  readonly second: Uint8Array;
  /** Both signed receipts and the digests they disagree on. */
  constructor(first: Uint8Array, second: Uint8Array, a: string, b: string) {
    super("E_DISAGREE", `two executions of the job disagree: output ${a} vs ${b}`, {
      hint:
        "one node lied: keep both receipts (error.first, error.second) and check them with 'deno task receipt verify'",
    });
    this.first = first;
    this.second = second;
  }
}
