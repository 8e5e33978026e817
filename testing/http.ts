/**
 * Raw HTTP/1.1 requests over TCP for tests: `fetch` and `new Request()`
 * normalise `..` and percent-encodings away, so traversal tests must send
 * the request target byte for byte.
 *
 * @module
 */

/** Longest a raw request may take, in ms. */
export const RAW_REQUEST_TIMEOUT_MS = 5_000;
/** Largest raw answer read, in bytes. */
export const MAX_RAW_RESPONSE_BYTES = 4 * 1024 * 1024;

/** A parsed raw answer. */
export interface RawResponse {
  readonly status: number;
  readonly headers: Headers;
  readonly body: Uint8Array;
}

/** Sends `METHOD target HTTP/1.1` exactly as given and reads the answer. */
export async function rawRequest(
  port: number,
  target: string,
  opts: { method?: string; headers?: Record<string, string>; hostname?: string; body?: string } =
    {},
): Promise<RawResponse> {
  const conn = await Deno.connect({ hostname: opts.hostname ?? "127.0.0.1", port });
  const timer = setTimeout(() => conn.close(), RAW_REQUEST_TIMEOUT_MS);
  try {
    const head = [`${opts.method ?? "GET"} ${target} HTTP/1.1`, "Host: test", "Connection: close"];
    for (const [k, v] of Object.entries(opts.headers ?? {})) head.push(`${k}: ${v}`);
    await conn.write(new TextEncoder().encode(head.join("\r\n") + "\r\n\r\n" + (opts.body ?? "")));
    const chunks: Uint8Array[] = [];
    let total = 0;
    const buf = new Uint8Array(65536);
    for (;;) {
      const n = await conn.read(buf).catch(() => null);
      if (n === null) break;
      chunks.push(buf.slice(0, n));
      total += n;
      if (total > MAX_RAW_RESPONSE_BYTES) throw new Error("raw answer too large");
    }
    const all = new Uint8Array(total);
    let off = 0;
    for (const c of chunks) {
      all.set(c, off);
      off += c.length;
    }
    const text = new TextDecoder("latin1").decode(all);
    const end = text.indexOf("\r\n\r\n");
    if (end < 0) throw new Error(`no HTTP answer: ${JSON.stringify(text.slice(0, 200))}`);
    const [statusLine, ...lines] = text.slice(0, end).split("\r\n");
    const headers = new Headers();
    for (const l of lines) {
      const i = l.indexOf(":");
      headers.append(l.slice(0, i).trim(), l.slice(i + 1).trim());
    }
    return { status: Number(statusLine.split(" ")[1]), headers, body: all.slice(end + 4) };
  } finally {
    clearTimeout(timer);
    try {
      conn.close();
    } catch { /* closed by the timer */ }
  }
}
