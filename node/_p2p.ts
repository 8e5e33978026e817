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

/** A peer mDNS found: its id and the addresses it announced. */
export interface MdnsPeer {
  readonly id: { toString(): string };
  readonly multiaddrs: readonly { toString(): string }[];
}

/**
 * Starts the libp2p node with this identity and the `plasm` validator and
 * selector; with `onMdnsPeer`, it queries and answers mDNS on the LAN and
 * hands each Plasm peer found there (and only there) to `onMdnsPeer`.
 */
export function createPlasmP2p(
  id: Identity,
  listen: readonly string[],
  clientMode: boolean,
  onMdnsPeer?: (peer: MdnsPeer) => void,
): Promise<P2p> {
  const found = onMdnsPeer;
  return createPhaseNode({
    peerDiscovery: found
      ? [(components: Parameters<ReturnType<typeof mdnsDiscovery>>[0]) => {
        const d = mdnsDiscovery({
          serviceTag: PLASM_MDNS_SERVICE,
          interval: MDNS_QUERY_INTERVAL_MS,
        })(
          components,
        );
        d.addEventListener("peer", (e) => found(e.detail));
        return d;
      }]
      : [],
    // Identity.libp2p is the key generateKeyPairFromSeed made (key.ts), typed narrowly.
    privateKey: id.libp2p as unknown as NonNullable<PhaseNodeOptions["privateKey"]>,
    listen,
    clientMode,
    validators: { [PLASM_NAMESPACE]: plasmValidator() },
    selectors: { [PLASM_NAMESPACE]: plasmSelector() },
  });
}

/** Whether a listen multiaddr is a loopback address (`/ip4/127.x`, `/ip6/::1`). */
function isLoopbackAddr(addr: string): boolean {
  return /^\/ip4\/127\.|^\/ip6\/::1\//.test(addr);
}

/**
 * Why a node that asked for mDNS runs without it, or undefined when mDNS
 * can run. Off when every listen address is loopback: no LAN peer could
 * dial what it would announce, and a loopback-only node stays off the LAN
 * (secure default). Off when the interface list cannot be read (no
 * `sys networkInterfaces`, or a sandbox without netlink such as a systemd
 * unit's `RestrictAddressFamilies=`): @libp2p/mdns reads it from a socket
 * callback, where the error would end the whole node.
 */
export function mdnsOffReason(
  listen: readonly string[],
  networkInterfaces: () => unknown = Deno.networkInterfaces,
): { reason: string; hint?: string; error?: string } | undefined {
  if (listen.every(isLoopbackAddr)) {
    return { reason: "every listen address is loopback: nothing on the LAN could reach this node" };
  }
  try {
    networkInterfaces();
  } catch (err) {
    return {
      reason: "the network interface list cannot be read",
      error: (err as Error).message,
      hint:
        "grant sys networkInterfaces (and, under systemd, AF_NETLINK in RestrictAddressFamilies=), or pass --no-mdns",
    };
  }
  return undefined;
}

/** Most peers found over mDNS that a node dials at once. */
export const MAX_MDNS_DIALS = 4;
/** Most distinct peers a node dials because mDNS named them. */
export const MAX_MDNS_PEERS = 32;

/**
 * Dials the Plasm peers mDNS finds (libp2p only records them): their
 * non-loopback addresses, a few at a time, up to {@link MAX_MDNS_PEERS}.
 * mDNS is unauthenticated: a peer it names is authenticated by noise (its
 * peer id) and gets no trust from being found; jobs still go only to peers
 * whose capability record is signed by their own key (TM-24). Returns the
 * callback for {@link createPlasmP2p}'s `onMdnsPeer`; `p2p()` is the node
 * once it exists.
 */
export function mdnsDialer(p2p: () => P2p | undefined, logger?: Logger): (peer: MdnsPeer) => void {
  const dialled = new Set<string>(); // peers this dialer connected to
  const dialing = new Set<string>();
  return (peer) => {
    const node = p2p();
    const id = peer.id.toString();
    if (!node || id === node.peerId.toString() || dialing.has(id)) return;
    if (node.getPeers().some((p) => p.toString() === id)) return; // connected already
    // A peer that went away is dialled again when it is announced again.
    if (dialing.size >= MAX_MDNS_DIALS || (!dialled.has(id) && dialled.size >= MAX_MDNS_PEERS)) {
      return;
    }
    const addrs = peer.multiaddrs.map(String).filter((a) => !isLoopbackAddr(a));
    if (addrs.length === 0) return;
    dialing.add(id);
    (async () => {
      for (const a of addrs) {
        try {
          await node.dial(multiaddr(`${a}/p2p/${id}`), {
            signal: AbortSignal.timeout(DIAL_TIMEOUT_MS),
          });
          dialled.add(id);
          logger?.info("mdns_peer_connected", { peer: id, addr: a });
          return;
        } catch (err) {
          logger?.info("mdns_dial_failed", { peer: id, addr: a, error: (err as Error).message });
        }
      }
    })().finally(() => dialing.delete(id));
  };
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
