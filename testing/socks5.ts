/**
 * A small SOCKS5 server on loopback for tests: it records every CONNECT
 * request (the address as the client sent it) and relays the bytes. Host
 * names are resolved only through the test's own `names` map, so a test can
 * show that a client sent a name instead of resolving it itself.
 *
 * @module
 */

/** One CONNECT request as received. */
export interface SocksRequest {
  /** 1 = IPv4, 3 = host name, 4 = IPv6. */
  readonly atyp: number;
  readonly host: string;
  readonly port: number;
  /** The RFC 1929 user name, when the client authenticated. */
  readonly user?: string;
}

/** How the test server misbehaves, when asked to. */
export type SocksMode = "relay" | "refuse" | "stall" | "not-socks";

/** A running test SOCKS5 server. */
export interface TestSocks {
  readonly port: number;
  readonly requests: SocksRequest[];
  /** Connections accepted, handshake or not. */
  readonly accepted: () => number;
  close(): Promise<void>;
}

async function readN(conn: Deno.Conn, n: number): Promise<Uint8Array> {
  const out = new Uint8Array(n);
  let off = 0;
  while (off < n) {
    const r = await conn.read(out.subarray(off));
    if (r === null) throw new Error("eof");
    off += r;
  }
  return out;
}

async function pipe(from: Deno.Conn, to: Deno.Conn): Promise<void> {
  const buf = new Uint8Array(64 * 1024);
  try {
    for (;;) {
      const n = await from.read(buf);
      if (n === null) break;
      let off = 0;
      while (off < n) off += await to.write(buf.subarray(off, n));
    }
  } catch { /* either side closed */ }
  try {
    to.closeWrite();
  } catch { /* closed */ }
}

/**
 * Starts the server. `names` maps host names to loopback ports
 * (`provider.phase.test` -> 8080); any name not in it is answered with
 * reply 4 (host unreachable), and every IP address is connected as given
 * (tests use only loopback).
 */
export function startTestSocks(
  o: { names?: Record<string, number>; mode?: SocksMode } = {},
): TestSocks {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const requests: SocksRequest[] = [];
  const open = new Set<Deno.Conn>();
  let accepted = 0;
  const handle = async (conn: Deno.Conn) => {
    open.add(conn);
    try {
      if (o.mode === "not-socks") {
        await conn.write(new TextEncoder().encode("HTTP/1.1 400 Bad Request\r\n\r\n"));
        return;
      }
      const [ver, nMethods] = await readN(conn, 2);
      if (ver !== 5) return;
      const methods = await readN(conn, nMethods);
      let user: string | undefined;
      if (methods.includes(2)) {
        await conn.write(new Uint8Array([5, 2]));
        const [, ulen] = await readN(conn, 2);
        user = new TextDecoder().decode(await readN(conn, ulen));
        const [plen] = await readN(conn, 1);
        await readN(conn, plen);
        await conn.write(new Uint8Array([1, 0]));
      } else await conn.write(new Uint8Array([5, 0]));
      if (o.mode === "stall") {
        await conn.read(new Uint8Array(1024));
        await new Promise(() => {}); // never answers; closed by the client or close()
      }
      const [, cmd, , atyp] = await readN(conn, 4);
      let host: string;
      if (atyp === 1) host = [...await readN(conn, 4)].join(".");
      else if (atyp === 3) {
        const [len] = await readN(conn, 1);
        host = new TextDecoder().decode(await readN(conn, len));
      } else {
        const b = await readN(conn, 16);
        host = Array.from({ length: 8 }, (_, i) => ((b[2 * i] << 8) | b[2 * i + 1]).toString(16))
          .join(":");
      }
      const pb = await readN(conn, 2);
      const port = (pb[0] << 8) | pb[1];
      requests.push({ atyp, host, port, user });
      const reply = (code: number) =>
        conn.write(new Uint8Array([5, code, 0, 1, 127, 0, 0, 1, 0, 0]));
      if (cmd !== 1) return void await reply(7);
      if (o.mode === "refuse") return void await reply(5);
      let target: Deno.Conn;
      try {
        if (atyp === 3) {
          const mapped = o.names?.[host];
          if (mapped === undefined) return void await reply(4);
          target = await Deno.connect({ hostname: "127.0.0.1", port: mapped });
        } else target = await Deno.connect({ hostname: host, port });
      } catch {
        return void await reply(5);
      }
      open.add(target);
      await reply(0);
      await Promise.all([pipe(conn, target), pipe(target, conn)]);
      open.delete(target);
      target.close();
    } catch {
      /* the client went away */
    } finally {
      open.delete(conn);
      try {
        conn.close();
      } catch { /* closed */ }
    }
  };
  const loop = (async () => {
    for await (const conn of listener) {
      accepted++;
      handle(conn);
    }
  })().catch(() => {});
  return {
    port: (listener.addr as Deno.NetAddr).port,
    requests,
    accepted: () => accepted,
    async close() {
      listener.close();
      for (const c of open) {
        try {
          c.close();
        } catch { /* closed */ }
      }
      await loop;
    },
  };
}
