/**
 * A loopback Kademlia DHT of real libp2p nodes for tests (p2p/mod.ts).
 */
import {
  createPhaseNode,
  dhtRoutingPeers,
  type PhaseNode,
  type PhaseNodeOptions,
} from "../p2p/mod.ts";
import { waitFor } from "./assert.ts";

/** Longest a loopback DHT may take to form, in ms. */
export const DHT_FORM_TIMEOUT_MS = 10_000;

/**
 * Starts one node per entry of `opts`, each dialling every node started
 * before it, and resolves once every routing table holds all the others.
 *
 * The mesh is built by dials on purpose. When every node dialled only the
 * first, the others met through each node's DHT self-query (1 s after start,
 * the next 5 min later), and on a loaded CI host a table was still short
 * after 10 s. On a failure the nodes already started are stopped.
 */
export async function loopbackDht(opts: readonly PhaseNodeOptions[]): Promise<PhaseNode[]> {
  const nodes: PhaseNode[] = [];
  try {
    for (const o of opts) {
      const bootstrap = [...(o.bootstrap ?? []), ...nodes.flatMap(multiaddrsOf)];
      nodes.push(await createPhaseNode({ ...o, bootstrap }));
    }
    await waitFor(
      () => nodes.every((x) => dhtRoutingPeers(x) >= nodes.length - 1),
      DHT_FORM_TIMEOUT_MS,
      "every DHT routing table to hold every other node",
    );
    return nodes;
  } catch (err) {
    for (const n of nodes) await n.stop();
    throw err;
  }
}

/**
 * Starts a node that dials `opts.bootstrap` and resolves once its routing
 * table holds each peer it dialled (identify has run), so a query or a
 * publication right after it starts from them, not from an empty table.
 */
export async function joinDht(opts: PhaseNodeOptions): Promise<PhaseNode> {
  const node = await createPhaseNode(opts);
  const peers = new Set((opts.bootstrap ?? []).map((a) => a.split("/p2p/")[1])).size;
  try {
    await waitFor(
      () => dhtRoutingPeers(node) >= peers,
      DHT_FORM_TIMEOUT_MS,
      `the DHT routing table to hold its ${peers} bootstrap peer(s)`,
    );
    return node;
  } catch (err) {
    await node.stop();
    throw err;
  }
}

/** A node's listening multiaddrs as strings (what `bootstrap` takes). */
export function multiaddrsOf(node: PhaseNode): string[] {
  return node.getMultiaddrs().map(String);
}
