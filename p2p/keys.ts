/**
 * DHT keys and content ids of Phase (formats.md §5, docs/dht-keys.md).
 *
 * @module
 */
import { CID } from "multiformats/cid";
import * as raw from "multiformats/codecs/raw";
import { sha256 } from "multiformats/hashes/sha2";
import { canonicalArch, dhtRecordKey } from "../verify/mod.ts";

/** The DHT namespace (second path segment) of Phase records. */
export const PHASE_NAMESPACE = "phase";
/** The private Kademlia protocol id: Phase nodes form their own DHT. */
export const PHASE_KAD_PROTOCOL = "/phase/kad/1.0.0";

function arch(a: string): string {
  const c = canonicalArch(a);
  if (!c) throw new RangeError(`unknown arch '${a}'`);
  return c;
}

/** The record key of verify/'s `dhtRecordKey` (`/phase/{channel}/{arch}/manifest`) as UTF-8 bytes. */
export function recordKey(channel: string, a: string): Uint8Array {
  return new TextEncoder().encode(dhtRecordKey(channel, a));
}

/** Parses a record key; `undefined` if it is not one. */
export function parseRecordKey(key: Uint8Array): { channel: string; arch: string } | undefined {
  const m = /^\/phase\/([a-z0-9][a-z0-9-]{0,31})\/(amd64|arm64)\/manifest$/.exec(
    new TextDecoder().decode(key),
  );
  return m ? { channel: m[1], arch: m[2] } : undefined;
}

/** CID (raw, sha2-256) of the bytes `/phase/{channel}/{arch}`: what providers announce. */
export async function providerCid(channel: string, a: string): Promise<CID> {
  const bytes = new TextEncoder().encode(`/${PHASE_NAMESPACE}/${channel}/${arch(a)}`);
  return CID.createV1(raw.code, await sha256.digest(bytes));
}
