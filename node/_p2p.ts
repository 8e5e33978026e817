/**
 * The libp2p side of node/: p2p/'s node with the `plasm` DHT namespace,
 * publishing capability records and finding them.
 *
 * @module
 */
import { mdns as mdnsDiscovery } from "@libp2p/mdns";
import { multiaddr } from "@multiformats/multiaddr";
import type { Logger } from "../core/mod.ts";
import {
  bootstrap,
  createPhaseNode,
  DIAL_TIMEOUT_MS,
  LOOKUP_TIMEOUT_MS,
  type PhaseNode,
  type PhaseNodeOptions,
  PUBLISH_TIMEOUT_MS,
} from "../p2p/mod.ts";
import {
  archCid,
  type Capability,
  capabilityKey,
  MAX_CAPABILITY_BYTES,
  PLASM_NAMESPACE,
  plasmSelector,
  plasmValidator,
  verifyCapability,
} from "./capability.ts";
import { FrameStream } from "./frame.ts";
import type { Identity } from "./key.ts";
import { CAPABILITY_PROTOCOL } from "./protocol.ts";

/** The libp2p node of a Plasm node or client. */
export type P2p = PhaseNode;

/** Longest a capability request over the protocol may take, in ms. */
export const CAPABILITY_REQUEST_TIMEOUT_MS = 3_000;
/** Most providers a lookup keeps. */
export const MAX_PROVIDERS = 64;

/** The mDNS service name Plasm nodes query and answer (not IPFS's `_p2p._udp.local`). */
export const PLASM_MDNS_SERVICE = "_phase-plasm._udp.local";
/** How often a Plasm node queries the LAN for others, in ms. */
export const MDNS_QUERY_INTERVAL_MS = 10_000;

/**
 * Starts the libp2p node with this identity and the `plasm` validator and
 * selector; with `mdns`, it finds (and is found by) Plasm nodes on the LAN.
 */
export function createPlasmP2p(
  id: Identity,
  listen: readonly string[],
  clientMode: boolean,
  mdns = false,
): Promise<P2p> {
  return createPhaseNode({
    peerDiscovery: mdns
      ? [mdnsDiscovery({ serviceTag: PLASM_MDNS_SERVICE, interval: MDNS_QUERY_INTERVAL_MS })]
      : [],
    // Identity.libp2p is the key generateKeyPairFromSeed made (key.ts), typed narrowly.
    privateKey: id.libp2p as unknown as NonNullable<PhaseNodeOptions["privateKey"]>,
    listen,
    clientMode,
    validators: { [PLASM_NAMESPACE]: plasmValidator() },
    selectors: { [PLASM_NAMESPACE]: plasmSelector() },
  });
}

/** Most peers found over mDNS that a node dials at once. */
export const MAX_MDNS_DIALS = 4;
/** Most connections a node keeps to peers it dialled because mDNS named them. */
export const MAX_MDNS_PEERS = 32;

/**
 * Dials the Plasm peers mDNS finds (libp2p only records them): their
 * non-loopback addresses, a few at a time, up to {@link MAX_MDNS_PEERS}.
 * mDNS is unauthenticated: a peer it names is authenticated by noise (its
 * peer id) and gets no trust from being found; jobs still go only to peers
 * whose capability record is signed by their own key (TM-24).
 */
export function dialMdnsPeers(p2p: P2p, logger?: Logger): void {
  const dialled = new Set<string>();
  let inFlight = 0;
  p2p.addEventListener("peer:discovery", (e) => {
    const id = e.detail.id.toString();
    if (id === p2p.peerId.toString() || dialled.has(id) || inFlight >= MAX_MDNS_DIALS) return;
    if (dialled.size >= MAX_MDNS_PEERS) return;
    if (p2p.getConnections(e.detail.id).length > 0) return;
    const addrs = e.detail.multiaddrs.map(String).filter((a) =>
      !/^\/ip4\/127\.|^\/ip6\/::1\//.test(a)
    );
    if (addrs.length === 0) return;
    dialled.add(id);
    inFlight++;
    (async () => {
      for (const a of addrs) {
        try {
          await p2p.dial(multiaddr(`${a}/p2p/${id}`), {
            signal: AbortSignal.timeout(DIAL_TIMEOUT_MS),
          });
          logger?.info("mdns_peer_connected", { peer: id, addr: a });
          return;
        } catch (err) {
          logger?.info("mdns_dial_failed", { peer: id, addr: a, error: (err as Error).message });
        }
      }
      dialled.delete(id); // try again when it is announced again
    })().finally(() => inFlight--);
  });
}

