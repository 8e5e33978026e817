import { assert, assertEquals, readUntil, tempDir, writeRelease } from "../testing/mod.ts";
import { taskArgv } from "../testing/serve.ts";
import { memoryLogger } from "../core/mod.ts";
import { startProvider } from "./server.ts";

/** Descriptor limit of the provider under test. */
const FD_LIMIT = 64;
/** Partial-header connections held: more than the limit allows. */
const PARTIAL_CONNECTIONS = 100;
/** The header deadline the test gives the provider, in ms. */
const TEST_HEADER_TIMEOUT_MS = 2_000;
/** Longest the test waits for the provider's banner or an answer, in ms. */
const WAIT_MS = 20_000;

async function readBanner(child: Deno.ChildProcess): Promise<string> {
  const { seen } = await readUntil(
    child.stdout,
    (s) => s.includes("phase-serve: ready\n") || undefined,
    WAIT_MS,
    { then: "release" },
  );
  return seen;
}

/** Resolves with the ms until the server closed `conn` (EOF or reset), or -1 after `maxMs`. */
async function closedAfter(conn: Deno.Conn, t0: number, maxMs: number): Promise<number> {
  const buf = new Uint8Array(512);
  const timer = setTimeout(() => {
    try {
      conn.close();
    } catch { /* closed */ }
  }, maxMs);
  try {
    for (;;) {
      const n = await conn.read(buf);
      if (n === null) break;
    }
  } catch (err) {
    if (err instanceof Deno.errors.BadResource) return -1; // closed by us: the deadline did not hold
  } finally {
    clearTimeout(timer);
  }
  try {
    conn.close();
  } catch { /* closed */ }
  return performance.now() - t0;
}

