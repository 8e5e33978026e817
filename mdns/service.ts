/**
 * DNS-SD names and records of Phase's mDNS service (formats.md §4):
 * `<name>-<channel>-<arch>._phase-image._tcp.local` with SRV, TXT and A.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import type { Answer } from "dns-packet";

/** The DNS-SD service type. */
export const SERVICE_TYPE = "_phase-image._tcp.local";
/** The DNS-SD meta-query name. */
export const SERVICES_META = "_services._dns-sd._udp.local";
/** mDNS group and port. */
export const MDNS_GROUP = "224.0.0.251";
export const MDNS_PORT = 5353;
/** TTL of SRV/TXT/A (host) records, in seconds (RFC 6762 §10: 120). */
export const HOST_TTL_S = 120;
/** TTL of PTR records, in seconds (RFC 6762 §10: 75 minutes). */
export const PTR_TTL_S = 4500;
/** Legacy unicast answers carry at most this TTL, in seconds (RFC 6762 §6.7). */
export const LEGACY_TTL_S = 10;
/** Largest mDNS packet handled, in bytes (RFC 6762 §17: 9000). */
export const MAX_PACKET_BYTES = 9000;
/** Most TXT entries kept per instance. */
export const MAX_TXT_ENTRIES = 32;
/** Longest TXT entry kept, in bytes (one DNS character-string). */
export const MAX_TXT_ENTRY_BYTES = 255;

/** One advertised instance. */
export interface ServiceInstance {
  /** Instance label, e.g. `host1-stable-amd64`. */
  readonly label: string;
  /** Target host name, e.g. `host1.local`. */
  readonly host: string;
  readonly port: number;
  readonly addresses: readonly string[];
  /** TXT keys: arch, channel, version, manifest_cid, mirror. */
  readonly txt: Readonly<Record<string, string>>;
}

/** Full DNS name of an instance. */
export function instanceName(label: string): string {
  return `${label}.${SERVICE_TYPE}`;
}

/** A DNS label from free text: lowercase letters, digits, '-', at most 63. */
export function dnsLabel(text: string): string {
  const l = text.toLowerCase().replace(/[^a-z0-9-]+/g, "-").replace(/^-+|-+$/g, "").slice(0, 63);
  return l || "phase";
}

function txtData(txt: Readonly<Record<string, string>>): Buffer[] {
  return Object.entries(txt).map(([k, v]) => Buffer.from(`${k}=${v}`, "utf8"))
    .filter((b) => b.length <= MAX_TXT_ENTRY_BYTES);
}

/** The records of one instance: PTR (answer), SRV, TXT and A (additionals). */
export function instanceRecords(s: ServiceInstance, ttlScale: number, maxTtl = Infinity) {
  const ttl = (t: number) => Math.min(Math.round(t * ttlScale), maxTtl);
  const name = instanceName(s.label);
  const ptr: Answer = { type: "PTR", name: SERVICE_TYPE, ttl: ttl(PTR_TTL_S), data: name };
  const srv: Answer = {
    type: "SRV",
    name,
    ttl: ttl(HOST_TTL_S),
    flush: maxTtl === Infinity,
    data: { port: s.port, target: s.host, priority: 0, weight: 0 },
  };
  const txt: Answer = {
    type: "TXT",
    name,
    ttl: ttl(PTR_TTL_S),
    flush: maxTtl === Infinity,
    data: txtData(s.txt),
  };
  const a: Answer[] = s.addresses.map((ip) => ({
    type: "A",
    name: s.host,
    ttl: ttl(HOST_TTL_S),
    flush: maxTtl === Infinity,
    data: ip,
  }));
  return { ptr, srv, txt, a };
}
