/**
 * Test helper run inside a network namespace: browses mDNS on one
 * interface and prints the instances as JSON; with `--fetch` it also
 * fetches each instance's TXT `mirror` and prints status and SHA-256.
 * Usage: mdns_query.ts IFACE_IP TIMEOUT_MS [--fetch]
 *
 * @module
 */
import { queryServices } from "../mdns/mod.ts";
import { sha256Hex } from "./fixtures.ts";

/** Longest a mirror fetch may take, in ms. */
const FETCH_TIMEOUT_MS = 5000;

if (import.meta.main) {
  const [iface, timeout, flag] = Deno.args;
  const services = await queryServices({ interfaceAddress: iface, timeoutMs: Number(timeout) });
  const fetched: Record<string, { status: number; sha256: string; bytes: string }> = {};
  if (flag === "--fetch") {
    for (const s of services) {
      const url = s.txt.mirror;
      if (!url) continue;
      try {
        const res = await fetch(url, {
          signal: AbortSignal.timeout(FETCH_TIMEOUT_MS),
          redirect: "manual",
        });
        const body = new Uint8Array(await res.arrayBuffer());
        fetched[url] = {
          status: res.status,
          sha256: await sha256Hex(body),
          bytes: new TextDecoder().decode(body),
        };
      } catch (err) {
        fetched[url] = { status: 0, sha256: "", bytes: String(err) };
      }
    }
  }
  console.log(JSON.stringify({ services, fetched }));
}
