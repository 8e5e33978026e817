/**
 * The bounded transport every network-facing step of Phase uses. Every
 * request has a deadline from connect to response headers, every body a
 * stall timeout, a minimum rate and a byte cap ({@link TransferLimits});
 * redirects are followed only within one origin, so a captive portal
 * cannot steer a download elsewhere. Failures are a {@link NetError} with
 * a literal `code` (`E_FETCH`, `E_TOO_LARGE`, `E_STALL`, `E_REDIRECT`,
 * `E_TOR`).
 *
 * - {@link fetchCapped}: a small document whole (a manifest, a record).
 * - {@link openRequest} + {@link readGuarded}: a large body chunk by chunk,
 *   optionally straight into the caller's buffers, with Range support.
 * - {@link rawHttpFetch} / {@link makeRawHttpFetch}: a `fetch` for bulk
 *   `http:` transfers that reads the socket into large buffers.
 * - {@link socksFetch} / {@link socksDialer}: every request through a
 *   SOCKS5 proxy, names resolved by the proxy (no local DNS query).
 * - {@link startTor}: a private Tor client whose state lives in RAM, for a
 *   private-mode boot; {@link checkTorrcFragment} checks extra options.
 *
 * @example Fetch a small document, capped at 64 KiB
 * ```ts
 * import { fetchCapped } from "./mod.ts";
 *
 * const server = Deno.serve(
 *   { hostname: "127.0.0.1", port: 0, onListen() {} },
 *   () => new Response("hello"),
 * );
 * const { bytes } = await fetchCapped(`http://127.0.0.1:${server.addr.port}/`, 64 * 1024);
 * if (new TextDecoder().decode(bytes) !== "hello") throw new Error("unexpected body");
 * await server.shutdown();
 * ```
 *
 * @example Refuse a body above the cap and a redirect to another origin
 * ```ts
 * import { fetchCapped, NetError } from "./mod.ts";
 *
 * const server = Deno.serve(
 *   { hostname: "127.0.0.1", port: 0, onListen() {} },
 *   (req) =>
 *     new URL(req.url).pathname === "/big"
 *       ? new Response(new Uint8Array(10_000))
 *       : Response.redirect("http://portal.example/login", 302),
 * );
 * const base = `http://127.0.0.1:${server.addr.port}`;
 * for (const [path, code] of [["/big", "E_TOO_LARGE"], ["/portal", "E_REDIRECT"]]) {
 *   try {
 *     await fetchCapped(base + path, 1024);
 *     throw new Error(`${path} must be refused`);
 *   } catch (err) {
 *     if (!(err instanceof NetError) || err.code !== code) throw err;
 *   }
 * }
 * await server.shutdown();
 * ```
 *
 * @module
 */
export { type NetCode, NetError } from "./errors.ts";
export type { Dialer, DirectReader, FetchFn } from "./types.ts";
export {
  DEFAULT_LIMITS,
  fetchCapped,
  type FetchCappedOptions,
  type FetchedDocument,
  httpUrlHint,
  openRequest,
  type OpenRequestOptions,
  type OpenResponse,
  readGuarded,
  type ReadGuardedOptions,
  type ReadResult,
  type RequestSpec,
  type TransferLimits,
} from "./http.ts";
export { makeRawHttpFetch, rawHttpFetch, type RawHttpOptions } from "./raw_http.ts";
export {
  parseSocksAddress,
  socksDialer,
  type SocksDialerOptions,
  socksFetch,
  type SocksProxy,
  TOR_LIMITS,
  TOR_PROBE_TIMEOUT_MS,
} from "./socks.ts";
export {
  checkTorrcFragment,
  DEFAULT_TOR_PATHS,
  MAX_TORRC_BYTES,
  startTor,
  type TorHandle,
  TorMissing,
  type TorOptions,
} from "./tor.ts";
