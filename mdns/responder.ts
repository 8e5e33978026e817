/**
 * The mDNS responder (RFC 6762 / 6763) for `_phase-image._tcp.local`:
 * `node:dgram` + `dns-packet`. Answers PTR/SRV/TXT/A queries, announces on
 * start, sends a goodbye (TTL 0) on stop. Hostile packets are dropped
 * (TM-07: the responder never learns anything from the network, it only
 * answers about itself).
 *
 * @module
 */
import { Buffer } from "node:buffer";
import dgram from "node:dgram";
import dnsPacket, { type Answer, type Packet } from "dns-packet";
import type { Logger } from "../core/mod.ts";
import {
  instanceName,
  instanceRecords,
  LEGACY_TTL_S,
  MAX_PACKET_BYTES,
  MDNS_GROUP,
  MDNS_PORT,
  PTR_TTL_S,
  SERVICE_TYPE,
  type ServiceInstance,
  SERVICES_META,
} from "./service.ts";

/** Announcements sent on start (RFC 6762 §8.3: at least two, one second apart). */
export const ANNOUNCE_COUNT = 2;
/** Gap between announcements, in ms. */
export const ANNOUNCE_INTERVAL_MS = 1000;
/** Most questions answered from one packet. */
export const MAX_QUESTIONS = 16;
/** Longest a bind or a send may take, in ms. */
export const SOCKET_TIMEOUT_MS = 3000;

/** Options of the responder. */
export interface ResponderOptions {
  /** IPv4 address of the interface to answer on (its multicast membership). */
  readonly interfaceAddress: string;
  readonly logger?: Logger;
  /** Port to listen on (5353; tests may use another). */
  readonly port?: number;
}

function withTimeout<T>(p: Promise<T>, what: string): Promise<T> {
  let t: ReturnType<typeof setTimeout>;
  return Promise.race([
    p,
    new Promise<T>((_, rej) =>
      t = setTimeout(() => rej(new Error(`${what} timed out`)), SOCKET_TIMEOUT_MS)
    ),
  ]).finally(() => clearTimeout(t));
}

/** A running responder. */
export class MdnsResponder {
  readonly #opts: ResponderOptions;
  #socket?: dgram.Socket;
  #instances: readonly ServiceInstance[] = [];
  #timers = new Set<ReturnType<typeof setTimeout>>();
  /** Queries answered and packets dropped, for status. */
  answered = 0;
  dropped = 0;
  state: "stopped" | "running" | "error" = "stopped";

  constructor(opts: ResponderOptions) {
    this.#opts = opts;
  }

  /** What is advertised now. */
  get instances(): readonly ServiceInstance[] {
    return this.#instances;
  }

  /** Binds, joins the group on the interface and announces `instances`. */
  async start(instances: readonly ServiceInstance[]): Promise<void> {
    const sock = dgram.createSocket({ type: "udp4", reuseAddr: true });
    this.#socket = sock;
    sock.on("error", (err) => this.#opts.logger?.warn("mdns_socket_error", { error: err.message }));
    sock.on("message", (msg, rinfo) => this.#onMessage(msg, rinfo));
    await withTimeout(
      new Promise<void>((resolve, reject) => {
        sock.once("error", reject);
        sock.bind(this.#opts.port ?? MDNS_PORT, "0.0.0.0", () => {
          sock.off("error", reject);
          resolve();
        });
      }),
      "mdns bind",
    );
    sock.addMembership(MDNS_GROUP, this.#opts.interfaceAddress);
    sock.setMulticastInterface(this.#opts.interfaceAddress);
    sock.setMulticastTTL(255);
    sock.setMulticastLoopback(true);
    this.state = "running";
    await this.update(instances);
  }

  /** Replaces the advertised instances: goodbye for removed ones, announce the rest. */
  async update(instances: readonly ServiceInstance[]): Promise<void> {
    const gone = this.#instances.filter((old) =>
      !instances.some((n) => n.label === old.label && JSON.stringify(n) === JSON.stringify(old))
    );
    if (gone.length && this.state === "running") await this.#send(this.#response(gone, 0));
    this.#instances = instances;
    if (this.state !== "running" || instances.length === 0) return;
    await this.#send(this.#response(instances, 1));
    for (let i = 1; i < ANNOUNCE_COUNT; i++) {
      const t = setTimeout(() => {
        this.#timers.delete(t);
        if (this.state === "running") {
          void this.#send(this.#response(this.#instances, 1)).catch(() => {});
        }
      }, ANNOUNCE_INTERVAL_MS * i);
      this.#timers.add(t);
    }
  }

  /** Sends a goodbye (TTL 0) for every instance and closes the socket. */
  async stop(): Promise<void> {
    for (const t of this.#timers) clearTimeout(t);
    this.#timers.clear();
    if (this.state === "running" && this.#instances.length) {
      await this.#send(this.#response(this.#instances, 0)).catch((err) =>
        this.#opts.logger?.warn("mdns_goodbye_failed", { error: String(err) })
      );
    }
    this.state = "stopped";
    const sock = this.#socket;
    this.#socket = undefined;
    if (sock) await new Promise<void>((r) => sock.close(() => r()));
  }

  #response(
    instances: readonly ServiceInstance[],
    ttlScale: number,
    maxTtl = Infinity,
    id = 0,
    questions: Packet["questions"] = [],
  ) {
    const answers: Answer[] = [];
    const additionals: Answer[] = [];
    for (const s of instances) {
      const r = instanceRecords(s, ttlScale, maxTtl);
      answers.push(r.ptr);
      additionals.push(r.srv, r.txt, ...r.a);
    }
    return dnsPacket.encode({
      type: "response",
      id,
      flags: dnsPacket.AUTHORITATIVE_ANSWER,
      questions,
      answers,
      additionals,
    });
  }

  async #send(buf: Buffer, port = MDNS_PORT, address = MDNS_GROUP): Promise<void> {
    const sock = this.#socket;
    if (!sock) return;
    await withTimeout(
      new Promise<void>((resolve, reject) =>
        sock.send(buf, port, address, (err) => err ? reject(err) : resolve())
      ),
      "mdns send",
    );
  }

