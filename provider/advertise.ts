/**
 * Glue between the provider and its advertisement layers: builds mDNS
 * instances (formats.md §4) from the catalog and runs one responder per
 * interface address; the DHT layer lives in p2p/.
 *
 * @module
 */
import type { Logger } from "../core/mod.ts";
import { dnsLabel, MdnsResponder, type ServiceInstance } from "../mdns/mod.ts";
import {
  createPhaseNode,
  httpMultiaddr,
  loadPeerKey,
  type PhaseNode,
  provideManifest,
  publishRecord,
  REPUBLISH_INTERVAL_MS,
} from "../p2p/mod.ts";
import { type Catalog, latestTrustVersion } from "./catalog.ts";
import type { AdvertContext, Advertiser } from "./server.ts";

/** IPv4 addresses mDNS answers on for a bind address. */
export function mdnsAddresses(host: string, logger?: Logger): string[] {
  if (host === "0.0.0.0") {
    try {
      return Deno.networkInterfaces()
        .filter((i) => i.family === "IPv4" && !i.address.startsWith("127."))
        .map((i) => i.address);
    } catch (err) {
      logger?.warn("mdns_interfaces_unavailable", { error: String(err) });
      return [];
    }
  }
  return /^\d+\.\d+\.\d+\.\d+$/.test(host) ? [host] : [];
}

/** The instances one interface advertises for a catalog. */
export function mdnsInstances(
  name: string,
  address: string,
  port: number,
  catalog: Catalog,
): ServiceInstance[] {
  const host = `${dnsLabel(name)}.local`;
  const trustVersion = latestTrustVersion(catalog);
  return [...catalog.releases.values()].map((r) => ({
    label: dnsLabel(`${name}-${r.channel}-${r.arch}`),
    host,
    port,
    addresses: [address],
    txt: {
      arch: r.arch,
      channel: r.channel,
      version: r.manifest.version,
      manifest_cid: r.manifestCid,
      mirror: `http://${address}:${port}/${r.channel}/${r.arch}/manifest.json`,
      // formats.md §4: a hint of how far a device can walk its trust chain here.
      ...(trustVersion !== undefined ? { trust_version: String(trustVersion) } : {}),
    },
  }));
}

/**
 * Factory of the mDNS advertiser for {@link ProviderOptions.mdns}: a
 * responder on the IPv4 address the provider binds (on every non-loopback
 * IPv4 interface when it binds `0.0.0.0`) that announces each release as
 * `<name>-<channel>-<arch>._phase-image._tcp.local`, answers queries, and
 * says goodbye on stop. `opts.port` is the UDP port to answer on (default
 * 5353; tests use another).
 */
export function mdnsAdvertiser(
  opts: { port?: number } = {},
): (ctx: AdvertContext) => Promise<Advertiser> {
  return async (ctx: AdvertContext): Promise<Advertiser> => {
    const responders: { address: string; r: MdnsResponder }[] = [];
    let state = "running";
    for (const address of mdnsAddresses(ctx.host, ctx.logger)) {
      const r = new MdnsResponder({
        interfaceAddress: address,
        logger: ctx.logger,
        port: opts.port,
      });
      try {
        await r.start(mdnsInstances(ctx.name, address, ctx.port, ctx.catalog));
        responders.push({ address, r });
        ctx.logger.info("mdns_announced", { address, instances: r.instances.map((i) => i.label) });
      } catch (err) {
        await r.stop().catch(() => {});
        ctx.logger.warn("mdns_unavailable", { address, error: (err as Error).message });
      }
    }
    if (responders.length === 0) state = "unavailable";
    return {
      kind: "mdns",
      update: async (catalog) => {
        for (const { address, r } of responders) {
          await r.update(mdnsInstances(ctx.name, address, ctx.port, catalog));
        }
      },
      stop: async () => {
        for (const { r } of responders) await r.stop();
        state = "stopped";
      },
      state: () => ({
        enabled: true,
        state,
        instances: responders.flatMap(({ r }) =>
          r.instances.map((i) => `${i.label} (${i.addresses.join(",")})`)
        ),
      }),
    };
  };
}

