/**
 * A SOCKS5 client (RFC 1928, CONNECT only) as a `Dialer` for the raw HTTP
 * client, so that a private-mode boot can reach its provider through Tor.
 *
 * The destination is always sent as a host name (address type 3), never
 * resolved here: name resolution happens at the proxy (for Tor: at the exit
 * relay), so no DNS query about the provider leaves this machine (TM-13).
 * Literal IP addresses are sent as addresses. For `https:` the TLS session
 * is started over the tunnel, so the proxy sees only ciphertext.
 *
 * Every step is bounded: the whole handshake by `SOCKS_HANDSHAKE_TIMEOUT_MS`
 * and every reply by its fixed size (TM-06).
 *
 * @module
 */
import { NetError } from "./errors.ts";
import { connectUntil } from "./_connect.ts";
import { DEFAULT_LIMITS, type TransferLimits } from "./http.ts";
import { makeRawHttpFetch } from "./raw_http.ts";
import type { Dialer, FetchFn } from "./types.ts";

/** Longest time from the TCP connect to the proxy until the tunnel is up, in ms. */
export const SOCKS_HANDSHAKE_TIMEOUT_MS = 60_000;
/**
 * Over Tor, time from request to response headers, in ms: a stream waits
 * while Tor builds (and, after a failure, rebuilds) its circuit, which
 * takes seconds where a direct connection takes milliseconds. Still
 * bounded (TM-06).
 */
export const TOR_HEADERS_TIMEOUT_MS = 60_000;
/** Over Tor, longest wait for the next body bytes, in ms (TM-06). */
export const TOR_STALL_TIMEOUT_MS = 60_000;
/**
 * The transfer limits of a fetch over Tor: the defaults, with 60 s to the
 * response headers and 60 s for the next body bytes (a circuit takes
 * seconds to build).
 */
export const TOR_LIMITS: TransferLimits = Object.freeze({
  ...DEFAULT_LIMITS,
  headersTimeoutMs: TOR_HEADERS_TIMEOUT_MS,
  stallTimeoutMs: TOR_STALL_TIMEOUT_MS,
});
/** Over Tor, deadline of discovery's health probe of a candidate, in ms. */
export const TOR_PROBE_TIMEOUT_MS = 30_000;
/** Longest host name SOCKS5 can carry, in bytes (one length octet). */
const MAX_SOCKS_HOST_BYTES = 255;

/** Where the proxy listens. */
export interface SocksProxy {
  /** Host name or IP address of the proxy. */
  readonly hostname: string;
  /** TCP port of the proxy. */
  readonly port: number;
}

/** Options of `socksDialer`. */
export interface SocksDialerOptions {
  /** The SOCKS5 proxy every connection goes through. */
  readonly proxy: SocksProxy;
  /** Deadline from connect to tunnel up, in milliseconds (default 60 000). */
  readonly handshakeTimeoutMs?: number;
  /**
   * Sent as the SOCKS5 user name (with an empty password). Tor keeps
   * streams with different credentials on different circuits
   * (IsolateSOCKSAuth), so one boot's connections are not linkable to
   * another program's.
   */
  readonly isolation?: string;
}

/** Reply codes of RFC 1928 §6 and what they mean to a user. */
const REPLIES: Readonly<Record<number, string>> = {
  1: "general SOCKS server failure",
  2: "connection not allowed by the proxy's rules",
  3: "network unreachable",
  4: "host unreachable",
  5: "connection refused by the destination",
  6: "TTL expired (the proxy could not reach the destination in time)",
  7: "command not supported",
  8: "address type not supported",
};

/** Parses `host:port` (IPv6 in brackets) into a proxy address. */
export function parseSocksAddress(text: string): SocksProxy {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:\s\[\]]+)):(\d{1,5})$/.exec(text);
  const port = m ? Number(m[3]) : NaN;
  if (!m || !(port > 0 && port < 65536)) {
    throw new NetError("E_POLICY", `bad SOCKS proxy address '${text}'`, {
      hint: "give host:port, for example 127.0.0.1:9050",
    });
  }
  return { hostname: m[1] ?? m[2], port };
}