  #onMessage(msg: Buffer, rinfo: dgram.RemoteInfo) {
    const legacy = rinfo.port !== MDNS_PORT; // RFC 6762 §6.7: one-shot querier
    const reply = answerQuery(msg, legacy, this.#instances);
    if (reply === "dropped") {
      this.dropped++; // TM-07: malformed or hostile packets are dropped, never fatal
      return;
    }
    if (reply === undefined) return;
    this.answered++;
    const [port, address] = legacy ? [rinfo.port, rinfo.address] : [MDNS_PORT, MDNS_GROUP];
    void this.#send(reply, port, address).catch((err) =>
      this.#opts.logger?.warn("mdns_reply_failed", { error: String(err) })
    );
  }
}

/**
 * The responder's answer to one received packet about `instances`: the
 * reply packet, `undefined` when the packet asks nothing it knows, or
 * `"dropped"` for an oversized or malformed packet (TM-07: never fatal).
 * `legacy` marks a one-shot querier (RFC 6762 §6.7: source port not 5353),
 * which gets its question echoed, its id, and short TTLs. Never throws.
 */
export function answerQuery(
  msg: Uint8Array,
  legacy: boolean,
  instances: readonly ServiceInstance[],
): Buffer | "dropped" | undefined {
  let packet: Packet;
  try {
    if (msg.length > MAX_PACKET_BYTES) throw new Error("oversized");
    packet = dnsPacket.decode(Buffer.from(msg.buffer, msg.byteOffset, msg.byteLength));
  } catch {
    return "dropped";
  }
  if (packet.type !== "query" || !packet.questions?.length) return undefined;
  const matched = new Map<string, ServiceInstance>();
  const answers: Answer[] = [];
  const additionals: Answer[] = [];
  const scale = 1;
  const maxTtl = legacy ? LEGACY_TTL_S : Infinity;
  for (const q of packet.questions.slice(0, MAX_QUESTIONS)) {
    const name = q.name.toLowerCase();
    const any = (q.type as string) === "ANY";
    if (name === SERVICE_TYPE && (q.type === "PTR" || any)) {
      for (const s of instances) matched.set(s.label, s);
    } else if (name === SERVICES_META && (q.type === "PTR" || any) && instances.length) {
      answers.push({
        type: "PTR",
        name: SERVICES_META,
        ttl: Math.min(PTR_TTL_S, maxTtl),
        data: SERVICE_TYPE,
      });
    } else {
      for (const s of instances) {
        const r = instanceRecords(s, scale, maxTtl);
        if (name === instanceName(s.label).toLowerCase()) {
          if (q.type === "SRV" || any) answers.push(r.srv);
          if (q.type === "TXT" || any) answers.push(r.txt);
          additionals.push(...r.a);
        } else if (name === s.host.toLowerCase() && (q.type === "A" || any)) {
          answers.push(...r.a);
        }
      }
    }
  }
  for (const s of matched.values()) {
    const r = instanceRecords(s, scale, maxTtl);
    answers.push(r.ptr);
    additionals.push(r.srv, r.txt, ...r.a);
  }
  if (answers.length === 0) return undefined;
  return dnsPacket.encode({
    type: "response",
    id: legacy ? packet.id : 0,
    flags: dnsPacket.AUTHORITATIVE_ANSWER,
    questions: legacy ? packet.questions : [],
    answers,
    additionals,
  });
}
