/**
 * Test fixtures for the client side (discover, fetch, transports): a real key and a real signed
 * release (sign/), and a real HTTP server on 127.0.0.1 that serves the
 * release tree with Range, or misbehaves on purpose.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { keygen, loadSigningKey, signRelease } from "../sign/mod.ts";
import { parseTrust, rawCid, type Trust } from "../verify/mod.ts";
import { tempDir } from "./fixtures.ts";

/** A signed release on disk. */
export interface Release {
  readonly dir: string;
  readonly root: string;
  readonly trustPath: string;
  readonly trust: Trust;
  readonly keyPath: string;
  readonly files: Map<string, Uint8Array>;
  readonly manifestBytes: Uint8Array;
  readonly manifestCid: string;
  hexOf(name: string): string;
}

/** Deterministic pseudo-random bytes (fast xorshift). */
export function pseudoRandom(n: number, seed = 1): Uint8Array {
  const out = new Uint8Array(n);
  const v = new Uint32Array(out.buffer, 0, Math.floor(n / 4));
  let x = seed >>> 0 || 1;
  for (let i = 0; i < v.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    v[i] = x >>> 0;
  }
  return out;
}

/** Signs a release with kernel/initramfs(/rootfs) of the given sizes. */
export async function makeRelease(
  opts: {
    sizes?: Record<string, number>;
    version?: string;
    dir?: string;
    now?: Date;
    expiresInMs?: number;
  } = {},
): Promise<Release> {
  const dir = opts.dir ?? await tempDir("release");
  const root = `${dir}/srv`;
  const keyDir = `${dir}/keys`;
  await keygen(keyDir, "release");
  const key = await loadSigningKey(`${keyDir}/release.pem`);
  const rel = `${root}/stable/amd64`;
  await Deno.mkdir(rel, { recursive: true });
  const sizes = opts.sizes ?? { kernel: 300_000, initramfs: 120_000 };
  const files = new Map<string, Uint8Array>();
  let seed = 7;
  for (const [name, size] of Object.entries(sizes)) {
    const b = pseudoRandom(size, seed++);
    files.set(name, b);
    await Deno.writeFile(`${rel}/${name}`, b);
  }
  await signRelease({
    root,
    channel: "stable",
    arch: "amd64",
    version: opts.version ?? "2026.11.20",
    expiresInMs: opts.expiresInMs ?? 30 * 86_400_000,
    now: opts.now ?? new Date(Date.now() - 3_600_000),
    cmdline: "console=ttyS0",
  }, key);
  const manifestBytes = await Deno.readFile(`${rel}/manifest.json`);
  const trustPath = `${keyDir}/trust.json`;
  return {
    dir,
    root,
    trustPath,
    trust: parseTrust(await Deno.readFile(trustPath)),
    keyPath: `${keyDir}/release.pem`,
    files,
    manifestBytes,
    manifestCid: rawCid(manifestBytes),
    hexOf: (name) => createHash("sha256").update(files.get(name)!).digest("hex"),
  };
}

/** How a test server misbehaves for artifact requests. */
export type Misbehaviour =
  | "none"
  | "extra-bytes" // correct bytes then more, Content-Length says so
  | "endless" // correct bytes then an endless chunked stream, no length
  | "wrong-bytes" // same length, one byte flipped
  | "stall" // half the bytes, then nothing, connection kept open
  | "drip" // a few bytes every 100 ms
  | "drop" // half the bytes, then the connection is cut
  | "redirect" // 302 to another origin
  | "ignore-range"; // answers 200 with the whole body to a Range request

/** A running test server. */
export interface TestServer {
  readonly url: string;
  readonly origin: string;
  readonly requests: { path: string; range: string | null }[];
  misbehave: Misbehaviour;
  /** Misbehave only for the first N artifact requests (then serve honestly); Infinity by default. */
  misbehaveCount: number;
  /** When > 0, honest answers are sent in 64 KiB chunks with this pause between them. */
  chunkDelayMs: number;
  close(): Promise<void>;
}

function notFound() {
  return new Response("not found\n", { status: 404 });
}

