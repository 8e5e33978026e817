/**
 * The Plasm node: a libp2p node (p2p/'s `createPhaseNode`) that answers
 * `/phase/job/1.0.0` and `/phase/capability/1.0.0`, publishes its signed
 * capability record in the DHT, and runs accepted jobs in wasm/'s sandbox
 * under its own ceilings, whatever an offer says (TM-22).
 *
 * @module
 */
import { type Logger, writeFileAtomic } from "../core/mod.ts";
import {
  archCidPublish,
  bootstrapPeers,
  createPlasmP2p,
  mdnsDialer,
  mdnsOffReason,
  type P2p,
} from "./_p2p.ts";
import { canonicalArch, decodeBase64, encodeBase64, type JsonValue } from "../verify/mod.ts";
import { buildReceipt, formatReceipt, JobPool, type JobResult, signReceipt } from "../wasm/mod.ts";
import { CAPABILITY_REFRESH_MS, signCapability } from "./capability.ts";
import type { RejectReason } from "./errors.ts";
import { FrameStream, type Stream } from "./frame.ts";
import { type Identity, loadIdentity } from "./key.ts";
import { type NodeLimits, resolveNodeLimits } from "./limits.ts";
import {
  base64Length,
  CAPABILITY_PROTOCOL,
  checkOffer,
  JOB_PROTOCOL,
  MAX_OFFER_OVERHEAD_BYTES,
  MAX_RESULT_STDERR_BYTES,
  type Offer,
  OFFER_READ_TIMEOUT_MS,
  offerBytes,
  RUNTIMES,
  sha256,
  transferTimeoutMs,
} from "./protocol.ts";
import { ModuleStore } from "./store.ts";

/** How often the node writes `<state>/status.json`, in ms. */
export const STATUS_INTERVAL_MS = 1_000;
/** The status file under the state directory. */
export const STATUS_FILE = "status.json";
/** Job streams one connection may hold open at once. */
export const MAX_JOB_STREAMS_PER_CONNECTION = 64;
/** One minute, in ms: the window of the open node's per-peer rate limit. */
const RATE_WINDOW_MS = 60_000;
/** Most peers whose rate windows are remembered. */
const MAX_RATE_PEERS = 10_000;
/** Most job workers a node keeps started (wasm/'s pool bound). */
const MAX_POOL_WORKERS = 64;
/** Page size of WebAssembly memory, in bytes. */
const PAGE_BYTES = 65_536;

/** Options of {@link PlasmNode.start}. */
export interface PlasmNodeOptions {
  /** State directory: node key, module store, status file. */
  readonly stateDir: string;
  /** Listen multiaddrs (default `/ip4/127.0.0.1/tcp/0`: loopback). */
  readonly listen?: readonly string[];
  /** Peers to dial first. */
  readonly bootstrap?: readonly string[];
  /** Ceilings that differ from the defaults. */
  readonly limits?: Partial<NodeLimits>;
  /** Submitter keyids (`ed25519:<hex>`) allowed to submit. */
  readonly allow?: readonly string[];
  /** Accept any submitter, rate-limited per peer (logged loudly). */
  readonly open?: boolean;
  /** Log events go here. */
  readonly logger?: Logger;
  /** The arch the node announces (default: this machine's). */
  readonly arch?: string;
  /**
   * Find and be found by Plasm nodes on the LAN over mDNS (default false
   * here; `deno task node` turns it on unless `--no-mdns`). A discovered
   * peer is only a connection: jobs still need its signed capability record.
   * Needs `--allow-sys=networkInterfaces` (the `node` permission set has it)
   * and a route for 224.0.0.0/4 on the LAN interface (a default route does).
   * Left off, with a warning, when every listen address is loopback or the
   * interface list cannot be read (`mdns_off`).
   */
  readonly mdns?: boolean;
  /** Reads the interface list before mDNS starts (default `Deno.networkInterfaces`). */
  readonly networkInterfaces?: () => unknown;
  /**
   * Every job in a worker that never ran another job (default false). By
   * default a worker runs up to wasm/'s `MAX_JOBS_PER_WORKER` jobs of ONE
   * submitter, ONE module digest and ONE set of limits, each in a fresh
   * instance (JobPool `jobsPerWorker`, THREAT-MODEL.md TM-16): other
   * submitters and other modules always get a fresh worker. This option
   * also closes that last gap, at several times the CPU per small job (bench/README.md).
   */
  readonly freshWorkerPerJob?: boolean;

