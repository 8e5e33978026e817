/**
 * The Plasm SDK: submit a WASM job to a node of the network and get back a
 * verified result.
 *
 * ```ts
 * const plasm = await Plasm.connect({ bootstrap: ["/ip4/127.0.0.1/tcp/4001/p2p/12D3..."] });
 * const job = plasm.submit(module, { input: "Hello", timeoutMs: 2_000, select: { arch: "amd64" } });
 * const { output, receipt } = await job.result();
 * await plasm.close();
 * ```
 *
 * Every result's receipt is verified before it is returned (TM-23): signed
 * by the key of the peer that ran the job (the noise-authenticated peer
 * id), for the module, input, limits and offer that were sent, over the
 * output that was received. `verify: "reexecute"` also runs the job on a
 * second node (or locally) and compares the signed output digests.
 *
 * @module
 */
import type { SigningKey } from "../sign/mod.ts";
import { decodeBase64, encodeBase64, keyidOf } from "../verify/mod.ts";
import {
  buildReceipt,
  formatReceipt,
  type Outcome,
  type Receipt,
  runJob,
  signReceipt,
  verifyReceipt,
} from "../wasm/mod.ts";
import {
  askCapability,
  bootstrapPeers,
  createPlasmP2p,
  findArchProviders,
  getCapability,
  type P2p,
  parseAddr,
  waitForRouting,
} from "./_p2p.ts";
import { type Capability, matches, type Selector } from "./capability.ts";
import { DisagreeError, NodeError, RejectedError, type RejectReason } from "./errors.ts";
import { FrameStream } from "./frame.ts";
import { ephemeralIdentity, type Identity, identityOf } from "./key.ts";
import {
  base64Length,
  DECISION_TIMEOUT_MS,
  JOB_PROTOCOL,
  MAX_CONTROL_FRAME_BYTES,
  MAX_RESULT_OVERHEAD_BYTES,
  MAX_RESULT_STDERR_BYTES,
  nonce,
  type Offer,
  offerBytes,
  REJECT_REASONS,
  RESULT_MARGIN_MS,
  sha256,
  signOffer,
} from "./protocol.ts";

/** Default memory cap of a submitted job, in MiB. */
export const DEFAULT_JOB_MEMORY_MB = 64;
/** Default timeout of a submitted job, in ms. */
export const DEFAULT_JOB_TIMEOUT_MS = 5_000;
/** Default output cap of a submitted job, in bytes. */
export const DEFAULT_JOB_OUTPUT_BYTES = 1024 * 1024;
/** Time a job may wait in a node's queue, on top of its timeout, in ms. */
export const DEFAULT_QUEUE_ALLOWANCE_MS = 5_000;
/** Most nodes one job is tried on (failover). */
export const MAX_ATTEMPTS = 4;
/** Longest a dial may take, in ms. */
export const JOB_DIAL_TIMEOUT_MS = 5_000;

/** Options of {@link Plasm.connect}. */
export interface ConnectOptions {
  /** Multiaddrs (with `/p2p/<id>`) of peers to dial first. */
  readonly bootstrap?: readonly string[];
  /** The submitter key (the libp2p identity too); an ephemeral key when absent. */
  readonly key?: SigningKey;
}

/** Options of {@link Plasm.submit}. */
export interface SubmitOptions {
  /** The job's stdin (a string is UTF-8). */
  readonly input?: Uint8Array | string;
  /** Memory cap in MiB (default 64). */
  readonly memoryMb?: number;
  /** Wall-clock timeout in ms (default 5000). */
  readonly timeoutMs?: number;
  /** Output cap in bytes (default 1 MiB). */
  readonly outputBytes?: number;
  /** What a node must offer; ignored when `peers` is given. */
  readonly select?: Selector;
  /** Multiaddrs to try in this order instead of discovering nodes. */
  readonly peers?: readonly string[];
  /** `receipt` (default): verify the receipt; `reexecute`: also run it a second time and compare. */
  readonly verify?: "receipt" | "reexecute";
  /** Where to re-execute: a multiaddr, or `local`; default another capable node. */
  readonly reexecuteOn?: string;
  /** Cancels the job. */
  readonly signal?: AbortSignal;
}

