/**
 * The libp2p node of Phase: TCP, noise, yamux, identify, ping and a
 * Kademlia DHT in server mode on the private protocol `/phase/kad/1.0.0`,
 * with the `phase` validator and selector. Publishing (provider side) and
 * lookups that collect values from several peers (client side).
 *
 * @module
 */
import { noise } from "@chainsafe/libp2p-noise";
import { yamux } from "@chainsafe/libp2p-yamux";
import { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf } from "@libp2p/crypto/keys";

/** A libp2p private key (as @libp2p/crypto makes them). */
export type PrivateKey = Awaited<ReturnType<typeof generateKeyPair>>;
import { identify } from "@libp2p/identify";
import { type KadDHT, kadDHT, passthroughMapper, type SingleKadDHT } from "@libp2p/kad-dht";
import { ping } from "@libp2p/ping";
import { tcp } from "@libp2p/tcp";
import { multiaddr } from "@multiformats/multiaddr";
import { CID } from "multiformats/cid";
import { createLibp2p, type Libp2p } from "libp2p";
import { readFileCapped, writeFileAtomic } from "../core/mod.ts";
import type { Logger } from "../core/mod.ts";
import {
  decodeRecord,
  type DiscoveryRecord,
  selectRecordIndex,
  type Trust,
  type Verified,
  verifyRecord,
} from "../verify/mod.ts";
import { PHASE_KAD_PROTOCOL, PHASE_NAMESPACE, providerCid, recordKey } from "./keys.ts";
import { phaseSelector, phaseValidator } from "./validate.ts";

/** Lifetime of provider records in the DHT, in ms (formats.md §5: 24 h). */
export const RECORD_TTL_MS = 24 * 3_600_000;
/** Records are republished this often, in ms (formats.md §5: every 12 h). */
export const REPUBLISH_INTERVAL_MS = 12 * 3_600_000;
/** Longest one put or provide may run, in ms. */
export const PUBLISH_TIMEOUT_MS = 20_000;
/** Default time a lookup collects values, in ms. */
export const LOOKUP_TIMEOUT_MS = 5_000;
/** Longest one bootstrap dial may take, in ms. */
export const DIAL_TIMEOUT_MS = 5_000;
/** Largest peer key file read, in bytes. */
export const MAX_PEER_KEY_BYTES = 4096;
/** Most peers a lookup asks directly besides the DHT query. */
export const MAX_DIRECT_PEERS = 20;
/** Most values a lookup keeps (TM-08: a flood of values is bounded). */
export const MAX_LOOKUP_VALUES = 64;

/** The services of a Phase node. */
export type PhaseNode = Libp2p<{ dht: KadDHT; identify: unknown; ping: unknown }>;

/** Options of {@link createPhaseNode}. */
export interface PhaseNodeOptions {
  /** Listen multiaddrs, e.g. `/ip4/127.0.0.1/tcp/0`. */
  readonly listen?: readonly string[];
  readonly privateKey?: PrivateKey;
  /** Trust for validation (refuse untrusted records) and selection. */
  readonly trust?: Trust;
  /** Client mode: query only, store nothing for others. */
  readonly clientMode?: boolean;
  readonly bootstrap?: readonly string[];
  readonly logger?: Logger;
  /**
   * Extra addresses announced with the node's own (identify, signed peer
   * record), e.g. `/ip4/10.0.0.5/tcp/8080/http`: how a re-serving
   * provider tells clients its HTTP URL (docs/dht-keys.md).
   */
  readonly announce?: readonly string[];
  /**
   * Validators of other DHT namespaces (keyed by the key's second path
   * segment, e.g. `plasm`); the `phase` namespace's cannot be replaced.
   */
  readonly validators?: Readonly<
    Record<string, (key: Uint8Array, value: Uint8Array) => Promise<void>>
  >;
  /** Selectors of other DHT namespaces, keyed as {@link PhaseNodeOptions.validators}. */
  readonly selectors?: Readonly<Record<string, (key: Uint8Array, values: Uint8Array[]) => number>>;
  /** libp2p peer discovery modules (e.g. `@libp2p/mdns`); none by default. */
  readonly peerDiscovery?: NonNullable<Parameters<typeof createLibp2p>[0]>["peerDiscovery"];
}