  /** Write `<state>/status.json` (default true). */
  readonly statusFile?: boolean;
  /**
   * Test doubles of a hostile node (tests only; never set by the CLI):
   * `output` replaces the output it signs and returns, `vanish` drops the
   * connection after accepting, `capability` replaces the record it serves,
   * `sent` replaces the output sent but not the output signed; `ran` (a
   * probe) sees each job's submitter, module digest and worker.
   */
  readonly unsafeTestHooks?: {
    readonly output?: (out: Uint8Array) => Uint8Array;
    readonly vanish?: boolean;
    readonly capability?: (record: Uint8Array) => Uint8Array;
    readonly sent?: (out: Uint8Array) => Uint8Array;
    readonly ran?: (
      job: { submitter: string; module: string; worker?: JobResult["worker"] },
    ) => void;
  };
}

/** Counters `deno task node status` prints. */
export interface NodeStats {
  /** The node's peer id. */
  readonly peerId: string;
  /** Connected peers. */
  readonly peers: number;
  /** Jobs running now. */
  readonly running: number;
  /** Jobs accepted and waiting for a slot. */
  readonly queued: number;
  /** Jobs finished (any outcome). */
  readonly finished: number;
  /** Refused offers by reason. */
  readonly refusals: Readonly<Record<RejectReason, number>>;
  /** Jobs accepted but not finished: broken streams, digest mismatches, deadlines. */
  readonly failed: number;
  /**
   * Jobs stopped because their submitter closed its side of the stream
   * (or reset it) before the result: queued ones never start, running ones
   * have their worker terminated; counted apart from `finished`.
   */
  readonly cancelled: number;
  /** Where the node listens. */
  readonly multiaddrs: readonly string[];
}

class Reject {
  constructor(readonly reason: RejectReason, readonly message: string) {}
}

