/**
 * net/: the bounded transport every network-facing step uses. Every
 * request has a deadline from connect to response headers, every body a
 * stall timeout, a minimum rate and a byte cap; redirects stay within one
 * origin. A raw HTTP/1.1 client reads large bodies straight into the
 * caller's buffers; a SOCKS5 dialer and a Tor launcher keep a private-mode
 * boot's traffic on Tor.
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
 * @module
 */
export { type NetCode, NetError } from "./errors.ts";
export type { Dialer, DirectReader, DirectResponse, FetchFn } from "./types.ts";
export {
  DEFAULT_LIMITS,
  fetchCapped,
  HEADERS_TIMEOUT_MS,
  MAX_REDIRECTS,
  MIN_RATE_BYTES_PER_S,
  MIN_RATE_WINDOW_MS,
  openRequest,
  type OpenResponse,
  readGuarded,
  type RequestSpec,
  STALL_TIMEOUT_MS,
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
  torrc,
} from "./tor.ts";
