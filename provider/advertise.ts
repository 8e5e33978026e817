/**
 * Glue between the provider and its advertisement layers: builds mDNS
 * instances (formats.md §4) from the catalog and runs one responder per
 * interface address; the DHT layer lives in p2p/.
 *
 * @module
 */
import type { Logger } from "../cli/log.ts";
import { dnsLabel, MdnsResponder, type ServiceInstance } from "../mdns/mod.ts";
import type { Catalog } from "./catalog.ts";
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
    },
  }));
}

/** Factory of the mDNS advertiser for {@link startProvider}. */
export function mdnsAdvertiser(opts: { port?: number } = {}) {
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