Deno.test("TM-18 provider exhaustion: partial-header connections beyond the descriptor limit are shed and cut by the header deadline; the provider survives EMFILE and answers", async () => {
  const dir = await tempDir("tm18-fds");
  await writeRelease(`${dir}/root`, "stable", "amd64", { kernel: 4096 });
  const argv = [
    ...taskArgv("serve"),
    "--root",
    `${dir}/root`,
    "--state",
    `${dir}/state`,
    "--port",
    "0",
    "--no-mdns",
    "--no-dht",
    "--no-watch",
    "--header-timeout",
    `${TEST_HEADER_TIMEOUT_MS / 1000}s`,
  ];
  const quoted = argv.map((a) => `'${a.replaceAll("'", "'\\''")}'`).join(" ");
  const child = new Deno.Command("sh", {
    args: ["-c", `ulimit -n ${FD_LIMIT} && exec deno ${quoted}`],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const stderr = new Response(child.stderr).text();
  const held: Deno.Conn[] = [];
  try {
    const out = await readBanner(child);
    const url = /on (http:\/\/\S+)/.exec(out)?.[1];
    assert(url !== undefined, `provider did not start: ${out}`);
    const port = Number(new URL(url).port);
    // More partial-header connections than the provider has descriptors:
    // the kernel queues what it cannot accept.
    const t0 = performance.now();
    const partial = new TextEncoder().encode(
      "GET /stable/amd64/manifest.json HTTP/1.1\r\nHost: x\r\n",
    );
    for (let i = 0; i < PARTIAL_CONNECTIONS; i++) {
      const c = await Deno.connect({ hostname: "127.0.0.1", port });
      await c.write(partial);
      held.push(c);
    }
    const closes = held.map((c) => closedAfter(c, t0, WAIT_MS));
    // A normal request is answered while they are held.
    const res = await fetch(`${url}/stable/amd64/manifest.json`, {
      signal: AbortSignal.timeout(WAIT_MS),
    });
    assertEquals(res.status, 200);
    await res.arrayBuffer();
    const times = await Promise.all(closes);
    // Every partial connection was closed by the provider (shed or by the
    // header deadline), none left open until the test gave up.
    assertEquals(times.filter((t) => t < 0).length, 0, "partial connections left open");
    assert(
      Math.max(...times) < TEST_HEADER_TIMEOUT_MS * 4 + 5_000,
      `slowest close ${Math.max(...times)} ms`,
    );
    // Still alive and serving after all of it.
    const again = await fetch(`${url}/health`, { signal: AbortSignal.timeout(WAIT_MS) });
    assertEquals(again.status, 200);
    await again.arrayBuffer();
  } finally {
    for (const c of held) {
      try {
        c.close();
      } catch { /* closed */ }
    }
    try {
      child.kill("SIGTERM");
    } catch { /* gone */ }
    await child.status;
    await child.stdout.cancel().catch(() => {});
  }
  const log = await stderr;
  // The descriptor limit was really reached, logged, and survived.
  assert(/"event":"accept_failed"[^\n]*Too many open files/.test(log), "no EMFILE logged");
  assert(
    /"event":"connection_closed"[^\n]*"header_timeout"/.test(log) ||
      /"event":"connection_closed"[^\n]*"fd_exhaustion"/.test(log),
    "no connection cut logged",
  );
  await Deno.remove(dir, { recursive: true });
});

Deno.test("TM-18 provider exhaustion: idle keep-alive and drip-fed header connections are closed by their deadlines; the per-client cap sheds the oldest idle one", async () => {
  const dir = await tempDir("tm18-idle");
  await writeRelease(`${dir}/root`, "stable", "amd64", { kernel: 4096 });
  const p = await startProvider({
    root: `${dir}/root`,
    state: `${dir}/state`,
    port: 0,
    logger: memoryLogger(),
    watch: false,
    headerTimeoutMs: 400,
    idleTimeoutMs: 400,
    maxConnectionsPerClient: 3,
  });
  // The cap's part runs against deadlines it cannot reach, so that only the
  // cap can close a connection there, however slow the host.
  const capLog = memoryLogger();
  const q = await startProvider({
    root: `${dir}/root`,
    state: `${dir}/state-cap`,
    port: 0,
    logger: capLog,
    watch: false,
    headerTimeoutMs: WAIT_MS,
    idleTimeoutMs: WAIT_MS,
    maxConnectionsPerClient: 3,
  });
  const enc = new TextEncoder();
  const conns: Deno.Conn[] = [];
  const connect = async (port = p.port) => {
    const c = await Deno.connect({ hostname: "127.0.0.1", port });
    conns.push(c);
    return c;
  };
  /** Asks `c` for /health; true when the answer's first read is a 200. */
  const healthy = async (c: Deno.Conn) => {
    await c.write(enc.encode("GET /health HTTP/1.1\r\nHost: x\r\n\r\n"));
    const buf = new Uint8Array(4096);
    const n = await c.read(buf);
    return n !== null && new TextDecoder().decode(buf.subarray(0, n)).startsWith("HTTP/1.1 200");
  };
  try {
    // Idle keep-alive: one request answered, then nothing.
    const idle = await connect();
    assert(await healthy(idle), "the idle connection's one request is served");
    const t0 = performance.now();
    const idleClosed = closedAfter(idle, t0, 5_000);
    // Drip-fed headers: a byte every 100 ms never completes them.
    const drip = await connect();
    let dripping = true;
    const dripper = (async () => {
      for (
        const b of enc.encode(
          "GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        )
      ) {
        if (!dripping) break;
        try {
          await drip.write(new Uint8Array([b]));
        } catch {
          break;
        }
        await new Promise((r) => setTimeout(r, 100));
      }
    })();
    const dripClosed = closedAfter(drip, t0, 5_000);
    const [ti, td] = await Promise.all([idleClosed, dripClosed]);
    dripping = false;
    await dripper;
    assert(ti >= 0 && ti < 3_000, `idle connection closed after ${ti} ms`);
    assert(td >= 0 && td < 3_000, `drip-fed connection closed after ${td} ms`);
    // Per-client cap 3: a fourth connection sheds the oldest idle one, and
    // only that one.
    const first = await connect(q.port);
    const firstClosed = closedAfter(first, performance.now(), 5_000);
    const second = await connect(q.port);
    const third = await connect(q.port);
    const fourth = await connect(q.port);
    assert(await healthy(fourth), "the fourth connection is served");
    const tf = await firstClosed;
    assert(tf >= 0, "the oldest idle connection was closed");
    const reasons = capLog.entries.filter((e) => e.event === "connection_closed")
      .map((e) => e.fields.reason);
    assertEquals(reasons, ["client_connection_cap"]);
    assert(await healthy(second), "the second connection is still served");
    assert(await healthy(third), "the third connection is still served");
  } finally {
    for (const c of conns) {
      try {
        c.close();
      } catch { /* closed */ }
    }
    await p.close();
    await q.close();
    await Deno.remove(dir, { recursive: true });
  }
});