function isIPv4(host: string): boolean {
  return /^\d{1,3}(\.\d{1,3}){3}$/.test(host) && host.split(".").every((o) => Number(o) < 256);
}

function ipv6Bytes(host: string): Uint8Array | undefined {
  if (!host.includes(":")) return undefined;
  const [head, tail = ""] = host.split("::");
  if (host.split("::").length > 2) return undefined;
  const parse = (s: string) => (s ? s.split(":") : []);
  const h = parse(head);
  const t = parse(tail);
  const fill = host.includes("::") ? 8 - h.length - t.length : 0;
  const groups = [...h, ...Array(fill).fill("0"), ...t];
  if (groups.length !== 8 || !groups.every((g) => /^[0-9a-fA-F]{1,4}$/.test(g))) return undefined;
  const out = new Uint8Array(16);
  groups.forEach((g, i) => {
    const v = parseInt(g, 16);
    out[2 * i] = v >> 8;
    out[2 * i + 1] = v & 0xff;
  });
  return out;
}

/** The CONNECT request for `host:port` (RFC 1928 §4). */
export function connectRequest(host: string, port: number): Uint8Array {
  let addr: number[];
  if (isIPv4(host)) addr = [1, ...host.split(".").map(Number)];
  else {
    const v6 = ipv6Bytes(host);
    if (v6) addr = [4, ...v6];
    else {
      const name = new TextEncoder().encode(host);
      if (name.length === 0 || name.length > MAX_SOCKS_HOST_BYTES) {
        throw new NetError("E_FETCH", `host name '${host.slice(0, 40)}' cannot go over SOCKS5`);
      }
      // TM-13: the name goes to the proxy as is; it is never resolved here.
      addr = [3, name.length, ...name];
    }
  }
  return new Uint8Array([5, 1, 0, ...addr, port >> 8, port & 0xff]);
}

/** The two calls the handshake makes on its connection (a `Deno.Conn` has them). */
export type SocksStream = Pick<Deno.Conn, "read" | "write">;

async function readExactly(conn: SocksStream, n: number): Promise<Uint8Array> {
  const out = new Uint8Array(n);
  let off = 0;
  while (off < n) {
    const r = await conn.read(out.subarray(off));
    if (r === null) throw new NetError("E_FETCH", "the SOCKS proxy closed the connection");
    off += r;
  }
  return out;
}

async function writeAll(conn: SocksStream, b: Uint8Array): Promise<void> {
  let off = 0;
  while (off < b.length) off += await conn.write(b.subarray(off));
}

/**
 * The SOCKS5 client handshake on an open connection: method choice,
 * optional user name (isolation), CONNECT, and the proxy's reply, which it
 * reads to its end and no further. Throws `NetError` (E_FETCH) on any reply
 * it does not accept. Exported for the fuzzer (fuzz/targets.ts).
 */