/** Loads or creates the node's peer key (`<state>/p2p.key`, mode 0600): a stable peer id. */
export async function loadPeerKey(path: string): Promise<PrivateKey> {
  try {
    return privateKeyFromProtobuf(await readFileCapped(path, MAX_PEER_KEY_BYTES));
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
  const key = await generateKeyPair("Ed25519");
  await writeFileAtomic(path, privateKeyToProtobuf(key), { mode: 0o600, createNew: true });
  return key;
}

/** Starts a node and dials the bootstrap peers (failures are logged, not fatal). */
export async function createPhaseNode(opts: PhaseNodeOptions = {}): Promise<PhaseNode> {
  const node = await createLibp2p({
    privateKey: opts.privateKey,
    addresses: {
      listen: [...(opts.listen ?? ["/ip4/127.0.0.1/tcp/0"])],
      appendAnnounce: [...(opts.announce ?? [])],
    },
    transports: [tcp()],
    peerDiscovery: opts.peerDiscovery ? [...opts.peerDiscovery] : [],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    services: {
      identify: identify(),
      ping: ping(),
      dht: kadDHT({
        protocol: PHASE_KAD_PROTOCOL,
        clientMode: opts.clientMode ?? false,
        // Phase runs on LANs and loopback: keep private addresses.
        peerInfoMapper: passthroughMapper,
        allowQueryWithZeroPeers: true,
        // formats.md §5: provider records live 24 h and are renewed every 12 h.
        providers: { provideValidity: RECORD_TTL_MS },
        reprovide: { validity: RECORD_TTL_MS, threshold: REPUBLISH_INTERVAL_MS },
        validators: { ...opts.validators, [PHASE_NAMESPACE]: phaseValidator(opts.trust) },
        selectors: { ...opts.selectors, [PHASE_NAMESPACE]: phaseSelector(opts.trust) },
      }),
    },
  }) as unknown as PhaseNode;
  await bootstrap(node, opts.bootstrap ?? [], opts.logger);
  return node;
}

/** Dials each bootstrap multiaddr once. Returns how many answered. */
export async function bootstrap(
  node: PhaseNode,
  addrs: readonly string[],
  logger?: Logger,
): Promise<number> {
  let ok = 0;
  await Promise.all(addrs.map(async (a) => {
    try {
      await node.dial(multiaddr(a), { signal: AbortSignal.timeout(DIAL_TIMEOUT_MS) });
      ok++;
    } catch (err) {
      logger?.warn("dht_bootstrap_failed", { addr: a, error: (err as Error).message });
    }
  }));
  return ok;
}

/**
 * Peers in this node's DHT routing table. A put or a provide reaches these
 * and the closer peers they name; a connected peer is not in it until
 * identify has shown that it speaks the DHT protocol.
 */
export function dhtRoutingPeers(node: PhaseNode): number {
  return (node.services.dht as Partial<SingleKadDHT>).routingTable?.size ?? 0;
}

/** Peers that took an ADD_PROVIDER message among a provide's query events. */
function providerRecipients(e: { name: string; messageName?: string }): number {
  return e.name === "PEER_RESPONSE" && e.messageName === "ADD_PROVIDER" ? 1 : 0;
}

/** What {@link publishRecord} reached. */
export interface Published {
  /** Peers that stored the signed record. */
  readonly accepted: number;
  /** Peers whose answer was an error. */
  readonly rejected: number;
  /** Peers that took the provider record. */
  readonly provided: number;
}

/**
 * Publishes a signed record under `/phase/{channel}/{arch}/manifest` and a
 * provider record for the CID of `/phase/{channel}/{arch}`. The record is
 * validated first: `dht.put` never throws on remote rejection.
 */
export async function publishRecord(
  node: PhaseNode,
  channel: string,
  arch: string,
  bytes: Uint8Array,
  opts: { timeoutMs?: number; logger?: Logger; now?: Date } = {},
): Promise<Published> {
  decodeRecord(bytes, opts.now ?? new Date());
  const signal = AbortSignal.timeout(opts.timeoutMs ?? PUBLISH_TIMEOUT_MS);
  let accepted = 0;
  let rejected = 0;
  let provided = 0;
  const key = recordKey(channel, arch);
  try {
    for await (const e of node.services.dht.put(key, bytes, { signal })) {
      if (e.name === "PEER_RESPONSE" && e.messageName === "PUT_VALUE") accepted++;
      if (e.name === "QUERY_ERROR") rejected++;
    }
  } catch (err) {
    opts.logger?.warn("dht_put_failed", { channel, arch, error: (err as Error).message });
  }
  try {
    for await (
      const e of node.services.dht.provide(await providerCid(channel, arch), { signal })
    ) provided += providerRecipients(e);
  } catch (err) {
    opts.logger?.warn("dht_provide_failed", { channel, arch, error: (err as Error).message });
  }
  opts.logger?.info("dht_published", { channel, arch, accepted, rejected, provided });
  return { accepted, rejected, provided };
}

/** One value a lookup found. */
export interface FoundRecord {
  readonly bytes: Uint8Array;
  readonly record: DiscoveryRecord;
  /** Peer ids that returned these exact bytes. */
  readonly from: readonly string[];
}

/**
 * Collects every distinct, self-consistent record for channel/arch from
 * the peers a DHT query reaches (and the local store) until the query ends
 * or `timeoutMs` passes. Nothing here is trusted yet: pass the result to
 * {@link bestTrusted}, so a forged higher version never hides the genuine
 * record (TM-08).
 */
export async function lookupRecords(
  node: PhaseNode,
  channel: string,
  arch: string,
  opts: { timeoutMs?: number; now?: Date } = {},
): Promise<FoundRecord[]> {
  const now = opts.now ?? new Date();
  const found = new Map<
    string,
    { bytes: Uint8Array; record: DiscoveryRecord; from: Set<string> }
  >();
  const add = (bytes: Uint8Array, from: string) => {
    const k = new TextDecoder().decode(bytes);
    const e = found.get(k);
    if (e) {
      e.from.add(from);
      return;
    }
    if (found.size >= MAX_LOOKUP_VALUES) return;
    try {
      found.set(k, {
        bytes: bytes.slice(),
        record: decodeRecord(bytes, now),
        from: new Set([from]),
      });
    } catch { /* malformed, forged-inconsistent or expired: dropped */ }
  };
  const signal = AbortSignal.timeout(opts.timeoutMs ?? LOOKUP_TIMEOUT_MS);
  const key = recordKey(channel, arch);
  const answered = new Set<string>();
  // deno-lint-ignore no-explicit-any
  const candidates = new Map<string, any>();
  try {
    for await (const e of node.services.dht.get(key, { signal })) {
      if (e.name === "PEER_RESPONSE") {
        answered.add(e.from.toString());
        if (e.record) add(e.record.value, e.from.toString());
        for (const p of e.closer) candidates.set(p.id.toString(), p.id);
      }
      if (e.name === "VALUE") add(e.value, e.from.toString());
    }
  } catch { /* timeout or not found: keep what was collected */ }
  // Kademlia stops at the peer closest to the key: a forger that places
  // itself there would be the only one asked. Ask every other peer we
  // know directly as well, so its value cannot hide the genuine one (TM-08).
  for (const p of node.getPeers()) candidates.set(p.toString(), p);
  const dht = node.services.dht as unknown as {
    peerRouting?: {
      // deno-lint-ignore no-explicit-any
      getValueOrPeers(peer: any, key: Uint8Array, o: object): AsyncIterable<any>;
    };
  };
  const direct = [...candidates].filter(([id]) =>
    !answered.has(id) && id !== node.peerId.toString()
  )
    .slice(0, MAX_DIRECT_PEERS);
  await Promise.all(direct.map(async ([id, peer]) => {
    try {
      const path = { index: -1, queued: 0, running: 0, total: 0 };
      for await (const e of dht.peerRouting?.getValueOrPeers(peer, key, { signal, path }) ?? []) {
        if (e.name === "PEER_RESPONSE" && e.record) add(e.record.value, id);
      }
    } catch { /* unreachable peer: skipped */ }
  }));
  return [...found.values()].map((e) => ({ bytes: e.bytes, record: e.record, from: [...e.from] }));
}

/** The best record the trust file signs (highest version), or undefined. */
export function bestTrusted(
  found: readonly FoundRecord[],
  trust: Trust,
  now = new Date(),
): Verified<DiscoveryRecord> | undefined {
  const trusted: Verified<DiscoveryRecord>[] = [];
  for (const f of found) {
    try {
      trusted.push(verifyRecord(f.bytes, trust, now));
    } catch { /* untrusted or invalid: ignored */ }
  }
  const i = selectRecordIndex(trusted.map((t) => t.value));
  return i < 0 ? undefined : trusted[i];
}

/** Peer ids that announced themselves as providers of channel/arch. */
export async function findProviders(
  node: PhaseNode,
  channel: string,
  arch: string,
  opts: { timeoutMs?: number } = {},
): Promise<{ id: string; addrs: string[] }[]> {
  const out = new Map<string, string[]>();
  const signal = AbortSignal.timeout(opts.timeoutMs ?? LOOKUP_TIMEOUT_MS);
  try {
    for await (
      const e of node.services.dht.findProviders(await providerCid(channel, arch), { signal })
    ) {
      if (e.name === "PROVIDER") {
        for (const p of e.providers) out.set(p.id.toString(), p.multiaddrs.map(String));
      }
    }
  } catch { /* timeout: what was found */ }
  return [...out].map(([id, addrs]) => ({ id, addrs }));
}

/** Most provider queries one lookup runs (it stops early when a round finds nothing new). */
export const PROVIDER_LOOKUP_ROUNDS = 5;
/** Pause before asking again when a round found no provider at all, in ms. */
export const PROVIDER_RETRY_MS = 250;
/** Most HTTP endpoints taken from one provider lookup (TM-08: a flood is bounded). */
export const MAX_HTTP_PROVIDERS = 16;

/** The multiaddr of an HTTP endpoint: `/ip4/<a>/tcp/<port>/http` (or `/ip6/...`). */
export function httpMultiaddr(host: string, port: number): string {
  return host.includes(":") ? `/ip6/${host}/tcp/${port}/http` : `/ip4/${host}/tcp/${port}/http`;
}

/** The HTTP base URL of an `/ip4|ip6/<a>/tcp/<port>/http` multiaddr, or undefined. */
export function httpUrlOfMultiaddr(addr: string): string | undefined {
  const m = /^\/(ip4|ip6)\/([^/]+)\/tcp\/(\d{1,5})\/http(?:\/p2p\/[^/]+)?$/.exec(addr);
  if (!m) return undefined;
  const port = Number(m[3]);
  if (port < 1 || port > 65535) return undefined;
  return m[1] === "ip6" ? `http://[${m[2]}]:${port}` : `http://${m[2]}:${port}`;
}

/**
 * Announces this node as a provider of a manifest (its raw CID): what a
 * re-serving provider does, since it cannot add itself to the release's
 * signed `mirrors` (issue 12 §2). Bounded by `timeoutMs`. Returns how many
 * peers took the provider record (0: only this node knows it).
 */
export async function provideManifest(
  node: PhaseNode,
  manifestCid: string,
  opts: { timeoutMs?: number; logger?: Logger } = {},
): Promise<number> {
  const signal = AbortSignal.timeout(opts.timeoutMs ?? PUBLISH_TIMEOUT_MS);
  let peers = 0;
  try {
    for await (const e of node.services.dht.provide(CID.parse(manifestCid), { signal })) {
      peers += providerRecipients(e);
    }
    opts.logger?.info("dht_provided", { manifest_cid: manifestCid, peers });
  } catch (err) {
    opts.logger?.warn("dht_provide_failed", {
      manifest_cid: manifestCid,
      error: (err as Error).message,
    });
  }
  return peers;
}

/**
 * HTTP base URLs of the peers that announced themselves as providers of
 * `manifestCid`, read from their `/http` addresses. Hints only (TM-07,
 * TM-08): the client verifies everything it gets from them.
 */
export async function findManifestProviders(
  node: PhaseNode,
  manifestCid: string,
  opts: { timeoutMs?: number } = {},
): Promise<{ peer: string; url: string }[]> {
  const out = new Map<string, { peer: string; url: string }>();
  const signal = AbortSignal.timeout(opts.timeoutMs ?? LOOKUP_TIMEOUT_MS);
  const cid = CID.parse(manifestCid);
  // One Kademlia query may end before it heard every provider (it stops at
  // the closest peers): ask again while a round still finds new ones.
  for (let round = 0; round < PROVIDER_LOOKUP_ROUNDS && !signal.aborted; round++) {
    const before = out.size;
    try {
      for await (const e of node.services.dht.findProviders(cid, { signal })) {
        if (e.name !== "PROVIDER") continue;
        for (const p of e.providers) {
          for (const a of p.multiaddrs.map(String)) {
            const url = httpUrlOfMultiaddr(a);
            if (url && !out.has(url) && out.size < MAX_HTTP_PROVIDERS) {
              out.set(url, { peer: p.id.toString(), url });
            }
          }
        }
      }
    } catch { /* timeout: what was found */ }
    if (out.size > 0 && round > 0 && out.size === before) break;
    // Nothing yet: a fresh node's routing table may still be filling (identify).
    if (out.size === 0) await new Promise((r) => setTimeout(r, PROVIDER_RETRY_MS));
  }
  return [...out.values()];
}
