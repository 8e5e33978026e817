/**
 * A one-shot mDNS querier (RFC 6762 §5.1, legacy unicast) for
 * `_phase-image._tcp.local`: sends a PTR query from an ephemeral port on
 * one interface and collects answers until a deadline. Everything it
 * returns is a hint (TM-07): trust comes from the manifest signature.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import dgram from "node:dgram";
import dnsPacket, { type Answer, type Packet } from "dns-packet";
import {
  MAX_PACKET_BYTES,
  MAX_TXT_ENTRIES,
  MAX_TXT_ENTRY_BYTES,
  MDNS_GROUP,
  MDNS_PORT,
  SERVICE_TYPE,
} from "./service.ts";

/** Default listening time, in ms. */
export const DEFAULT_QUERY_TIMEOUT_MS = 1500;
/** Upper bound on a query's listening time, in ms. */
export const MAX_QUERY_TIMEOUT_MS = 30_000;
/** Most instances returned (TM-07: a flood of answers is bounded). */
export const MAX_INSTANCES = 64;
/** Most records kept from all answers. */
export const MAX_RECORDS = 4096;
/** The query is repeated after this long, in ms (a first multicast packet is often lost). */
export const REQUERY_AFTER_MS = 250;

/** One discovered instance. Every field is a hint, not trust. */
export interface DiscoveredService {
  /** Full instance name. */
  readonly instance: string;
  readonly host: string;
  readonly port: number;
  readonly addresses: readonly string[];
  readonly txt: Readonly<Record<string, string>>;
  /** Source address of the packet that named it. */
  readonly from: string;
}

/** Options of {@link queryServices}. */
export interface QueryOptions {
  readonly timeoutMs?: number;
  /** IPv4 address of the interface to query on. */
  readonly interfaceAddress: string;
  /** Service type to browse (default `_phase-image._tcp.local`). */
  readonly service?: string;
  /** Destination port (5353; tests may use another). */
  readonly port?: number;
}

function parseTxt(data: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  const list = Array.isArray(data) ? data : [data];
  for (const item of list.slice(0, MAX_TXT_ENTRIES)) {
    const s = typeof item === "string" ? item : new TextDecoder().decode(item as Uint8Array);
    if (s.length > MAX_TXT_ENTRY_BYTES) continue;
    const i = s.indexOf("=");
    if (i <= 0) continue;
    const k = s.slice(0, i).toLowerCase();
    if (!(k in out)) out[k] = s.slice(i + 1);
  }
  return out;
}

/**
 * The answer and additional records of one received packet; none for an
 * oversized, malformed or non-response packet (TM-07: garbage is ignored,
 * never fatal). Never throws.
 */
export function responseRecords(msg: Uint8Array): Answer[] {
  if (msg.length > MAX_PACKET_BYTES) return [];
  let p: Packet;
  try {
    p = dnsPacket.decode(Buffer.from(msg.buffer, msg.byteOffset, msg.byteLength));
  } catch {
    return [];
  }
  if (p.type !== "response") return [];
  return [...(p.answers ?? []), ...(p.additionals ?? [])];
}

/** Browses for instances and returns what answered before the deadline. */
export async function queryServices(opts: QueryOptions): Promise<DiscoveredService[]> {
  const timeoutMs = Math.min(opts.timeoutMs ?? DEFAULT_QUERY_TIMEOUT_MS, MAX_QUERY_TIMEOUT_MS);
  const service = (opts.service ?? SERVICE_TYPE).toLowerCase();
  const sock = dgram.createSocket({ type: "udp4" });
  const records: { answer: Answer; from: string }[] = [];
  const id = Math.floor(Math.random() * 0xffff);
  sock.on("message", (msg: Buffer, rinfo) => {
    if (records.length >= MAX_RECORDS) return;
    for (const a of responseRecords(msg)) {
      if (records.length >= MAX_RECORDS) break;
      records.push({ answer: a, from: rinfo.address });
    }
  });
  sock.on("error", () => {});
  try {
    await new Promise<void>((resolve, reject) => {
      sock.once("error", reject);
      sock.bind(0, "0.0.0.0", () => resolve());
    });
    sock.setMulticastInterface(opts.interfaceAddress);
    sock.setMulticastTTL(255);
    const query = dnsPacket.encode({
      type: "query",
      id,
      questions: [{ type: "PTR", name: service }],
    });
    const send = () =>
      new Promise<void>((r) => sock.send(query, opts.port ?? MDNS_PORT, MDNS_GROUP, () => r()));
    await send();
    await new Promise((r) => setTimeout(r, Math.min(REQUERY_AFTER_MS, timeoutMs / 2)));
    await send();
    await new Promise((r) => setTimeout(r, Math.max(0, timeoutMs - REQUERY_AFTER_MS)));
  } finally {
    await new Promise<void>((r) => sock.close(() => r()));
  }
  return assemble(records, service);
}

/**
 * Builds instances from collected records (latest record wins; TTL 0
 * removes). Records are grouped by the address that sent them, so a
 * poisoner claiming the same instance name adds an entry but never hides
 * or alters the genuine one (TM-07).
 */
export function assemble(
  records: readonly { answer: Answer; from: string }[],
  service: string,
): DiscoveredService[] {
  const ptrs = new Map<string, { instance: string; from: string }>();
  const srv = new Map<string, { host: string; port: number }>();
  const txt = new Map<string, Record<string, string>>();
  const addrs = new Map<string, Set<string>>();
  for (const { answer: a, from } of records) {
    const name = a.name.toLowerCase();
    const key = `${from}|${name}`;
    const gone = "ttl" in a && a.ttl === 0;
    if (a.type === "PTR" && name === service && typeof a.data === "string") {
      const instance = a.data.toLowerCase();
      if (gone) ptrs.delete(`${from}|${instance}`);
      else ptrs.set(`${from}|${instance}`, { instance, from });
    } else if (a.type === "SRV" && !gone) {
      srv.set(key, { host: a.data.target.toLowerCase(), port: a.data.port });
    } else if (a.type === "TXT" && !gone) {
      txt.set(key, parseTxt(a.data));
    } else if (a.type === "A" && !gone && typeof a.data === "string") {
      const set = addrs.get(key) ?? new Set<string>();
      if (set.size < 16) set.add(a.data);
      addrs.set(key, set);
    }
  }
  const out: DiscoveredService[] = [];
  for (const [key, { instance, from }] of ptrs) {
    if (out.length >= MAX_INSTANCES) break;
    const s = srv.get(key);
    if (!s || !instance.endsWith("." + service)) continue;
    out.push({
      instance,
      host: s.host,
      port: s.port,
      addresses: [...(addrs.get(`${from}|${s.host}`) ?? [])],
      txt: txt.get(key) ?? {},
      from,
    });
  }
  return out.sort((a, b) =>
    a.instance < b.instance ? -1 : a.instance > b.instance ? 1 : a.from < b.from ? -1 : 1
  );
}