export async function socksHandshake(
  conn: SocksStream,
  host: string,
  port: number,
  isolation: string | undefined,
): Promise<void> {
  const user = isolation === undefined ? undefined : new TextEncoder().encode(isolation);
  if (user && (user.length === 0 || user.length > 255)) {
    throw new NetError("E_FETCH", "SOCKS isolation token must be 1-255 bytes");
  }
  // Offer exactly one method: no authentication, or user name/password
  // (RFC 1929) when an isolation token is given.
  await writeAll(conn, new Uint8Array([5, 1, user ? 2 : 0]));
  const choice = await readExactly(conn, 2);
  if (choice[0] !== 5) throw new NetError("E_FETCH", "the proxy does not speak SOCKS5");
  if (choice[1] !== (user ? 2 : 0)) {
    throw new NetError(
      "E_FETCH",
      `the SOCKS proxy refused the offered authentication (method ${choice[1]})`,
    );
  }
  if (user) {
    await writeAll(conn, new Uint8Array([1, user.length, ...user, 0]));
    const auth = await readExactly(conn, 2);
    if (auth[1] !== 0) throw new NetError("E_FETCH", "the SOCKS proxy refused the user name");
  }
  await writeAll(conn, connectRequest(host, port));
  const head = await readExactly(conn, 4);
  if (head[0] !== 5) throw new NetError("E_FETCH", "bad SOCKS5 reply");
  if (head[1] !== 0) {
    throw new NetError(
      "E_FETCH",
      `the SOCKS proxy could not connect to ${host}:${port}: ${
        REPLIES[head[1]] ?? `reply ${head[1]}`
      }`,
    );
  }
  // The bound address, which a CONNECT does not need: read and drop it.
  const atyp = head[3];
  const len = atyp === 1 ? 4 : atyp === 4 ? 16 : atyp === 3 ? (await readExactly(conn, 1))[0] : -1;
  if (len < 0) throw new NetError("E_FETCH", `bad SOCKS5 address type ${atyp}`);
  await readExactly(conn, len + 2);
}

/**
 * A `Dialer` that opens every connection through the SOCKS5 proxy `o.proxy`
 * and starts TLS over the tunnel for `https:`. It never connects anywhere
 * but the proxy: when the proxy is down, the request fails (TM-13).
 */
export function socksDialer(o: SocksDialerOptions): Dialer {
  const timeoutMs = o.handshakeTimeoutMs ?? SOCKS_HANDSHAKE_TIMEOUT_MS;
  return async (url, signal) => {
    const https = url.protocol === "https:";
    const host = url.hostname.replace(/^\[|\]$/g, "");
    const port = Number(url.port || (https ? 443 : 80));
    let conn: Deno.TcpConn;
    try {
      // TM-06: reaching the proxy counts against the caller's deadline.
      conn = await connectUntil(
        Deno.connect({ hostname: o.proxy.hostname, port: o.proxy.port }),
        signal,
      );
    } catch (err) {
      if (signal?.aborted) throw signal.reason;
      throw new NetError(
        "E_FETCH",
        `cannot reach the SOCKS proxy ${o.proxy.hostname}:${o.proxy.port}: ${
          (err as Error).message
        }`,
        { cause: err, hint: "is tor running? nothing is sent around the proxy" },
      );
    }
    let timer: ReturnType<typeof setTimeout> | undefined;
    // The abort, the handshake deadline and the failure path may each close
    // the connection, in any order (a loaded machine runs an overdue timer in
    // the same turn as the abort): only the first close acts (TM-06).
    let closed = false;
    const closeOnce = () => {
      if (closed) return;
      closed = true;
      try {
        conn.close();
      } catch { /* closed by the runtime already */ }
    };
    const onAbort = closeOnce;
    signal?.addEventListener("abort", onAbort, { once: true });
    try {
      let timedOut = false;
      timer = setTimeout(() => {
        timedOut = true;
        closeOnce();
      }, timeoutMs);
      try {
        await socksHandshake(conn, host, port, o.isolation);
      } catch (err) {
        // The caller's abort came first when both happened: it is the cause.
        if (signal?.aborted) throw signal.reason;
        if (timedOut) {
          throw new NetError(
            "E_STALL",
            `the SOCKS proxy did not open a tunnel to ${host}:${port} within ${timeoutMs} ms`,
            { cause: err },
          );
        }
        throw err;
      }
      clearTimeout(timer);
      timer = undefined;
      if (!https) return conn;
      return await Deno.startTls(conn, { hostname: host });
    } catch (err) {
      closeOnce();
      throw err;
    } finally {
      if (timer !== undefined) clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
    }
  };
}

/**
 * A `FetchFn` whose every request goes through the SOCKS5 proxy at
 * `proxy` (see `socksDialer` and `makeRawHttpFetch`): what discover and
 * fetch use over Tor.
 */
export function socksFetch(proxy: SocksProxy): FetchFn {
  return makeRawHttpFetch({ dial: socksDialer({ proxy }) });
}
