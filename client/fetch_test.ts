import { memoryLogger } from "../core/mod.ts";
import { rawCidFromDigest, VerifyError } from "../verify/mod.ts";
import { auditCache, cacheLayout } from "./cache.ts";
import { ClientError } from "./errors.ts";
import { fetchFromCandidates, fetchRelease, type FetchReleaseOptions } from "./fetch.ts";
import { DEFAULT_LIMITS } from "../net/mod.ts";
import {
  assert,
  assertEquals,
  assertRejectsCode,
  makeRelease,
  type Misbehaviour,
  serveRelease,
  tempDir,
} from "../testing/mod.ts";

const FAST = {
  ...DEFAULT_LIMITS,
  headersTimeoutMs: 2_000,
  stallTimeoutMs: 400,
  minRateWindowMs: 1_000,
  minRateBytesPerS: 4096,
};

async function fileSize(path: string) {
  return (await Deno.stat(path)).size;
}

async function withRelease(
  fn: (ctx: { rel: Awaited<ReturnType<typeof makeRelease>>; cache: string }) => Promise<void>,
  sizes?: Record<string, number>,
) {
  const rel = await makeRelease({ sizes });
  const cache = `${rel.dir}/cache`;
  try {
    await fn({ rel, cache });
  } finally {
    await Deno.remove(rel.dir, { recursive: true });
  }
}

function opts(
  base: Partial<FetchReleaseOptions> & Pick<FetchReleaseOptions, "trust" | "cacheDir">,
): FetchReleaseOptions {
  return { limits: FAST, ...base };
}

Deno.test("fetch: verified release into cas/, floor recorded, cache hit re-hashed", async () => {
  await withRelease(async ({ rel, cache }) => {
    const srv = serveRelease(rel);
    try {
      const r = await fetchRelease(
        opts({ manifestUrl: srv.url, trust: rel.trust, cacheDir: cache }),
      );
      assertEquals(Object.keys(r.artifacts).sort(), ["initramfs", "kernel"]);
      for (const [name, a] of Object.entries(r.artifacts)) {
        assertEquals(a.path, `${cache}/cas/sha256/${rel.hexOf(name)}`);
        assertEquals(await Deno.readFile(a.path), rel.files.get(name));
        assertEquals(a.cached, false);
      }
      assertEquals(await auditCache(cacheLayout(cache)), []);
      const floor = JSON.parse(await Deno.readTextFile(`${cache}/state/floor.json`));
      assertEquals(floor["stable/amd64"], "2026.11.20");
      // The manifest was requested before any artifact (verify first).
      assertEquals(srv.requests[0].path, "/stable/amd64/manifest.json");
      const before = srv.requests.length;
      const again = await fetchRelease(
        opts({ manifestUrl: srv.url, trust: rel.trust, cacheDir: cache }),
      );
      assertEquals(again.artifacts.kernel.cached, true);
      // The manifest, and record.json (kept when it verifies: serve --from-cache re-serves it).
      assertEquals(srv.requests.slice(before).map((r) => r.path), [
        "/stable/amd64/manifest.json",
        "/stable/amd64/record.json",
      ]);
      // A cached file that rotted is detected by the re-hash and fetched again.
      const k = again.artifacts.kernel.path;
      const f = await Deno.open(k, { write: true });
      await f.write(new Uint8Array([0, 1, 2, 3]));
      f.close();
      const third = await fetchRelease(
        opts({ manifestUrl: srv.url, trust: rel.trust, cacheDir: cache }),
      );
      assertEquals(third.artifacts.kernel.cached, false);
      assertEquals(await Deno.readFile(k), rel.files.get("kernel"));
    } finally {
      await srv.close();
    }
  });
});