/** Dials bootstrap peers; returns how many answered. */
export function bootstrapPeers(
  p2p: P2p,
  addrs: readonly string[],
  logger?: Logger,
): Promise<number> {
  return bootstrap(p2p, addrs, logger);
}

/** Longest a client waits for its DHT routing table after dialling bootstrap peers, in ms. */
export const ROUTING_WAIT_MS = 2_000;
/** Poll interval of that wait, in ms. */
const ROUTING_POLL_MS = 20;

/**
 * Waits until the DHT routing table holds a peer (identify must finish
 * before lookups can route), at most `timeoutMs`. Returns its size.
 */
export async function waitForRouting(p2p: P2p, timeoutMs = ROUTING_WAIT_MS): Promise<number> {
  const size = () =>
    (p2p.services.dht as unknown as { routingTable?: { size: number } }).routingTable?.size ?? 0;
  const end = Date.now() + timeoutMs;
  while (size() === 0 && Date.now() < end) {
    await new Promise((r) => setTimeout(r, ROUTING_POLL_MS));
  }
  return size();
}

/** Puts the record under `/plasm/node/<peerId>` and provides the arch CID. */
export async function archCidPublish(
  p2p: P2p,
  peerId: string,
  record: Uint8Array,
  arch: string,
  logger?: Logger,
): Promise<void> {
  // dht.put never throws on a remote refusal: check our own record first.
  const ok = verifyCapability(record, peerId);
  if (typeof ok === "string") throw new Error(`own capability record invalid: ${ok}`);
  const signal = AbortSignal.timeout(PUBLISH_TIMEOUT_MS);
  try {
    for await (
      const _ of p2p.services.dht.put(capabilityKey(peerId), record, { signal })
    ) { /* drain */ }
    for await (const _ of p2p.services.dht.provide(await archCid(arch), { signal })) { /* drain */ }
    logger?.info("capability_published", { arch });
  } catch (err) {
    logger?.warn("capability_publish_failed", { error: (err as Error).message });
  }
}

/** Peer ids (and addresses) that announced themselves for `arch`. */
export async function findArchProviders(
  p2p: P2p,
  arch: string,
  timeoutMs = LOOKUP_TIMEOUT_MS,
): Promise<{ id: string; addrs: string[] }[]> {
  const out = new Map<string, string[]>();
  try {
    for await (
      const e of p2p.services.dht.findProviders(await archCid(arch), {
        signal: AbortSignal.timeout(timeoutMs),
      })
    ) {
      if (e.name !== "PROVIDER") continue;
      for (const p of e.providers) {
        if (out.size < MAX_PROVIDERS) out.set(p.id.toString(), p.multiaddrs.map(String));
      }
    }
  } catch { /* timeout: what was found */ }
  return [...out].map(([id, addrs]) => ({ id, addrs }));
}

/** The capability record of `peerId` from the DHT, verified against that peer (TM-24). */
export async function getCapability(
  p2p: P2p,
  peerId: string,
  timeoutMs = LOOKUP_TIMEOUT_MS,
): Promise<Capability | undefined> {
  let best: Capability | undefined;
  try {
    for await (
      const e of p2p.services.dht.get(capabilityKey(peerId), {
        signal: AbortSignal.timeout(timeoutMs),
      })
    ) {
      if (e.name !== "VALUE") continue;
      const c = verifyCapability(e.value, peerId);
      if (typeof c !== "string" && (!best || c.issuedAt > best.issuedAt)) best = c;
    }
  } catch { /* not found or timeout */ }
  return best;
}

/** Asks a peer for its capability record over the protocol; verified against that peer (TM-24). */
export async function askCapability(
  p2p: P2p,
  peer: Parameters<P2p["dialProtocol"]>[0],
  peerId: string,
): Promise<Capability | string> {
  try {
    const stream = await p2p.dialProtocol(peer, CAPABILITY_PROTOCOL, {
      signal: AbortSignal.timeout(CAPABILITY_REQUEST_TIMEOUT_MS),
    });
    const fs = new FrameStream(stream);
    const bytes = await fs.read(
      MAX_CAPABILITY_BYTES,
      CAPABILITY_REQUEST_TIMEOUT_MS,
      "capability record",
    );
    await fs.close();
    return verifyCapability(bytes, peerId);
  } catch (err) {
    return (err as Error).message;
  }
}

/** Parses a multiaddr string (with `/p2p/<id>`). */
export function parseAddr(a: string): ReturnType<typeof multiaddr> {
  return multiaddr(a);
}
