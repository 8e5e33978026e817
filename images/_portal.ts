/**
 * A fake captive portal for the `captive` scenario of `deno task test:vm`
 * (TM-15): it advertises itself on mDNS as a Phase provider and answers
 * every HTTP request with a redirect to an HTML login page. Run inside the
 * scenario's network namespace: `deno run -P=test images/_portal.ts ADDR`.
 * Private to images/.
 *
 * @module
 */
import { MdnsResponder } from "../mdns/mod.ts";

/** How long the portal lives at most. */
const PORTAL_LIFETIME_MS = 10 * 60_000;

if (import.meta.main) {
  const address = Deno.args[0];
  if (!address) throw new Error("usage: _portal.ts ADDRESS");
  const login = `<!doctype html><html><body><form>Log in to the guest network</form></body></html>`;
  const server = Deno.serve({ hostname: address, port: 80, onListen() {} }, (req) => {
    const url = new URL(req.url);
    if (url.pathname === "/login") {
      return new Response(login, { headers: { "content-type": "text/html" } });
    }
    return new Response(null, { status: 302, headers: { location: `http://${address}/login` } });
  });
  const responder = new MdnsResponder({ interfaceAddress: address });
  await responder.start([{
    label: "portal-stable-amd64",
    host: "portal.local",
    port: 80,
    addresses: [address],
    txt: {
      arch: "amd64",
      channel: "stable",
      version: "2099.1.1",
      manifest_cid: "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku",
      mirror: `http://${address}/stable/amd64/manifest.json`,
    },
  }]);
  console.log("portal: ready");
  setTimeout(async () => {
    await responder.stop().catch(() => {});
    await server.shutdown();
    Deno.exit(0);
  }, PORTAL_LIFETIME_MS);
}
