/**
 * The WAN step's DHT lookup (private to client/): a short-lived libp2p
 * node in client mode, bootstrapped from the policy, that collects values
 * for `/phase/{channel}/{arch}/manifest` from several peers (p2p/mod.ts
 * lookupRecords). Nothing here is trusted: discover.ts keeps only values
 * the trust file signs (TM-08).
 *
 * @module
 */
import type { Logger } from "../core/mod.ts";
import type { PhaseNode } from "../p2p/mod.ts";

/**
 * libp2p and the DHT, loaded when a lookup runs: they are most of
 * phase-discover's bundle, and a boot whose command-line provider answers
 * (or a local-mode boot) never asks the DHT, so it never evaluates them
 * (issue 17: every module evaluated at a step's start costs under TCG).
 */
const p2p = () => import("../p2p/mod.ts");

/** Longest wait for the routing table to learn a peer after bootstrap, in milliseconds. */
export const DHT_SETTLE_MS = 1_500;
/** Time allowed to stop the node, in milliseconds. */
export const NODE_STOP_TIMEOUT_MS = 2_000;

/** A DHT lookup function for discover(), bootstrapped from `bootstrap`. */
export function dhtLookup(
  bootstrap: readonly string[],
  logger?: Logger,
): (key: string, timeoutMs: number) => Promise<Uint8Array[]> {
  return async (key, timeoutMs) => {
    const m = /^\/phase\/([^/]+)\/([^/]+)\/manifest$/.exec(key);
    if (!m) throw new Error(`not a Phase DHT key: ${key}`);
    const { createPhaseNode, lookupRecords } = await p2p();
    const node = await createPhaseNode({ listen: [], clientMode: true, bootstrap, logger });
    try {
      // Identify fills the routing table a moment after the dial: a lookup
      // before that would ask nobody. Bounded wait, then go anyway.
      const table =
        (node.services.dht as unknown as { routingTable?: { size: number } }).routingTable;
      const until = performance.now() + Math.min(DHT_SETTLE_MS, timeoutMs / 2);
      while ((table?.size ?? 1) === 0 && performance.now() < until) {
        await new Promise((r) => setTimeout(r, 25));
      }
      const found = await lookupRecords(node, m[1], m[2], { timeoutMs });
      logger?.info("dht_values", { key, values: found.length, peers: node.getPeers().length });
      return found.map((f) => f.bytes);
    } finally {
      await Promise.race([node.stop(), new Promise((r) => setTimeout(r, NODE_STOP_TIMEOUT_MS))])
        .catch(() => {});
    }
  };
}

/** Starts a client-mode node, waits (bounded) for its routing table, runs `fn`, stops it. */
async function withNode<T>(
  bootstrap: readonly string[],
  timeoutMs: number,
  logger: Logger | undefined,
  fn: (node: PhaseNode) => Promise<T>,
): Promise<T> {
  const { createPhaseNode } = await p2p();
  const node = await createPhaseNode({ listen: [], clientMode: true, bootstrap, logger });
  try {
    const table = (node.services.dht as unknown as { routingTable?: { size: number } })
      .routingTable;
    const until = performance.now() + Math.min(DHT_SETTLE_MS, timeoutMs / 2);
    while ((table?.size ?? 1) === 0 && performance.now() < until) {
      await new Promise((r) => setTimeout(r, 25));
    }
    return await fn(node);
  } finally {
    await Promise.race([node.stop(), new Promise((r) => setTimeout(r, NODE_STOP_TIMEOUT_MS))])
      .catch(() => {});
  }
}

/**
 * A provider lookup for discover(): HTTP base URLs of the peers that
 * announced themselves as providers of a manifest CID (re-serving nodes).
 * Hints only (TM-07, TM-08).
 */
export function dhtProviderLookup(
  bootstrap: readonly string[],
  logger?: Logger,
): (manifestCid: string, timeoutMs: number) => Promise<string[]> {
  return (manifestCid, timeoutMs) =>
    withNode(bootstrap, timeoutMs, logger, async (node) => {
      const { findManifestProviders } = await p2p();
      const found = await findManifestProviders(node, manifestCid, { timeoutMs });
      logger?.info("dht_http_providers", { manifest_cid: manifestCid, found: found.length });
      return found.map((f) => f.url);
    });
}
