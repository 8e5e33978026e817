/**
 * Test helper run inside a network namespace: joins the mDNS group on one
 * interface and prints every response record it hears (name, type, ttl)
 * as JSON lines until SIGTERM. Usage: mdns_listen.ts IFACE_IP
 *
 * @module
 */
import dgram from "node:dgram";
import dnsPacket from "dns-packet";
import { MDNS_GROUP, MDNS_PORT } from "../mdns/mod.ts";

if (import.meta.main) {
  const [iface] = Deno.args;
  const sock = dgram.createSocket({ type: "udp4", reuseAddr: true });
  sock.on("message", (msg) => {
    try {
      const p = dnsPacket.decode(msg);
      if (p.type !== "response") return;
      for (const a of [...(p.answers ?? []), ...(p.additionals ?? [])]) {
        console.log(JSON.stringify({ name: a.name, type: a.type, ttl: "ttl" in a ? a.ttl : null }));
      }
    } catch { /* not DNS */ }
  });
  await new Promise<void>((r) => sock.bind(MDNS_PORT, "0.0.0.0", () => r()));
  sock.addMembership(MDNS_GROUP, iface);
  console.log(JSON.stringify({ ready: true }));
  await new Promise<void>((resolve) => Deno.addSignalListener("SIGTERM", () => resolve()));
  sock.close();
  Deno.exit(0);
}