/** A running Plasm node. */
export class PlasmNode {
  readonly #p2p: P2p;
  /** Its key (peer id, receipts, capability records). */
  readonly identity: Identity;
  /** The ceilings it enforces. */
  readonly limits: NodeLimits;
  readonly #opts: PlasmNodeOptions;
  readonly #allow: ReadonlySet<string>;
  readonly #store: ModuleStore;
  readonly #arch: string;
  readonly #log: Logger | undefined;
  #running = 0;
  #queued = 0;
  #finished = 0;
  #failed = 0;
  #cancelled = 0;
  readonly #refusals: Record<RejectReason, number> = {
    busy: 0,
    "over-limit": 0,
    unauthorized: 0,
    unsupported: 0,
  };
  readonly #waiters: (() => void)[] = [];
  readonly #rate = new Map<string, { start: number; count: number }>();
  readonly #timers: ReturnType<typeof setInterval>[] = [];
  #record: Uint8Array = new Uint8Array(0);
  #stopped = false;

  readonly #pool: JobPool;

  private constructor(
    p2p: P2p,
    pool: JobPool,
    identity: Identity,
    limits: NodeLimits,
    opts: PlasmNodeOptions,
  ) {
    this.#p2p = p2p;
    this.#pool = pool;
    this.identity = identity;
    this.limits = limits;
    this.#opts = opts;
    this.#allow = new Set(opts.allow ?? []);
    this.#store = new ModuleStore(`${opts.stateDir}/modules`);
    this.#log = opts.logger;
    const arch = canonicalArch(opts.arch ?? Deno.build.arch);
    if (!arch) throw new RangeError(`unknown arch ${opts.arch ?? Deno.build.arch}`);
    this.#arch = arch;
  }

  /** Starts a node: loads its key, listens, dials bootstrap peers, publishes its capabilities. */
  static async start(opts: PlasmNodeOptions): Promise<PlasmNode> {
    const limits = resolveNodeLimits(opts.limits);
    const identity = await loadIdentity(opts.stateDir);
    // Workers started ahead of demand, one per job slot; reused only within
    // one submitter's jobs of one module (TM-16, bench/README.md).
    const pool = await JobPool.create({
      workers: Math.min(limits.maxConcurrentJobs, MAX_POOL_WORKERS),
      jobsPerWorker: opts.freshWorkerPerJob ? 1 : undefined,
    });
    const listen = opts.listen ?? ["/ip4/127.0.0.1/tcp/0"];
    let mdns = opts.mdns === true;
    if (mdns) {
      const off = mdnsOffReason(listen, opts.networkInterfaces);
      if (off) {
        opts.logger?.warn("mdns_off", off);
        mdns = false;
      }
    }
    let p2p: P2p;
    try {
      // mDNS may find a peer before createPlasmP2p returns: dial once it has.
      const ref: { p2p?: P2p } = {};
      p2p = await createPlasmP2p(
        identity,
        listen,
        false,
        mdns ? mdnsDialer(() => ref.p2p, opts.logger) : undefined,
      );
      ref.p2p = p2p;
    } catch (err) {
      pool.close();
      throw err;
    }
    const node = new PlasmNode(p2p, pool, identity, limits, opts);
    try {
      await node.#init();
    } catch (err) {
      pool.close();
      await p2p.stop();
      throw err;
    }
    return node;
  }

  async #init(): Promise<void> {
    const log = this.#log;
    if (this.#opts.open) {
      // A weakening option: say so loudly, once, at start.
      log?.warn("unsafe_open_node", {
        message:
          "UNSAFE: this node accepts jobs from ANY peer (rate-limited per peer); use --allow KEYID to restrict it",
        offersPerMinute: this.limits.openOffersPerMinute,
      });
    }
    log?.info("job_workers", {
      jobsPerWorker: this.#pool.jobsPerWorker,
      rule: this.#pool.jobsPerWorker > 1
        ? "a worker runs only jobs of one submitter, one module and one set of limits (TM-16)"
        : "a fresh worker per job",
    });
    if (!this.#opts.open && this.#allow.size === 0) {
      log?.warn("no_submitter_allowed", {
        message:
          "closed node with an empty allow-list: every offer is refused (pass --allow KEYID)",
      });
    }
    await this.#p2p.handle(JOB_PROTOCOL, (stream, conn) => {
      this.#job(stream, conn.remotePeer).catch((err) =>
        log?.warn("job_stream_failed", { error: (err as Error).message })
      );
    }, { maxInboundStreams: MAX_JOB_STREAMS_PER_CONNECTION });
    await this.#p2p.handle(CAPABILITY_PROTOCOL, (stream) => {
      const fs = new FrameStream(stream);
      const hook = this.#opts.unsafeTestHooks?.capability;
      fs.write(hook ? hook(this.#record) : this.#record).then(() => fs.close()).catch(() => {});
    });
    this.#sign();
    await bootstrapPeers(this.#p2p, this.#opts.bootstrap ?? [], log);
    this.publish().catch(() => {});
    this.#timers.push(setInterval(() => {
      this.#sign();
      this.publish().catch(() => {});
    }, CAPABILITY_REFRESH_MS));
    if (this.#opts.statusFile !== false) {
      await this.#writeStatus();
      this.#timers.push(setInterval(() => this.#writeStatus(), STATUS_INTERVAL_MS));
    }
    log?.info("node_started", {
      peerId: this.identity.peerId,
      keyid: this.identity.keyid,
      multiaddrs: this.multiaddrs(),
      open: this.#opts.open === true,
      allowed: this.#allow.size,
    });
  }

  #sign(): void {
    this.#record = signCapability(this.identity, {
      arch: this.#arch,
      cores: navigator.hardwareConcurrency ?? 1,
      memoryBytes: memoryBytes(),
      runtimes: RUNTIMES,
      limits: this.limits,
      open: this.#opts.open === true,
      multiaddrs: this.multiaddrs(),
    });
  }

  /** The signed capability record the node serves now. */
  capability(): Uint8Array {
    return this.#record;
  }

  /** Publishes the capability record in the DHT (value and arch provider record). */
  async publish(): Promise<void> {
    await archCidPublish(this.#p2p, this.identity.peerId, this.#record, this.#arch, this.#log);
  }

  /** Multiaddrs with the peer id, as clients dial them. */
  multiaddrs(): string[] {
    return this.#p2p.getMultiaddrs().map(String);
  }

  /** Counters for `deno task node status`. */
  stats(): NodeStats {
    return {
      peerId: this.identity.peerId,
      peers: this.#p2p.getPeers().length,
      running: this.#running,
      queued: this.#queued,
      finished: this.#finished,
      failed: this.#failed,
      cancelled: this.#cancelled,
      refusals: { ...this.#refusals },
      multiaddrs: this.multiaddrs(),
    };
  }

  async #writeStatus(): Promise<void> {
    if (this.#stopped) return;
    const doc = { ...this.stats(), pid: Deno.pid, updatedAt: new Date().toISOString() };
    try {
      await Deno.mkdir(this.#opts.stateDir, { recursive: true });
      await writeFileAtomic(
        `${this.#opts.stateDir}/${STATUS_FILE}`,
        new TextEncoder().encode(JSON.stringify(doc, null, 2) + "\n"),
      );
    } catch (err) {
      this.#log?.warn("status_write_failed", { error: (err as Error).message });
    }
  }

  /** Stops the node (the process must still exit by itself: libp2p leaves TCP handles). */
  async stop(): Promise<void> {
    this.#stopped = true;
    for (const t of this.#timers) clearInterval(t);
    for (const w of this.#waiters.splice(0)) w();
    this.#pool.close();
    await this.#p2p.stop();
  }

  #rateLimited(peer: string): boolean {
    const now = Date.now();
    let w = this.#rate.get(peer);
    if (!w || now - w.start >= RATE_WINDOW_MS) {
      if (!w && this.#rate.size >= MAX_RATE_PEERS) {
        for (const [k, v] of this.#rate) if (now - v.start >= RATE_WINDOW_MS) this.#rate.delete(k);
        if (this.#rate.size >= MAX_RATE_PEERS) return true;
      }
      w = { start: now, count: 0 };
      this.#rate.set(peer, w);
    }
    w.count++;
    return w.count > this.limits.openOffersPerMinute;
  }

  /** Decides an offer frame: the checked offer and input, or a reasoned refusal (TM-22). */
  #decide(
    msg: Record<string, unknown>,
    remote: { toString(): string; publicKey?: { raw: Uint8Array } },
  ): { offer: Offer; submitter: string; input: Uint8Array } | Reject {
    if (msg.type !== "offer") return new Reject("unsupported", "expected an offer");
    const checked = checkOffer(msg.offer, msg.sig, remote.publicKey?.raw);
    if (typeof checked === "string") {
      return new Reject(
        /signature|signed for|submitter/.test(checked) ? "unauthorized" : "unsupported",
        checked,
      );
    }
    const { offer, submitter } = checked;
    if (this.#opts.open) {
      if (this.#rateLimited(remote.toString())) {
        return new Reject(
          "busy",
          `rate limit: ${this.limits.openOffersPerMinute} offers a minute per peer`,
        );
      }
    } else if (!this.#allow.has(submitter)) {
      return new Reject("unauthorized", `submitter ${submitter} is not allowed on this node`);
    }
    if (offer.node !== this.identity.peerId) {
      return new Reject("unsupported", "offer is for another node");
    }
    if (!RUNTIMES.includes(offer.runtime)) {
      return new Reject("unsupported", `runtime ${offer.runtime}`);
    }
    const l = this.limits, o = offer.limits;
    const over: string[] = [];
    if (offer.module_size > l.maxModuleBytes) {
      over.push(`module ${offer.module_size} > ${l.maxModuleBytes} bytes`);
    }
    if (offer.input_size > l.maxInputBytes) {
      over.push(`input ${offer.input_size} > ${l.maxInputBytes} bytes`);
    }
    if (o.memory_bytes > l.maxMemoryBytes) {
      over.push(`memory ${o.memory_bytes} > ${l.maxMemoryBytes} bytes`);
    }
    if (o.timeout_ms > l.maxTimeoutMs) over.push(`timeout ${o.timeout_ms} > ${l.maxTimeoutMs} ms`);
    if (o.output_bytes > l.maxOutputBytes) {
      over.push(`output ${o.output_bytes} > ${l.maxOutputBytes} bytes`);
    }
    if (over.length) return new Reject("over-limit", over.join(", "));
    if (o.memory_bytes < PAGE_BYTES || o.memory_bytes % PAGE_BYTES !== 0 || o.timeout_ms < 1) {
      return new Reject(
        "unsupported",
        "memory must be a positive multiple of 64 KiB, timeout ≥ 1 ms",
      );
    }
    if (offer.deadline <= Date.now()) {
      return new Reject("unsupported", "the offer's deadline has passed");
    }
    const input = typeof msg.input === "string" ? decodeBase64(msg.input) : undefined;
    if (!input || input.length !== offer.input_size || sha256(input) !== offer.input) {
      return new Reject("unsupported", "the input does not match the offer's digest and size");
    }
    if (this.#running + this.#queued >= l.maxConcurrentJobs + l.queueLength) {
      return new Reject(
        "busy",
        `${this.#running} running, ${this.#queued} queued: the queue is full`,
      );
    }
    return { offer, submitter, input };
  }

  /**
   * Takes a job slot (counts the job as running) once one is free, or
   * answers false at the deadline or on cancellation. The check and the
   * count happen in one synchronous step: checking here and counting after
   * the `await` in the caller let every job that arrived in the same tick
   * through, past maxConcurrentJobs.
   */
  async #slot(deadline: number, signal: AbortSignal): Promise<boolean> {
    while (this.#running >= this.limits.maxConcurrentJobs) {
      const left = deadline - Date.now();
      if (left <= 0 || this.#stopped || signal.aborted) return false;
      const waiters = this.#waiters;
      await new Promise<void>((resolve) => {
        const t = setTimeout(done, left);
        signal.addEventListener("abort", done, { once: true });
        function done() {
          clearTimeout(t);
          signal.removeEventListener("abort", done);
          const i = waiters.indexOf(done);
          if (i >= 0) waiters.splice(i, 1);
          resolve();
        }
        waiters.push(done);
      });
    }
    if (signal.aborted) return false;
    this.#running++;
    return true;
  }

  async #job(
    stream: Stream,
    remote: { toString(): string; publicKey?: { raw: Uint8Array } },
  ): Promise<void> {
    const fs = new FrameStream(stream);
    const maxOffer = MAX_OFFER_OVERHEAD_BYTES + base64Length(this.limits.maxInputBytes);
    const msg = await fs.readJson(maxOffer, OFFER_READ_TIMEOUT_MS, "offer");
    const d = this.#decide(msg, remote);
    if (d instanceof Reject) {
      this.#refusals[d.reason]++;
      this.#log?.info("offer_rejected", {
        peer: remote.toString(),
        reason: d.reason,
        message: d.message,
      });
      await fs.writeJson({ type: "reject", reason: d.reason, message: d.message });
      await fs.close();
      return;
    }
    const { offer, submitter, input } = d;
    this.#queued++;
    let queued = true;
    let started = false;
    // The submitter cancels by closing its side of the stream (or resetting
    // it) before the result: the job stops where it is, its worker is
    // terminated (runJob's signal), and no slot is held for it.
    const cancel = new AbortController();
    const gone = () => cancel.abort();
    stream.addEventListener("close", gone);
    stream.addEventListener("remoteCloseWrite", gone);
    try {
      let module = await this.#store.get(offer.module);
      await fs.writeJson({ type: "accept", need_module: module === undefined });
      if (this.#opts.unsafeTestHooks?.vanish) {
        stream.abort(new Error("test: the node vanished"));
        return;
      }
      if (!module) {
        const bytes = await fs.read(
          offer.module_size,
          transferTimeoutMs(offer.module_size),
          "module",
        );
        // TM-22: bytes that do not hash to the offered digest are never run.
        if (bytes.length !== offer.module_size || !(await this.#store.put(offer.module, bytes))) {
          this.#failed++;
          this.#log?.warn("module_digest_mismatch", {
            peer: remote.toString(),
            module: offer.module,
          });
          await fs.writeJson({
            type: "error",
            message: "the module does not match the offered digest and size",
          });
          await fs.close();
          return;
        }
        module = bytes;
      }
      const queuedAt = performance.now();
      if (!(await this.#slot(offer.deadline - offer.limits.timeout_ms, cancel.signal))) {
        if (cancel.signal.aborted) {
          this.#cancelled++;
          this.#log?.info("job_cancelled", { peer: remote.toString(), module: offer.module });
          await fs.writeJson({ type: "error", message: "cancelled: the job had not started" })
            .catch(() => {});
          stream.abort(new Error("cancelled"));
          return;
        }
        this.#failed++;
        await fs.writeJson({ type: "error", message: "no slot freed before the offer's deadline" });
        await fs.close();
        return;
      }
      this.#queued--;
      queued = false;
      started = true; // #slot counted it as running
      const queuedUs = Math.round((performance.now() - queuedAt) * 1000);
      const result = await this.#pool.run({
        module,
        input,
        limits: {
          memoryBytes: offer.limits.memory_bytes,
          timeoutMs: offer.limits.timeout_ms,
          outputBytes: offer.limits.output_bytes,
        },
        signal: cancel.signal,
        tenant: submitter,
      });
      this.#opts.unsafeTestHooks?.ran?.({ submitter, module: offer.module, worker: result.worker });
      const hook = this.#opts.unsafeTestHooks?.output;
      const output = hook ? hook(result.stdout) : result.stdout;
      const doc = buildReceipt(
        { module, input, args: ["job"] },
        { ...result, stdout: output },
        this.identity.keyid,
      );
      // The receipt also binds the offer (and so the submitter and deadline) it answers.
      (doc as Record<string, JsonValue>).job = {
        offer: sha256(offerBytes(offer)),
        submitter,
        peer: this.identity.peerId,
        queued_us: queuedUs,
      };
      const receipt = formatReceipt(signReceipt(doc, this.identity.signing));
      stream.removeEventListener("close", gone);
      stream.removeEventListener("remoteCloseWrite", gone);
      if (result.outcome === "cancelled") {
        this.#cancelled++;
        this.#log?.info("job_cancelled", {
          peer: remote.toString(),
          module: offer.module,
          wallUs: result.wallUs,
        });
        // A submitter that only closed its write side still reads the signed `cancelled` result.
        if (stream.status !== "open") return;
      }
      await fs.writeJson({
        type: "result",
        outcome: result.outcome,
        exit_code: result.exitCode,
        output: encodeBase64(this.#opts.unsafeTestHooks?.sent?.(output) ?? output),
        stderr: encodeBase64(result.stderr.subarray(0, MAX_RESULT_STDERR_BYTES)),
        receipt: encodeBase64(receipt),
      });
      if (result.outcome !== "cancelled") this.#finished++;
      this.#log?.info("job_finished", {
        peer: remote.toString(),
        module: offer.module,
        outcome: result.outcome,
        wallUs: result.wallUs,
      });
      await fs.close();
    } catch (err) {
      this.#failed++;
      this.#log?.warn("job_failed", { peer: remote.toString(), error: (err as Error).message });
      stream.abort(err as Error);
    } finally {
      stream.removeEventListener("close", gone);
      stream.removeEventListener("remoteCloseWrite", gone);
      if (queued) this.#queued--;
      if (started) {
        this.#running--;
        this.#waiters.shift()?.();
      }
    }
  }
}

function memoryBytes(): number {
  try {
    return Deno.systemMemoryInfo().total;
  } catch {
    return 0; // sys not granted: the record says unknown
  }
}
