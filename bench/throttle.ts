/**
 * BENCH ONLY, unsafe for anything else: a TCP proxy to a loopback port
 * whose downstream bytes (all its connections together) are limited to a
 * rate, with a token bucket, and counted. The fetch benchmark puts one in
 * front of each provider; the boot-storm benchmark in front of the origin.
 *
 * @module
 */

/** How a throttling proxy shapes the stream. */
export interface ThrottleOptions {
  /** Largest burst, as the bytes the rate allows in this many milliseconds. */
  readonly burstMs: number;
  /** Bytes read from upstream at a time. */
  readonly bufferBytes: number;
}

/** A running proxy. */
export interface ThrottlingProxy {
  readonly port: number;
  readonly url: string;
  /** Downstream bytes sent so far. */
  bytes(): number;
  close(): void;
}

/** A proxy to `127.0.0.1:targetPort` sending at most `rate` bytes/s downstream in total. */
export function throttlingProxy(
  targetPort: number,
  rate: number,
  opts: ThrottleOptions,
): ThrottlingProxy {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  let tokens = 0;
  let last = performance.now();
  let bytes = 0;
  const take = async (n: number) => {
    for (;;) {
      const now = performance.now();
      tokens = Math.min(rate * opts.burstMs / 1000, tokens + ((now - last) / 1000) * rate);
      last = now;
      if (tokens >= n) {
        tokens -= n;
        return;
      }
      await new Promise((r) => setTimeout(r, Math.max(1, ((n - tokens) / rate) * 1000)));
    }
  };
  const conns = new Set<Deno.Conn>();
  (async () => {
    for await (const c of listener) {
      conns.add(c);
      (async () => {
        let up: Deno.Conn | undefined;
        try {
          up = await Deno.connect({ hostname: "127.0.0.1", port: targetPort });
          conns.add(up);
          const u = up;
          const toUp = c.readable.pipeTo(u.writable).catch(() => {});
          const buf = new Uint8Array(opts.bufferBytes);
          const w = c.writable.getWriter();
          for (;;) {
            const n = await u.read(buf);
            if (n === null) break;
            await take(n);
            bytes += n;
            await w.write(buf.slice(0, n));
          }
          await w.close().catch(() => {});
          await toUp;
        } catch {
          /* connection closed */
        } finally {
          for (const x of [c, up]) {
            try {
              x?.close();
            } catch { /* closed */ }
          }
        }
      })();
    }
  })().catch(() => {});
  const port = (listener.addr as Deno.NetAddr).port;
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    bytes: () => bytes,
    close() {
      listener.close();
      for (const c of conns) {
        try {
          c.close();
        } catch { /* closed */ }
      }
    },
  };
}