/** Serves `release` (the formats.md §3 subset a client uses) on 127.0.0.1. */
export function serveRelease(release: Release, misbehave: Misbehaviour = "none"): TestServer {
  const ac = new AbortController();
  const byHex = new Map<string, Uint8Array>();
  for (const name of release.files.keys()) byHex.set(release.hexOf(name), release.files.get(name)!);
  const requests: { path: string; range: string | null }[] = [];
  const timers = new Set<ReturnType<typeof setTimeout>>();
  const state = { misbehave, misbehaveCount: Infinity, chunkDelayMs: 0 };
  const handler = (req: Request): Response => {
    const path = new URL(req.url).pathname;
    const range = req.headers.get("range");
    requests.push({ path, range });
    if (path === "/health") return Response.json({ status: "serving" });
    if (path === "/stable/amd64/manifest.json" || path === "/manifest.json") {
      return new Response(release.manifestBytes as BodyInit, {
        headers: { "content-type": "application/json" },
      });
    }
    let body: Uint8Array | undefined;
    let m = /^\/stable\/amd64\/([a-z0-9._-]+)$/.exec(path);
    if (m && release.files.has(m[1])) body = release.files.get(m[1]);
    m = /^\/cas\/sha256\/([0-9a-f]{64})$/.exec(path);
    if (m) body = byHex.get(m[1]);
    if (path === `/ipfs/${release.manifestCid}`) body = release.manifestBytes;
    if (!body) return notFound();
    let mode = state.misbehave;
    if (state.misbehaveCount <= 0) mode = "none";
    else if (mode !== "none") state.misbehaveCount--;
    if (mode === "redirect") {
      return new Response(null, { status: 302, headers: { location: "http://127.0.0.2:9/login" } });
    }
    let start = 0;
    let end = body.length - 1;
    let status = 200;
    const headers = new Headers({
      "accept-ranges": "bytes",
      "content-type": "application/octet-stream",
    });
    const rm = range ? /^bytes=(\d+)-(\d*)$/.exec(range) : null;
    if (rm && mode !== "ignore-range") {
      start = Number(rm[1]);
      end = rm[2] ? Math.min(Number(rm[2]), body.length - 1) : body.length - 1;
      if (start >= body.length) return new Response(null, { status: 416 });
      status = 206;
      headers.set("content-range", `bytes ${start}-${end}/${body.length}`);
    }
    let slice = body.subarray(start, end + 1);
    if (mode === "wrong-bytes") {
      slice = slice.slice();
      slice[Math.floor(slice.length / 2)] ^= 0xff;
    }
    if (mode === "extra-bytes") {
      const more = new Uint8Array(slice.length + 65536);
      more.set(slice);
      headers.set("content-length", String(more.length));
      return new Response(more as BodyInit, { status, headers });
    }
    if (mode === "none" && state.chunkDelayMs > 0) {
      headers.set("content-length", String(slice.length));
      let off = 0;
      const delay = state.chunkDelayMs;
      return new Response(
        new ReadableStream<Uint8Array>({
          async pull(ctl) {
            if (off >= slice.length) return ctl.close();
            await new Promise((r) => setTimeout(r, delay));
            ctl.enqueue(slice.slice(off, off + 65536));
            off += 65536;
          },
        }),
        { status, headers },
      );
    }
    if (mode === "none" || mode === "wrong-bytes" || mode === "ignore-range") {
      headers.set("content-length", String(slice.length));
      return new Response(slice as BodyInit, { status, headers });
    }
    const half = slice.subarray(0, Math.floor(slice.length / 2));
    const stream = new ReadableStream<Uint8Array>({
      async start(ctl) {
        if (mode === "endless") {
          ctl.enqueue(slice);
          return;
        }
        if (mode === "drip") return;
        ctl.enqueue(half);
        if (mode === "drop") {
          await new Promise((r) => setTimeout(r, 20));
          ctl.error(new Error("dropped on purpose"));
        }
        // "stall": nothing more, ever (until the client gives up).
      },
      async pull(ctl) {
        if (mode === "endless") {
          ctl.enqueue(new Uint8Array(65536).fill(0x41));
          await new Promise((r) => setTimeout(r, 1));
        } else if (mode === "drip") {
          await new Promise<void>((r) => {
            const t = setTimeout(() => {
              timers.delete(t);
              r();
            }, 100);
            timers.add(t);
          });
          ctl.enqueue(new Uint8Array(4).fill(0x42));
        } else {
          await new Promise<void>(() => {}); // never resolves
        }
      },
    });
    if (mode !== "endless") headers.set("content-length", String(slice.length));
    return new Response(stream, { status, headers });
  };
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, signal: ac.signal, onListen() {} },
    handler,
  );
  const origin = `http://127.0.0.1:${server.addr.port}`;
  return {
    url: `${origin}/stable/amd64/manifest.json`,
    origin,
    requests,
    get misbehave() {
      return state.misbehave;
    },
    set misbehave(v) {
      state.misbehave = v;
    },
    get misbehaveCount() {
      return state.misbehaveCount;
    },
    set misbehaveCount(v) {
      state.misbehaveCount = v;
    },
    get chunkDelayMs() {
      return state.chunkDelayMs;
    },
    set chunkDelayMs(v) {
      state.chunkDelayMs = v;
    },
    async close() {
      for (const t of timers) clearTimeout(t);
      ac.abort();
      await server.shutdown().catch(() => {});
      await server.finished;
    },
  };
}

/** Signs a discovery record (formats.md §5) with the key at `keyPath`. */
export async function signRecord(
  keyPath: string,
  fields: {
    version: string;
    mirrors: string[];
    expires?: string;
    cid?: string;
    providers?: string[];
    /** The record's `trust_version` (formats.md §5); absent: none. */
    trustVersion?: number;
  },
): Promise<Uint8Array> {
  const { loadSigningKey } = await import("../sign/mod.ts");
  const { encodeBase64, signedBytes, signEd25519 } = await import("../verify/mod.ts");
  const key = await loadSigningKey(keyPath);
  const doc = {
    manifest_cid: fields.cid ??
      rawCid(new TextEncoder().encode(fields.version + fields.mirrors.join())),
    version: fields.version,
    expires_at: fields.expires ??
      new Date(Date.now() + 86_400_000).toISOString().replace(/\.\d+Z$/, "Z"),
    mirrors: fields.mirrors,
    providers: fields.providers ?? [],
    ...(fields.trustVersion !== undefined ? { trust_version: fields.trustVersion } : {}),
  };
  const sig = encodeBase64(signEd25519(key.key, signedBytes(doc)));
  return new TextEncoder().encode(
    JSON.stringify({
      ...doc,
      signatures: [{ keyid: key.keyid, public: encodeBase64(key.publicRaw), sig }],
    }),
  );
}