/** A verified result. */
export interface JobOutput {
  /** The job's stdout. */
  readonly output: Uint8Array;
  /** The job's stderr (capped). */
  readonly stderr: Uint8Array;
  /** How the job ended. */
  readonly outcome: Outcome;
  /** The verified receipt. */
  readonly receipt: Receipt;
  /** The receipt's bytes, as signed. */
  readonly receiptBytes: Uint8Array;
  /** Peer id of the node that ran it. */
  readonly peer: string;
  /** Nodes tried before this one succeeded (failover). */
  readonly failures: readonly Error[];
  /** With `verify: "reexecute"`: the second execution's receipt. */
  readonly second?: {
    readonly receipt: Receipt;
    readonly receiptBytes: Uint8Array;
    readonly peer: string;
  };
}

/** A submitted job. */
export class PlasmJob {
  readonly #promise: Promise<JobOutput>;
  readonly #controller: AbortController;
  /** @internal */
  constructor(run: (signal: AbortSignal) => Promise<JobOutput>, signal?: AbortSignal) {
    this.#controller = new AbortController();
    const s = signal ? AbortSignal.any([signal, this.#controller.signal]) : this.#controller.signal;
    this.#promise = run(s);
    this.#promise.catch(() => {}); // observed through result()
  }
  /** The verified result; rejects with a {@link NodeError} (or a subclass). */
  result(): Promise<JobOutput> {
    return this.#promise;
  }
  /** Cancels the job: `result()` rejects with `E_CANCELLED`. */
  cancel(): void {
    this.#controller.abort();
  }
}

interface Job {
  readonly module: Uint8Array;
  readonly moduleDigest: string;
  readonly input: Uint8Array;
  readonly inputDigest: string;
  readonly limits: { memory_bytes: number; timeout_ms: number; output_bytes: number };
}

interface Run {
  readonly output: Uint8Array;
  readonly stderr: Uint8Array;
  readonly outcome: Outcome;
  readonly receipt: Receipt;
  readonly receiptBytes: Uint8Array;
  readonly peer: string;
}

function cancelled(): NodeError {
  return new NodeError("E_CANCELLED", "the job was cancelled", { hint: "its AbortSignal fired" });
}

function unverified(peer: string, why: string): NodeError {
  return new NodeError("E_UNVERIFIED", `the result from ${peer} does not verify: ${why}`, {
    hint: "the node is faulty or lying; the SDK tries another node",
  });
}

/** A client of the Plasm network. */
export class Plasm {
  readonly #p2p: P2p;
  /** The submitter identity (keyid goes on node allow-lists). */
  readonly identity: Identity;

  private constructor(p2p: P2p, identity: Identity) {
    this.#p2p = p2p;
    this.identity = identity;
  }

  /** Starts a client (DHT client mode, no listener) and dials `bootstrap`. */
  static async connect(opts: ConnectOptions = {}): Promise<Plasm> {
    const identity = opts.key ? await identityOf(opts.key) : await ephemeralIdentity();
    const p2p = await createPlasmP2p(identity, [], true);
    if (await bootstrapPeers(p2p, opts.bootstrap ?? []) > 0) await waitForRouting(p2p);
    return new Plasm(p2p, identity);
  }

  /** Stops the client's libp2p node. */
  async close(): Promise<void> {
    await this.#p2p.stop();
  }

  /**
   * Nodes whose signed capability record matches `select` (and admits `job`,
   * when given): connected peers are asked over `/phase/capability/1.0.0`,
   * others found through the DHT's arch provider records. Records whose
   * signer is not the peer are ignored (TM-24).
   */
  async nodes(
    select: Selector = {},
    job?: Parameters<typeof matches>[2],
  ): Promise<Capability[]> {
    const found = new Map<string, Capability>();
    await Promise.all(
      this.#p2p.getPeers().map(async (p) => {
        const c = await askCapability(this.#p2p, p, p.toString());
        if (typeof c !== "string") found.set(c.peer, c);
      }),
    );
    if (select.arch) {
      const providers = await findArchProviders(this.#p2p, select.arch);
      await Promise.all(
        providers.filter((p) => !found.has(p.id) && p.id !== this.identity.peerId).map(
          async (p) => {
            const c = await getCapability(this.#p2p, p.id);
            if (c) found.set(c.peer, c);
          },
        ),
      );
    }
    return [...found.values()].filter((c) => matches(c, select, job));
  }

  /** Submits a job; the returned job runs at once (see {@link PlasmJob.result}). */
  submit(module: Uint8Array, opts: SubmitOptions = {}): PlasmJob {
    const input = typeof opts.input === "string"
      ? new TextEncoder().encode(opts.input)
      : opts.input ?? new Uint8Array(0);
    const job: Job = {
      module,
      moduleDigest: sha256(module),
      input,
      inputDigest: sha256(input),
      limits: {
        memory_bytes: (opts.memoryMb ?? DEFAULT_JOB_MEMORY_MB) * 1024 * 1024,
        timeout_ms: opts.timeoutMs ?? DEFAULT_JOB_TIMEOUT_MS,
        output_bytes: opts.outputBytes ?? DEFAULT_JOB_OUTPUT_BYTES,
      },
    };
    return new PlasmJob((signal) => this.#run(job, opts, signal), opts.signal);
  }

  async #targets(job: Job, opts: SubmitOptions): Promise<string[]> {
    if (opts.peers) return [...opts.peers];
    const caps = await this.nodes(opts.select ?? {}, {
      moduleBytes: job.module.length,
      inputBytes: job.input.length,
      memoryBytes: job.limits.memory_bytes,
      timeoutMs: job.limits.timeout_ms,
      outputBytes: job.limits.output_bytes,
    });
    return caps.flatMap((c) => c.multiaddrs.length ? [c.multiaddrs[0]] : []);
  }

  async #run(job: Job, opts: SubmitOptions, signal: AbortSignal): Promise<JobOutput> {
    if (signal.aborted) throw cancelled();
    const targets = await this.#targets(job, opts);
    if (targets.length === 0) {
      throw new NodeError("E_NO_NODE", "no reachable node offers what the job asks for", {
        hint:
          "check --peer / bootstrap addresses and the select criteria (arch, memory) against the nodes' capability records",
      });
    }
    const failures: Error[] = [];
    let first: Run | undefined;
    let used = "";
    for (const t of targets.slice(0, MAX_ATTEMPTS)) {
      if (signal.aborted) throw cancelled();
      try {
        first = await this.#runOn(t, job, signal);
        used = t;
        break;
      } catch (err) {
        if (signal.aborted || (err as NodeError).code === "E_CANCELLED") throw cancelled();
        failures.push(err as Error);
      }
    }
    if (!first) {
      const last = failures[failures.length - 1];
      if (failures.length === 1) throw last;
      throw new NodeError(
        "E_NO_NODE",
        `every node failed: ${failures.map((f) => f.message).join("; ")}`,
        {
          cause: failures,
          hint: (last as NodeError).hint,
        },
      );
    }
    let second: Run | undefined;
    if (opts.verify === "reexecute") {
      if (opts.reexecuteOn === "local") second = await this.#runLocal(job);
      else {
        const other = opts.reexecuteOn ?? targets.find((t) => t !== used);
        if (!other) {
          throw new NodeError("E_NO_NODE", "no second node to re-execute the job on", {
            hint: "pass reexecuteOn (a multiaddr or 'local') or make a second node reachable",
          });
        }
        second = await this.#runOn(other, job, signal);
      }
      if (second.receipt.output !== first.receipt.output || second.outcome !== first.outcome) {
        throw new DisagreeError(
          first.receiptBytes,
          second.receiptBytes,
          first.receipt.output,
          second.receipt.output,
        );
      }
    }
    return {
      ...first,
      failures,
      second: second &&
        { receipt: second.receipt, receiptBytes: second.receiptBytes, peer: second.peer },
    };
  }

  async #runLocal(job: Job): Promise<Run> {
    const result = await runJob({
      module: job.module,
      input: job.input,
      limits: {
        memoryBytes: job.limits.memory_bytes,
        timeoutMs: job.limits.timeout_ms,
        outputBytes: job.limits.output_bytes,
      },
    });
    const k = this.identity.signing;
    const receiptBytes = formatReceipt(
      signReceipt(
        buildReceipt({ module: job.module, input: job.input, args: ["job"] }, result, k.keyid),
        k,
      ),
    );
    return {
      output: result.stdout,
      stderr: result.stderr,
      outcome: result.outcome,
      receipt: verifyReceipt(receiptBytes, "local receipt"),
      receiptBytes,
      peer: this.identity.peerId,
    };
  }

  async #runOn(addr: string, job: Job, signal: AbortSignal): Promise<Run> {
    const deadline = Date.now() + job.limits.timeout_ms + DEFAULT_QUEUE_ALLOWANCE_MS +
      RESULT_MARGIN_MS;
    const all = AbortSignal.any([signal, AbortSignal.timeout(deadline - Date.now())]);
    const conn = await this.#p2p.dial(parseAddr(addr), {
      signal: AbortSignal.any([all, AbortSignal.timeout(JOB_DIAL_TIMEOUT_MS)]),
    }).catch((err) => {
      throw signal.aborted
        ? cancelled()
        : new NodeError("E_PROTOCOL", `cannot reach ${addr}: ${(err as Error).message}`, {
          hint: "check the multiaddr (it ends in /p2p/<peer id>) and that the node runs",
          cause: err,
        });
    });
    const peer = conn.remotePeer.toString();
    const peerKey = conn.remotePeer.publicKey?.raw;
    if (!peerKey) throw unverified(peer, "the peer id carries no Ed25519 key");
    const stream = await conn.newStream(JOB_PROTOCOL, { signal: all });
    const fs = new FrameStream(stream);
    const onAbort = () => stream.abort(signal.aborted ? cancelled() : new Error("job deadline"));
    all.addEventListener("abort", onAbort, { once: true });
    try {
      const offer: Offer = {
        schema: 1,
        runtime: "wasi-preview1",
        module: job.moduleDigest,
        module_size: job.module.length,
        input: job.inputDigest,
        input_size: job.input.length,
        limits: job.limits,
        deadline,
        nonce: nonce(),
        node: peer,
        submitter: encodeBase64(this.identity.signing.publicRaw),
      };
      await fs.writeJson({
        type: "offer",
        offer,
        sig: signOffer(offer, this.identity.signing.key),
        input: encodeBase64(job.input),
      });
      const decision = await fs.readJson(
        MAX_CONTROL_FRAME_BYTES,
        DECISION_TIMEOUT_MS,
        "the node's decision",
        all,
      );
      if (decision.type === "reject") {
        const reason = REJECT_REASONS.includes(decision.reason as RejectReason)
          ? decision.reason as RejectReason
          : "unsupported";
        throw new RejectedError(peer, reason, String(decision.message ?? "").slice(0, 512));
      }
      if (decision.type !== "accept") {
        throw new NodeError(
          "E_PROTOCOL",
          `${peer} answered '${String(decision.type)}' to an offer`,
        );
      }
      if (decision.need_module === true) await fs.write(job.module);
      const maxResult = MAX_RESULT_OVERHEAD_BYTES + base64Length(job.limits.output_bytes) +
        base64Length(MAX_RESULT_STDERR_BYTES);
      const res = await fs.readJson(
        maxResult,
        Math.max(1, deadline - Date.now()),
        "the job's result",
        all,
      );
      if (res.type === "error") {
        throw new NodeError(
          "E_PROTOCOL",
          `${peer} failed the job: ${String(res.message).slice(0, 512)}`,
        );
      }
      if (res.type !== "result") {
        throw new NodeError("E_PROTOCOL", `${peer} sent '${String(res.type)}' instead of a result`);
      }
      const output = typeof res.output === "string" ? decodeBase64(res.output) : undefined;
      const stderr = typeof res.stderr === "string" ? decodeBase64(res.stderr) : new Uint8Array(0);
      const receiptBytes = typeof res.receipt === "string" ? decodeBase64(res.receipt) : undefined;
      if (!output || !receiptBytes) {
        throw unverified(peer, "the result lacks its output or receipt");
      }
      // TM-23: the receipt must be the peer's, for this job, over these bytes.
      let receipt: Receipt;
      try {
        receipt = verifyReceipt(receiptBytes, `receipt from ${peer}`);
      } catch (err) {
        throw unverified(peer, (err as Error).message);
      }
      const jobDoc = receipt.document.job as Record<string, unknown> | undefined;
      const why = receipt.node !== keyidOf(peerKey)
        ? "signed by another key than the peer's"
        : receipt.module !== job.moduleDigest
        ? "names another module"
        : receipt.input !== job.inputDigest
        ? "names another input"
        : receipt.output !== sha256(output)
        ? "its output digest is not the output received"
        : receipt.limits.memoryBytes !== job.limits.memory_bytes ||
            receipt.limits.timeoutMs !== job.limits.timeout_ms
        ? "names other limits"
        : receipt.outcome !== res.outcome
        ? "names another outcome"
        : jobDoc?.offer !== sha256(offerBytes(offer))
        ? "answers another offer"
        : undefined;
      if (why) throw unverified(peer, `the receipt ${why}`);
      await fs.close();
      return {
        output,
        stderr: stderr ?? new Uint8Array(0),
        outcome: receipt.outcome!,
        receipt,
        receiptBytes,
        peer,
      };
    } catch (err) {
      stream.abort(err as Error);
      if (signal.aborted) throw cancelled();
      if (err instanceof NodeError) throw err;
      throw new NodeError("E_PROTOCOL", `job on ${peer} failed: ${(err as Error).message}`, {
        cause: err,
        hint: "the node went away or broke the protocol; the SDK fails over to another node",
      });
    } finally {
      all.removeEventListener("abort", onAbort);
    }
  }
}