/** Longest the first publication waits for a bootstrap peer, in ms. */
export const FIRST_PUBLISH_WAIT_MS = 10_000;

/** Options of the DHT advertiser. */
export interface DhtAdvertOptions {
  /** Multiaddrs to dial first (`--bootstrap`). */
  readonly bootstrap?: readonly string[];
  /** TCP port of the libp2p node (0: any). */
  readonly port?: number;
  /** Republish interval, in ms (formats.md §5: 12 h). */
  readonly republishMs?: number;
}

/**
 * Factory of the DHT advertiser: a libp2p node with a stable peer id
 * (`<state>/p2p.key`) that publishes each release's signed record and a
 * provider record, again on every catalog change and every `republishMs`.
 */
export function dhtAdvertiser(
  opts: DhtAdvertOptions = {},
): (ctx: AdvertContext) => Promise<Advertiser> {
  return async (ctx: AdvertContext): Promise<Advertiser> => {
    const listenHost = /^\d+\.\d+\.\d+\.\d+$/.test(ctx.host) ? ctx.host : "127.0.0.1";
    // Issue 12 §2: the HTTP URL of this provider travels as an `/http`
    // multiaddr in its signed peer record (identify), so a client that
    // finds it as a provider of a manifest CID knows where to ask.
    const httpHosts = ctx.host === "0.0.0.0" ? mdnsAddresses(ctx.host, ctx.logger) : [listenHost];
    const node: PhaseNode = await createPhaseNode({
      privateKey: await loadPeerKey(`${ctx.state}/p2p.key`),
      listen: [`/ip4/${listenHost}/tcp/${opts.port ?? 0}`],
      trust: ctx.trust,
      bootstrap: opts.bootstrap,
      logger: ctx.logger,
      announce: httpHosts.map((h) => httpMultiaddr(h, ctx.port)),
    });
    let state = "running";
    let catalog = ctx.catalog;
    const published = new Map<string, Uint8Array>();
    const provided = new Set<string>();
    const publish = async (force: boolean) => {
      for (const r of catalog.releases.values()) {
        // Every provider that serves a manifest provides its CID: the one
        // way a re-serving node (no key, not in the signed mirrors) is found.
        if (force || !provided.has(r.manifestCid)) {
          await provideManifest(node, r.manifestCid, { logger: ctx.logger });
          provided.add(r.manifestCid);
        }
        if (!r.record) continue;
        const k = `${r.channel}/${r.arch}`;
        const prev = published.get(k);
        if (
          !force && prev && prev.length === r.record.length &&
          prev.every((b, i) => b === r.record![i])
        ) continue;
        await publishRecord(node, r.channel, r.arch, r.record, { logger: ctx.logger });
        published.set(k, r.record);
      }
    };
    // The first publication runs in the background, once a bootstrap peer
    // answered (bounded): a DHT may take long to answer.
    let work = (async () => {
      const end = Date.now() + FIRST_PUBLISH_WAIT_MS;
      while (opts.bootstrap?.length && node.getPeers().length === 0 && Date.now() < end) {
        await new Promise((r) => setTimeout(r, 100));
      }
      await publish(true);
    })().catch((err) => ctx.logger.warn("dht_publish_failed", { error: String(err) }));
    const timer = setInterval(() => {
      work = work.then(() => publish(true)).catch(() => {});
    }, opts.republishMs ?? REPUBLISH_INTERVAL_MS);
    ctx.logger.info("dht_started", {
      peer: node.peerId.toString(),
      addrs: node.getMultiaddrs().map(String),
    });
    return {
      kind: "dht",
      update: (c) => {
        catalog = c;
        work = work.then(() => publish(false)).catch(() => {});
        return Promise.resolve();
      },
      stop: async () => {
        clearInterval(timer);
        state = "stopped";
        await node.stop();
      },
      state: () => ({
        enabled: true,
        state,
        peerId: node.peerId.toString(),
        addresses: node.getMultiaddrs().map(String),
        peers: node.getPeers().length,
      }),
    };
  };
}