Deno.test("fetch: an artifact whose signed digest the machine already holds (--have) is not requested nor reported; another digest changes nothing", async () => {
  await withRelease(async ({ rel, cache }) => {
    const srv = serveRelease(rel);
    try {
      const log = memoryLogger();
      const held = `sha256:${rel.hexOf("initramfs")}`;
      const r = await fetchRelease(
        opts({
          manifestUrl: srv.url,
          trust: rel.trust,
          cacheDir: cache,
          have: [held],
          logger: log,
        }),
      );
      assertEquals(Object.keys(r.artifacts), ["kernel"]);
      const paths = srv.requests.map((q) => q.path);
      assert(!paths.some((p) => p.includes(rel.hexOf("initramfs"))), paths.join(" "));
      assert(paths.some((p) => p.includes(rel.hexOf("kernel"))), paths.join(" "));
      assert(
        log.entries.some((e) => e.event === "artifact_held" && e.fields.digest === held),
        JSON.stringify(log.entries),
      );
      await Deno.remove(cache, { recursive: true });
      // A digest the manifest does not name: everything is fetched.
      const other = await fetchRelease(
        opts({
          manifestUrl: srv.url,
          trust: rel.trust,
          cacheDir: cache,
          have: [`sha256:${"0".repeat(64)}`],
        }),
      );
      assertEquals(Object.keys(other.artifacts).sort(), ["initramfs", "kernel"]);
    } finally {
      await srv.close();
    }
  });
});

Deno.test("fetch: a manifest that does not verify stops before any artifact request", async () => {
  await withRelease(async ({ rel, cache }) => {
    const other = await makeRelease();
    const srv = serveRelease(rel);
    try {
      const err = await assertRejectsCode(
        fetchRelease(opts({ manifestUrl: srv.url, trust: other.trust, cacheDir: cache })),
        VerifyError,
        "E_SIGNATURE",
      );
      assert(err.message.includes("0 valid trusted signature"));
      assertEquals(srv.requests.map((r) => r.path), ["/stable/amd64/manifest.json"]);
      await assertRejectsCode(
        fetchRelease(
          opts({ manifestUrl: srv.url, trust: rel.trust, cacheDir: cache, minVersion: "2027.1" }),
        ),
        VerifyError,
        "E_ROLLBACK",
      );
    } finally {
      await srv.close();
      await Deno.remove(other.dir, { recursive: true });
    }
  });
});

