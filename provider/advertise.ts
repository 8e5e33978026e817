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
  bootstrap,
  createPhaseNode,
  dhtRoutingPeers,
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

/** Longest the first publication waits for a peer in the DHT routing table, in ms. */
export const FIRST_PUBLISH_WAIT_MS = 10_000;
/**
 * First pause before publishing again what reached no DHT peer, in ms;
 * it doubles after each attempt.
 */
export const PUBLISH_RETRY_FIRST_MS = 1_000;
/** Most attempts after one that reached no DHT peer (1+2+4+8+16+32 s with the defaults). */
export const MAX_PUBLISH_RETRIES = 6;

/** Options of the DHT advertiser. */
export interface DhtAdvertOptions {
  /** Multiaddrs to dial first (`--bootstrap`). */
  readonly bootstrap?: readonly string[];
  /** TCP port of the libp2p node (0: any). */
  readonly port?: number;
  /** Republish interval, in ms (formats.md §5: 12 h). */
  readonly republishMs?: number;
  /** Longest the first publication waits for a routing-table peer, in ms (default {@link FIRST_PUBLISH_WAIT_MS}). */
  readonly firstPublishWaitMs?: number;
  /** First pause before publishing again what reached no peer, in ms (default {@link PUBLISH_RETRY_FIRST_MS}). */
  readonly publishRetryFirstMs?: number;
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
    const stopped = new AbortController();
    const sleep = (ms: number) =>
      new Promise<void>((ok) => {
        const t = setTimeout(ok, ms);
        stopped.signal.addEventListener("abort", () => (clearTimeout(t), ok()), { once: true });
      });
    /** Publishes what is new (all with `force`); true when every publication reached a peer. */
    const publish = async (force: boolean): Promise<boolean> => {
      let reachedAll = true;
      for (const r of catalog.releases.values()) {
        // Every provider that serves a manifest provides its CID: the one
        // way a re-serving node (no key, not in the signed mirrors) is found.
        if (force || !provided.has(r.manifestCid)) {
          if (await provideManifest(node, r.manifestCid, { logger: ctx.logger }) > 0) {
            provided.add(r.manifestCid);
          } else reachedAll = false;
        }
        if (!r.record) continue;
        const k = `${r.channel}/${r.arch}`;
        const prev = published.get(k);
        if (
          !force && prev && prev.length === r.record.length &&
          prev.every((b, i) => b === r.record![i])
        ) continue;
        const p = await publishRecord(node, r.channel, r.arch, r.record, { logger: ctx.logger });
        if (p.accepted > 0 && p.provided > 0) published.set(k, r.record);
        else reachedAll = false;
      }
      return reachedAll;
    };
    /**
     * A publication that reached no peer is made again, with a growing
     * pause: the bootstrap peer may not be in the routing table yet (it
     * enters once identify shows it speaks the DHT). Left alone, the
     * records would live only on this node until the next republish, and a
     * client asking the DHT would find nothing (measured: `dht_published
     * accepted=0` in [vm self-host-dht]). A node with no bootstrap peer has
     * no one to publish to: it does not retry.
     */
    const publishUntilReached = async (force: boolean) => {
      let reached = await publish(force);
      for (
        let i = 0, wait = opts.publishRetryFirstMs ?? PUBLISH_RETRY_FIRST_MS;
        !reached && opts.bootstrap?.length && i < MAX_PUBLISH_RETRIES &&
        !stopped.signal.aborted;
        i++, wait *= 2
      ) {
        ctx.logger.info("dht_publish_retry", {
          attempt: i + 1,
          in_ms: wait,
          routing_peers: dhtRoutingPeers(node),
        });
        await sleep(wait);
        if (stopped.signal.aborted) break;
        // The bootstrap peer was down when this node started: dial it again.
        if (dhtRoutingPeers(node) === 0) await bootstrap(node, opts.bootstrap, ctx.logger);
        reached = await publish(false);
      }
    };
    // The first publication runs in the background, once a peer is in the
    // DHT routing table (bounded): a DHT may take long to answer.
    let work = (async () => {
      const end = Date.now() + (opts.firstPublishWaitMs ?? FIRST_PUBLISH_WAIT_MS);
      while (opts.bootstrap?.length && dhtRoutingPeers(node) === 0 && Date.now() < end) {
        await sleep(100);
      }
      await publishUntilReached(true);
    })().catch((err) => ctx.logger.warn("dht_publish_failed", { error: String(err) }));
    const timer = setInterval(() => {
      work = work.then(() => publishUntilReached(true)).catch(() => {});
    }, opts.republishMs ?? REPUBLISH_INTERVAL_MS);
    ctx.logger.info("dht_started", {
      peer: node.peerId.toString(),
      addrs: node.getMultiaddrs().map(String),
    });
    return {
      kind: "dht",
      update: (c) => {
        catalog = c;
        work = work.then(() => publishUntilReached(false)).catch(() => {});
        return Promise.resolve();
      },
      stop: async () => {
        clearInterval(timer);
        state = "stopped";
        stopped.abort();
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
