/**
 * Test helper run inside a network namespace: an mDNS responder for the
 * instances given as JSON, until SIGTERM (then goodbye).
 * Usage: mdns_respond.ts IFACE_IP INSTANCES_JSON
 *
 * @module
 */
import { MdnsResponder } from "../mdns/mod.ts";

if (import.meta.main) {
  const [iface, json] = Deno.args;
  const r = new MdnsResponder({ interfaceAddress: iface });
  await r.start(JSON.parse(json));
  console.log("ready");
  await new Promise<void>((resolve) => Deno.addSignalListener("SIGTERM", () => resolve()));
  await r.stop();
  console.log(JSON.stringify({ answered: r.answered, dropped: r.dropped }));
  Deno.exit(0);
}
