import { memoryLogger } from "../core/mod.ts";
import { assert, assertEquals, makeRelease } from "../testing/mod.ts";
import { MAX_TRUST_ORIGINS, reachTrust } from "./trust.ts";

async function pinnedTrust() {
  const rel = await makeRelease({ sizes: { kernel: 10, initramfs: 10 } });
  await Deno.remove(rel.dir, { recursive: true }).catch(() => {});
  return rel.trust;
}

Deno.test("reachTrust (discover's read-only walk) asks at most MAX_TRUST_ORIGINS origins, each once, and not those whose claim is not newer", async () => {
  const start = await pinnedTrust();
  const asked: string[] = [];
  const fetchFn = (input: string | URL) => {
    asked.push(String(input));
    return Promise.resolve(new Response("not found", { status: 404 }));
  };
  const origins = [
    { url: "http://10.0.0.1:8080/stable/amd64/manifest.json", claims: 1 }, // not newer: skipped
    ...Array.from({ length: 20 }, (_, i) => ({ url: `http://10.0.1.${i}:8080/m.json` })),
    { url: "ftp://10.0.0.2/x" }, // not HTTP: skipped
  ];
  const r = await reachTrust({ start, origins, now: new Date(), deadlineMs: 2_000, fetchFn });
  assertEquals(r.trust, start);
  assertEquals(r.asked.length, MAX_TRUST_ORIGINS);
  assertEquals(asked, r.asked.map((o) => `${o}/trust/2.json`));
  assert(!asked.some((u) => u.includes("10.0.0.1:") || u.startsWith("ftp")), asked.join());
});

Deno.test("reachTrust ends at its deadline when a source never answers, with the trust it held", async () => {
  const start = await pinnedTrust();
  const logger = memoryLogger();
  const fetchFn = (_: string | URL, init?: RequestInit) =>
    new Promise<Response>((_, reject) => {
      init?.signal?.addEventListener("abort", () => reject(init.signal!.reason), { once: true });
    });
  const t0 = performance.now();
  const r = await reachTrust({
    start,
    origins: [{ url: "http://10.0.0.9:8080/m.json" }, { url: "http://10.0.0.10:8080/m.json" }],
    now: new Date(),
    deadlineMs: 300,
    fetchFn,
    logger,
  });
  const ms = performance.now() - t0;
  assertEquals(r.trust, start);
  assert(ms < 2_000, `took ${ms} ms`);
  assert(logger.entries.some((e) => e.event === "trust_version_unavailable"));
});