Deno.test("TM-02 rollback: the floor recorded by a fetch refuses an older release later", async () => {
  const dir = await tempDir();
  try {
    const newer = await makeRelease({ version: "2026.11.21", dir: `${dir}/new` });
    const cache = `${dir}/cache`;
    const srv = serveRelease(newer);
    await fetchRelease(opts({ manifestUrl: srv.url, trust: newer.trust, cacheDir: cache }));
    await srv.close();
    // Same key signs an older release: the floor (not min_version) refuses it.
    const olderRoot = `${dir}/old`;
    await Deno.mkdir(olderRoot, { recursive: true });
    const { signRelease, loadSigningKey } = await import("../sign/mod.ts");
    await Deno.mkdir(`${olderRoot}/stable/amd64`, { recursive: true });
    for (const [n, b] of newer.files) await Deno.writeFile(`${olderRoot}/stable/amd64/${n}`, b);
    await signRelease({
      root: olderRoot,
      channel: "stable",
      arch: "amd64",
      version: "2026.11.01",
      expiresInMs: 86_400_000,
      now: new Date(Date.now() - 1000),
    }, await loadSigningKey(newer.keyPath));
    const ac = new AbortController();
    const bytes = await Deno.readFile(`${olderRoot}/stable/amd64/manifest.json`);
    const s = Deno.serve(
      { hostname: "127.0.0.1", port: 0, signal: ac.signal, onListen() {} },
      () => new Response(bytes),
    );
    try {
      await assertRejectsCode(
        fetchRelease(
          opts({
            manifestUrl: `http://127.0.0.1:${s.addr.port}/stable/amd64/manifest.json`,
            trust: newer.trust,
            cacheDir: cache,
          }),
        ),
        VerifyError,
        "E_ROLLBACK",
      );
    } finally {
      ac.abort();
      await s.finished;
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

async function misbehavingThenMirror(
  mode: Misbehaviour,
  check: (log: ReturnType<typeof memoryLogger>) => void,
) {
  await withRelease(async ({ rel, cache }) => {
    const bad = serveRelease(rel, mode);
    const good = serveRelease(rel);
    const logger = memoryLogger();
    try {
      const t0 = performance.now();
      const r = await fetchRelease(opts({
        manifestUrl: bad.url,
        mirrors: [good.url],
        trust: rel.trust,
        cacheDir: cache,
        logger,
        parallel: false,
      }));
      assert(performance.now() - t0 < 15_000, "bounded in time");
      for (const [name, a] of Object.entries(r.artifacts)) {
        assertEquals(await fileSize(a.path), rel.files.get(name)!.length);
        assertEquals(await Deno.readFile(a.path), rel.files.get(name));
      }
      assertEquals(await auditCache(cacheLayout(cache)), []);
      check(logger);
    } finally {
      await bad.close();
      await good.close();
    }
  });
}

const events = (log: ReturnType<typeof memoryLogger>) => log.entries.map((e) => e.event);

Deno.test("TM-05 endless data: extra bytes announced by Content-Length are refused, the mirror serves", async () => {
  await misbehavingThenMirror(
    "extra-bytes",
    (log) => assert(events(log).includes("oversize_refused"), events(log).join()),
  );
});

Deno.test("TM-05 endless data: an endless body is cut at size bytes; nothing beyond is written", async () => {
  await withRelease(async ({ rel, cache }) => {
    const srv = serveRelease(rel, "endless");
    const logger = memoryLogger();
    try {
      const r = await fetchRelease(
        opts({ manifestUrl: srv.url, trust: rel.trust, cacheDir: cache, logger, parallel: false }),
      );
      // The first `size` bytes are right: accepted exactly, the rest never read.
      for (const [name, a] of Object.entries(r.artifacts)) {
        assertEquals(await fileSize(a.path), rel.files.get(name)!.length);
      }
      assert(events(logger).includes("extra_bytes_refused"));
      assertEquals(
        [...Deno.readDirSync(`${cache}/partial`)].filter((e) => !e.name.endsWith(".lock")).length,
        0,
      );
    } finally {
      await srv.close();
    }
  });
});

Deno.test("TM-01 tampering: wrong bytes never enter cas/; the honest mirror is used", async () => {
  await misbehavingThenMirror(
    "wrong-bytes",
    (log) => assert(events(log).includes("digest_mismatch")),
  );
});

Deno.test("TM-06 slow retrieval: a stalled provider is abandoned after the stall timeout, resumed elsewhere", async () => {
  await misbehavingThenMirror("stall", (log) => {
    assert(
      log.entries.some((e) =>
        e.event === "source_failed" && String(e.fields.error).includes("TM-06")
      ),
    );
    assert(events(log).includes("resume") || log.entries.some((e) => e.event === "source_failed"));
  });
});

Deno.test("TM-06 slow retrieval: a drip below the minimum rate is abandoned", async () => {
  await misbehavingThenMirror("drip", (log) => {
    assert(
      log.entries.some((e) =>
        e.event === "source_failed" && /below the \d+ B\/s minimum/.test(String(e.fields.error))
      ),
    );
  });
});

Deno.test("fetch: a connection dropped halfway resumes by Range at the next source", async () => {
  await withRelease(async ({ rel, cache }) => {
    const bad = serveRelease(rel, "drop");
    const good = serveRelease(rel);
    try {
      await fetchRelease(
        opts({
          manifestUrl: bad.url,
          mirrors: [good.url],
          trust: rel.trust,
          cacheDir: cache,
          parallel: false,
        }),
      );
      const ranged = good.requests.filter((r) => r.range !== null && r.range !== "bytes=0-");
      assert(
        ranged.length >= 1,
        `the mirror was asked for the rest only: ${JSON.stringify(good.requests)}`,
      );
    } finally {
      await bad.close();
      await good.close();
    }
  });
});

Deno.test("fetch: a server that ignores Range restarts the artifact from byte 0, correctly", async () => {
  await withRelease(async ({ rel, cache }) => {
    const bad = serveRelease(rel, "drop");
    const noRange = serveRelease(rel, "ignore-range");
    try {
      const r = await fetchRelease(
        opts({
          manifestUrl: bad.url,
          mirrors: [noRange.url],
          trust: rel.trust,
          cacheDir: cache,
          parallel: false,
        }),
      );
      assertEquals(await Deno.readFile(r.artifacts.kernel.path), rel.files.get("kernel"));
    } finally {
      await bad.close();
      await noRange.close();
    }
  });
});

Deno.test("TM-15 captive portal and redirects: a redirect to another origin is refused and reported", async () => {
  await withRelease(async ({ rel, cache }) => {
    const portal = serveRelease(rel, "redirect");
    const good = serveRelease(rel);
    const logger = memoryLogger();
    try {
      await fetchRelease(
        opts({
          manifestUrl: portal.url,
          mirrors: [good.url],
          trust: rel.trust,
          cacheDir: cache,
          logger,
          parallel: false,
        }),
      );
      assert(
        log(logger).some((e) => e.event === "redirect_refused" && e.fields.threat === "TM-15"),
      );
      // Alone, the redirecting source fails the fetch with E_FETCH after refusing.
      const cache2 = `${rel.dir}/cache2`;
      await assertRejectsCode(
        fetchRelease(
          opts({
            manifestUrl: good.url,
            providers: [],
            trust: rel.trust,
            cacheDir: cache2,
            parallel: false,
            fetchFn: redirectArtifacts(portal.origin),
          }),
        ),
        ClientError,
        "E_FETCH",
      );
    } finally {
      await portal.close();
      await good.close();
    }
  });
});

function log(l: ReturnType<typeof memoryLogger>) {
  return l.entries;
}

/** A fetch that sends every artifact request to the redirecting server (manifest from the real one). */
function redirectArtifacts(portalOrigin: string) {
  return (input: string | URL, init?: RequestInit) => {
    const u = new URL(input);
    if (u.pathname.endsWith("manifest.json")) return fetch(u, init);
    return fetch(portalOrigin + u.pathname + u.search, init);
  };
}

Deno.test("fetch: parallel ranged download from several providers, exact bytes, all contribute", async () => {
  await withRelease(async ({ rel, cache }) => {
    const a = serveRelease(rel);
    const b = serveRelease(rel);
    const c = serveRelease(rel);
    try {
      const r = await fetchRelease(opts({
        manifestUrl: a.url,
        mirrors: [b.url, c.url],
        trust: rel.trust,
        cacheDir: cache,
        segmentBytes: 64 * 1024,
        parallelMinBytes: 128 * 1024,
      }));
      assertEquals(await Deno.readFile(r.artifacts.kernel.path), rel.files.get("kernel"));
      assertEquals(r.artifacts.kernel.sources.length, 3);
      for (const s of [a, b, c]) {
        assert(s.requests.some((q) => q.range && /^bytes=\d+-\d+$/.test(q.range)));
      }
    } finally {
      await a.close();
      await b.close();
      await c.close();
    }
  }, { kernel: 1_000_000, initramfs: 50_000 });
});

Deno.test("fetch: parallel download survives a provider that drops and one that lies", async () => {
  await withRelease(async ({ rel, cache }) => {
    const a = serveRelease(rel);
    const b = serveRelease(rel, "drop");
    const c = serveRelease(rel, "wrong-bytes");
    const logger = memoryLogger();
    try {
      const r = await fetchRelease(opts({
        manifestUrl: a.url,
        mirrors: [b.url, c.url],
        trust: rel.trust,
        cacheDir: cache,
        logger,
        segmentBytes: 64 * 1024,
        parallelMinBytes: 128 * 1024,
      }));
      assertEquals(await Deno.readFile(r.artifacts.kernel.path), rel.files.get("kernel"));
      assertEquals(await auditCache(cacheLayout(cache)), []);
    } finally {
      await a.close();
      await b.close();
      await c.close();
    }
  }, { kernel: 1_000_000, initramfs: 50_000 });
});

Deno.test("fetch: IPFS fallback by CID when HTTP sources fail; a gateway's bytes are checked against the CID", async () => {
  await withRelease(async ({ rel, cache }) => {
    // The "gateway" answers /ipfs/<cid>?format=raw and nothing else.
    const byCid = new Map<string, Uint8Array>();
    const { rawCid } = await import("../verify/mod.ts");
    for (const b of rel.files.values()) byCid.set(rawCid(b), b);
    byCid.set(rel.manifestCid, rel.manifestBytes);
    let lie = false;
    const ac = new AbortController();
    const gw = Deno.serve(
      { hostname: "127.0.0.1", port: 0, signal: ac.signal, onListen() {} },
      (req) => {
        const u = new URL(req.url);
        const m = /^\/ipfs\/([a-z2-7]+)$/.exec(u.pathname);
        const b = m && u.searchParams.get("format") === "raw" ? byCid.get(m[1]) : undefined;
        if (!b) return new Response("no", { status: 404 });
        const out = lie ? b.map((x) => x ^ 1) : b;
        return new Response(out as BodyInit, {
          headers: { "content-type": "application/vnd.ipld.raw" },
        });
      },
    );
    const gateway = `http://127.0.0.1:${gw.addr.port}/`;
    try {
      const r = await fetchRelease(
        opts({
          manifestCid: rel.manifestCid,
          gateways: [gateway],
          trust: rel.trust,
          cacheDir: cache,
        }),
      );
      assertEquals(await Deno.readFile(r.artifacts.kernel.path), rel.files.get("kernel"));
      assert(r.manifestSource.includes(`/ipfs/${rel.manifestCid}`));
      lie = true;
      await assertRejectsCode(
        fetchRelease(
          opts({
            manifestCid: rel.manifestCid,
            gateways: [gateway],
            trust: rel.trust,
            cacheDir: `${rel.dir}/c2`,
          }),
        ),
        VerifyError,
        "E_DIGEST",
      );
    } finally {
      ac.abort();
      await gw.finished;
    }
  });
});

Deno.test("fetch: two fetchers on one cache at once: one download, both verified, cas/ clean", async () => {
  await withRelease(async ({ rel, cache }) => {
    const srv = serveRelease(rel);
    srv.chunkDelayMs = 2;
    try {
      const [a, b] = await Promise.all([
        fetchRelease(
          opts({ manifestUrl: srv.url, trust: rel.trust, cacheDir: cache, parallel: false }),
        ),
        fetchRelease(
          opts({ manifestUrl: srv.url, trust: rel.trust, cacheDir: cache, parallel: false }),
        ),
      ]);
      assertEquals(a.artifacts.kernel.path, b.artifacts.kernel.path);
      assertEquals(await Deno.readFile(a.artifacts.kernel.path), rel.files.get("kernel"));
      // Each artifact crossed the wire once: the second fetcher waited and found it cached.
      const artifactRequests = srv.requests.filter((r) =>
        !r.path.endsWith("manifest.json") && !r.path.endsWith("record.json")
      );
      assertEquals(artifactRequests.length, 2, JSON.stringify(artifactRequests));
      assertEquals([a.artifacts.kernel.cached, b.artifacts.kernel.cached].sort(), [false, true]);
      assertEquals(await auditCache(cacheLayout(cache)), []);
    } finally {
      await srv.close();
    }
  }, { kernel: 2_000_000, initramfs: 500_000 });
});

Deno.test("fetch: a mirror without Range support leaves the parallel phase; the download completes", async () => {
  await withRelease(async ({ rel, cache }) => {
    const a = serveRelease(rel, "ignore-range");
    const b = serveRelease(rel);
    try {
      const r = await fetchRelease(opts({
        manifestUrl: a.url,
        mirrors: [b.url],
        trust: rel.trust,
        cacheDir: cache,
        segmentBytes: 64 * 1024,
        parallelMinBytes: 128 * 1024,
      }));
      assertEquals(await Deno.readFile(r.artifacts.kernel.path), rel.files.get("kernel"));
      assertEquals(await auditCache(cacheLayout(cache)), []);
    } finally {
      await a.close();
      await b.close();
    }
  }, { kernel: 1_000_000, initramfs: 50_000 });
});

Deno.test("TM-04 mix-and-match: an --artifact name such as 'constructor' is not found on Object.prototype (E_SCHEMA, no request)", async () => {
  await withRelease(async ({ rel, cache }) => {
    const srv = serveRelease(rel);
    try {
      for (const name of ["constructor", "toString"]) {
        const err = await assertRejectsCode(
          fetchRelease(
            opts({ manifestUrl: srv.url, trust: rel.trust, cacheDir: cache, artifacts: [name] }),
          ),
          VerifyError,
          "E_SCHEMA",
        );
        assert(err.message.includes(`manifest has no artifact '${name}'`), err.message);
      }
      assert(srv.requests.every((r) => r.path.endsWith("/manifest.json")));
    } finally {
      await srv.close();
    }
  });
});

/**
 * A rogue provider: serves the genuine signed manifest, then for every
 * artifact request 1 MB of junk and a cut connection.
 */
function rogueProvider(manifest: Uint8Array) {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const enc = new TextEncoder();
  const junk = new Uint8Array(1_000_000).fill(0x41);
  const serving = (async () => {
    for await (const c of l) {
      (async () => {
        const buf = new Uint8Array(8192);
        const n = (await c.read(buf)) ?? 0;
        const head = new TextDecoder().decode(buf.subarray(0, n));
        const body = /^GET \S*manifest\.json /.test(head) ? manifest : junk;
        // For artifacts: 3 MB announced, 1 MB sent, then the connection is cut.
        const length = body === manifest ? manifest.length : 3_000_000;
        await c.write(enc.encode(`HTTP/1.1 200 OK\r\nContent-Length: ${length}\r\n\r\n`));
        let off = 0;
        while (off < body.length) off += await c.write(body.subarray(off));
      })().catch(() => {}).finally(() => c.close());
    }
  })().catch(() => {});
  return {
    url: `http://127.0.0.1:${(l.addr as Deno.NetAddr).port}/stable/amd64/manifest.json`,
    async close() {
      l.close();
      await serving;
    },
  };
}

Deno.test("TM-07 rogue candidate: its junk prefix is not resumed by the honest source, which is not blamed", async () => {
  await withRelease(async ({ rel, cache }) => {
    const rogue = rogueProvider(rel.manifestBytes);
    const honest = serveRelease(rel);
    const logger = memoryLogger();
    try {
      const r = await fetchFromCandidates(
        [{ manifestUrl: rogue.url }, { manifestUrl: honest.url }],
        { limits: FAST, trust: rel.trust, cacheDir: cache, logger },
      );
      assertEquals(r.candidate.manifestUrl, honest.url);
      for (const [name, a] of Object.entries(r.artifacts)) {
        assertEquals(await Deno.readFile(a.path), rel.files.get(name));
        assertEquals(a.sources, [honest.origin]);
      }
      // The honest source resumed the junk once, then started over from 0.
      const mismatch = logger.entries.filter((e) => e.event === "digest_mismatch");
      assert(mismatch.length >= 1, events(logger).join());
      assert(honest.requests.some((q) => q.range === null && q.path.includes("cas")));
      assertEquals(await auditCache(cacheLayout(cache)), []);
    } finally {
      await rogue.close();
      await honest.close();
    }
  }, { kernel: 3_000_000, initramfs: 120_000 });
});

Deno.test("TM-01 tampering: when every source fails on the digest, the error is E_DIGEST", async () => {
  await withRelease(async ({ rel, cache }) => {
    const liar = serveRelease(rel, "wrong-bytes");
    try {
      const e = await assertRejectsCode(
        fetchRelease(opts({ manifestUrl: liar.url, trust: rel.trust, cacheDir: cache })),
        VerifyError,
        "E_DIGEST",
      );
      assert(/never matched sha256:[0-9a-f]{64}/.test(e.message), e.message);
      assertEquals(await auditCache(cacheLayout(cache)), []);
    } finally {
      await liar.close();
    }
  });
});

Deno.test("TM-07 mDNS poisoning: a peer that served wrong bytes is dropped for the rest of the run", async () => {
  await withRelease(async ({ rel, cache }) => {
    const liar = serveRelease(rel, "wrong-bytes");
    const good = serveRelease(rel);
    const logger = memoryLogger();
    try {
      const r = await fetchRelease(opts({
        manifestUrl: liar.url,
        mirrors: [good.url],
        trust: rel.trust,
        cacheDir: cache,
        logger,
        parallel: false,
      }));
      for (const [name, a] of Object.entries(r.artifacts)) {
        assertEquals(await Deno.readFile(a.path), rel.files.get(name));
      }
      // The liar sent the first artifact's wrong bytes and was never asked for the second.
      const [first, second] = Object.keys(r.artifacts);
      const about = (name: string) =>
        liar.requests.filter((q) =>
          q.path.endsWith(`/${name}`) || q.path.includes(rel.hexOf(name)) ||
          q.path.includes(rawCidFromDigest(hexToBytes(rel.hexOf(name))))
        ).length;
      assert(about(first) > 0, "the liar was asked for the first artifact");
      assertEquals(about(second), 0, JSON.stringify(liar.requests));
      assertEquals(r.dropped.includes(new URL(liar.url).origin), true);
      assert(events(logger).includes("source_dropped"));
    } finally {
      await liar.close();
      await good.close();
    }
  });
});

function hexToBytes(hex: string): Uint8Array {
  return new Uint8Array(hex.match(/../g)!.map((b) => parseInt(b, 16)));
}
