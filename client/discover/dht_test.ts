/**
 * DHT discovery against a loopback DHT of real libp2p nodes (p2p/mod.ts),
 * through the `discover` entrypoint under its own permission set.
 */
import { type PhaseNode, publishRecord } from "../../p2p/mod.ts";
import {
  assert,
  assertEquals,
  joinDht,
  loopbackDht,
  makeRelease,
  multiaddrsOf,
  serveRelease,
  signRecord,
  taskArgv,
} from "../../testing/mod.ts";
import { keygen, loadSigningKey, trustRotate } from "../../sign/mod.ts";
import { parseTrust, recordTrustStep, type Trust, verifyTrustStep } from "../../verify/mod.ts";
import { EXIT_STATUS } from "../../core/mod.ts";

const ROOT = new URL("../../", import.meta.url).pathname;

Deno.test({
  name:
    "TM-08 DHT poisoning (client side): discover over a 6-node loopback DHT keeps only the trusted record, highest version, though the forger is the only bootstrap peer",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const rel = await makeRelease();
    const rogue = await makeRelease();
    const srv = serveRelease(rel); // answers /health and the release
    const nodes: PhaseNode[] = [];
    let forger: PhaseNode | undefined;
    try {
      // Five honest nodes that validate with the trust file (as providers do).
      nodes.push(...await loopbackDht(Array(5).fill({ trust: rel.trust })));
      const older = await signRecord(rel.keyPath, {
        version: "2026.11.01",
        mirrors: [`${srv.origin}/old/manifest.json`],
      });
      const genuine = await signRecord(rel.keyPath, { version: "2026.11.20", mirrors: [srv.url] });
      await publishRecord(nodes[1], "stable", "amd64", older);
      await publishRecord(nodes[2], "stable", "amd64", genuine);
      // A forger with no trust file stores its own self-consistent record with a higher version.
      forger = await joinDht({ bootstrap: nodes.flatMap(multiaddrsOf) });
      const forged = await signRecord(rogue.keyPath, {
        version: "2099.1.1",
        mirrors: ["http://127.0.0.1:9/evil.json"],
      });
      await publishRecord(forger, "stable", "amd64", forged);
      await Deno.writeTextFile(
        `${rel.dir}/policy.toml`,
        `bootstrap = ["${forger.getMultiaddrs()[0]}"]\n`,
      );
      await Deno.writeTextFile(`${rel.dir}/cmdline`, "quiet\n");
      const argv = taskArgv("discover");
      const out = await new Deno.Command(Deno.execPath(), {
        args: [
          ...argv,
          "--trust",
          rel.trustPath,
          "--policy",
          `${rel.dir}/policy.toml`,
          "--cmdline",
          `${rel.dir}/cmdline`,
          "--order",
          "wan",
          "--dht-timeout",
          "5s",
          "--arch",
          "amd64",
        ],
        cwd: ROOT,
        stdout: "piped",
        stderr: "piped",
      }).output();
      const stderr = new TextDecoder().decode(out.stderr);
      assertEquals(out.code, 0, stderr);
      const res = JSON.parse(new TextDecoder().decode(out.stdout));
      assertEquals(res.steps[0].step, "wan");
      assert(res.steps[0].ms < 8_000, "the WAN step is bounded");
      assertEquals(res.candidates[0].manifestUrl, srv.url, JSON.stringify(res));
      assertEquals(res.candidates[0].version, "2026.11.20");
      assert(!JSON.stringify(res).includes("evil"), "the forged record is never a candidate");
      assert(stderr.includes("dht_record_rejected"), "the forged record was seen and rejected");
    } finally {
      for (const n of [...nodes, ...(forger ? [forger] : [])]) {
        await Promise.resolve(n.stop()).catch(() => {});
      }
      await srv.close();
      await Deno.remove(rel.dir, { recursive: true });
      await Deno.remove(rogue.dir, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "TM-09 key compromise and rotation: discover --state checks DHT records under the newest trust version the device accepted: a record signed only by the rotated-in key B counts, one signed only by the retired key A does not",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const rel = await makeRelease(); // its key is A; rel.trustPath is version 1 (A)
    const nodes: PhaseNode[] = [];
    try {
      // Trust v2 (A → B), signed by A and B, accepted into a state directory as fetch does.
      const { b, v2 } = await rotateToB(rel);
      const state = `${rel.dir}/state`;
      await recordTrustStep(state, verifyTrustStep(rel.trust, v2, new Date()));
      // Three nodes that store any record (a DHT node is not the device's trust).
      nodes.push(...await loopbackDht([{}, {}, {}]));
      const boot = multiaddrsOf(nodes[0]);
      const byB = await signRecord(b.paths.privateKey, {
        version: "2026.11.20",
        mirrors: ["http://127.0.0.1:9/signed-by-b/manifest.json"],
      });
      const byA = await signRecord(rel.keyPath, {
        version: "2026.11.21",
        mirrors: ["http://127.0.0.1:9/signed-by-retired-a/manifest.json"],
      });
      const discover = async (extra: string[]) => {
        const { urls, stderr } = await discoverUrls(rel.trustPath, boot[0], extra);
        if (urls.length === 0) assert(stderr.includes("dht_record_rejected"), stderr);
        return urls;
      };
      // The signers publish a record signed by B only: under the pinned
      // trust (v1: A) it is dropped, under the stored v2 (B) it counts.
      await publishRecord(nodes[1], "stable", "amd64", byB);
      assertEquals(await discover([]), []);
      assertEquals(await discover(["--state", state]), [
        "http://127.0.0.1:9/signed-by-b/manifest.json",
      ]);
      // Whoever holds the retired key A publishes a newer record signed by
      // A only: it would count under v1, it does not under the stored v2.
      await publishRecord(nodes[2], "stable", "amd64", byA);
      assertEquals(await discover([]), [
        "http://127.0.0.1:9/signed-by-retired-a/manifest.json",
      ]);
      assertEquals(await discover(["--state", state]), []);
    } finally {
      for (const n of nodes) await Promise.resolve(n.stop()).catch(() => {});
      await Deno.remove(rel.dir, { recursive: true });
    }
  },
});

/**
 * A loopback DHT: a node that stores any record, then one node per trust,
 * which stores only records that trust signs (so records of different
 * signers live side by side under one key, as on a real DHT whose providers
 * trust different keys).
 */
async function trustDht(
  trusts: readonly Trust[],
): Promise<{ nodes: PhaseNode[]; boot: string[] }> {
  const nodes = await loopbackDht([{}, ...trusts.map((trust) => ({ trust }))]);
  return { nodes, boot: multiaddrsOf(nodes[0]) };
}

/**
 * A loopback HTTP server that serves `/trust/<v>.json` from `chain` (what
 * a provider serves once the signers publish a version) and `/health`.
 */
function trustServer(chain: Map<number, Uint8Array>): { origin: string; close(): Promise<void> } {
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (req) => {
    const path = new URL(req.url).pathname;
    if (path === "/health") return Response.json({ status: "serving" });
    const m = /^\/trust\/(\d+)\.json$/.exec(path);
    const bytes = m ? chain.get(Number(m[1])) : undefined;
    return bytes
      ? new Response(bytes as Uint8Array<ArrayBuffer>, {
        headers: { "content-type": "application/json" },
      })
      : new Response("not found", { status: 404 });
  });
  return {
    origin: `http://127.0.0.1:${server.addr.port}`,
    close: () => server.shutdown(),
  };
}

/** Runs the discover entrypoint (WAN only) and returns the candidates' manifest URLs and stderr. */
async function discoverUrls(
  trustPath: string,
  boot: string,
  extra: string[],
): Promise<{ urls: string[]; stderr: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      ...taskArgv("discover"),
      ...["--trust", trustPath, "--mode", "internet", "--channel", "stable"],
      ...["--bootstrap", boot, "--order", "wan", "--dht-timeout", "5s"],
      ...["--arch", "amd64", "--no-probe", "--json", ...extra],
    ],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stderr = new TextDecoder().decode(out.stderr);
  if (out.code === EXIT_STATUS.E_NO_CANDIDATE) return { urls: [], stderr };
  assertEquals(out.code, 0, stderr);
  const res = JSON.parse(new TextDecoder().decode(out.stdout));
  return { urls: (res.candidates as { manifestUrl: string }[]).map((c) => c.manifestUrl), stderr };
}

/** Trust v2 (A → B) of `rel`, signed by A and B, as `deno task trust rotate` writes it. */
async function rotateToB(rel: { dir: string; trustPath: string; keyPath: string }) {
  const b = await keygen(`${rel.dir}/keys-b`, "b");
  const v2 = `${rel.dir}/trust-2.json`;
  await trustRotate({
    from: rel.trustPath,
    out: v2,
    addKeys: [b.paths.publicKey],
    removeKeys: [(await loadSigningKey(rel.keyPath)).keyid],
    expiresInMs: 365 * 86_400_000,
    signWith: [rel.keyPath, b.paths.privateKey],
  });
  return { b, v2Path: v2, v2: await Deno.readFile(v2) };
}

async function listTree(dir: string): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(dir)) {
    out.push(e.name);
    if (e.isDirectory) {
      out.push(...(await listTree(`${dir}/${e.name}`)).map((n) => `${e.name}/${n}`));
    }
  }
  return out.sort();
}

Deno.test({
  name:
    "TM-09 key compromise and rotation: discover pinned to trust A with no stored chain walks to v2 (A → B) once a provider serves /trust/2.json: a DHT record signed only by B is kept, one signed only by the retired A is dropped, and nothing is written",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const rel = await makeRelease(); // its key is A; rel.trustPath is version 1 (A)
    const chain = new Map<number, Uint8Array>();
    const provider = trustServer(chain);
    let dht: { nodes: PhaseNode[]; boot: string[] } | undefined;
    try {
      const { b, v2 } = await rotateToB(rel);
      // One node keeps what B signs, one what A signs.
      dht = await trustDht([parseTrust(v2), rel.trust]);
      const byB = await signRecord(b.paths.privateKey, {
        version: "2026.11.20",
        mirrors: [`${provider.origin}/stable/amd64/manifest.json`],
        trustVersion: 2,
      });
      await publishRecord(dht.nodes[1], "stable", "amd64", byB);
      // An empty state directory (a first boot, or a private boot's tmpfs).
      const state = `${rel.dir}/state`;
      await Deno.mkdir(state);
      // Before the provider publishes v2, the record signed by B is dropped.
      let r = await discoverUrls(rel.trustPath, dht.boot[0], []);
      assertEquals(r.urls, [], r.stderr);
      assert(r.stderr.includes("dht_record_rejected"), r.stderr);
      // The provider publishes v2 (A → B): discover walks to it and keeps the record.
      chain.set(2, v2);
      for (const extra of [[], ["--state", state]]) {
        r = await discoverUrls(rel.trustPath, dht.boot[0], extra);
        assertEquals(r.urls, [`${provider.origin}/stable/amd64/manifest.json`], r.stderr);
        assert(r.stderr.includes('"trust_rotated"'), r.stderr);
      }
      // Discover persisted nothing: fetch is what keeps the chain.
      assertEquals(await listTree(state), []);
      // Whoever holds the retired key A publishes a newer record signed by A only.
      const byA = await signRecord(rel.keyPath, {
        version: "2026.11.21",
        mirrors: ["http://127.0.0.1:9/signed-by-retired-a/manifest.json"],
        trustVersion: 1,
      });
      await publishRecord(dht.nodes[2], "stable", "amd64", byA);
      r = await discoverUrls(rel.trustPath, dht.boot[0], ["--state", state]);
      assertEquals(r.urls, [`${provider.origin}/stable/amd64/manifest.json`], r.stderr);
      // Without a source serving the chain, the pinned trust A would still take it.
      chain.delete(2);
      r = await discoverUrls(rel.trustPath, dht.boot[0], []);
      assertEquals(r.urls, ["http://127.0.0.1:9/signed-by-retired-a/manifest.json"], r.stderr);
      assertEquals(await listTree(state), []);
    } finally {
      for (const n of dht?.nodes ?? []) await Promise.resolve(n.stop()).catch(() => {});
      await provider.close();
      await Deno.remove(rel.dir, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "TM-09 key compromise and rotation: an attacker serving discover an older or gapped trust chain changes nothing: asked first, its versions are refused, and the genuine v2 from another source still decides",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const rel = await makeRelease(); // key A, trust v1 (A)
    const rogue = await makeRelease(); // the attacker's own key and trust file
    const honestChain = new Map<number, Uint8Array>();
    const attackerChain = new Map<number, Uint8Array>();
    const honest = trustServer(honestChain);
    const attacker = trustServer(attackerChain);
    let dht: { nodes: PhaseNode[]; boot: string[] } | undefined;
    try {
      const { b, v2Path, v2 } = await rotateToB(rel);
      // A genuine v3 (B → C): served as version 2 it is a gap.
      const c = await keygen(`${rel.dir}/keys-c`, "c");
      const v3Path = `${rel.dir}/trust-3.json`;
      await trustRotate({
        from: v2Path,
        out: v3Path,
        addKeys: [c.paths.publicKey],
        removeKeys: [(await loadSigningKey(b.paths.privateKey)).keyid],
        expiresInMs: 365 * 86_400_000,
        signWith: [b.paths.privateKey, c.paths.privateKey],
      });
      const v3 = await Deno.readFile(v3Path);
      const v1 = await Deno.readFile(rel.trustPath);
      dht = await trustDht([parseTrust(v2), rel.trust, rogue.trust]);
      const honestUrl = `${honest.origin}/stable/amd64/manifest.json`;
      const retiredUrl = "http://127.0.0.1:9/signed-by-retired-a/manifest.json";
      await publishRecord(
        dht.nodes[1],
        "stable",
        "amd64",
        await signRecord(b.paths.privateKey, {
          version: "2026.11.20",
          mirrors: [honestUrl],
          trustVersion: 2,
        }),
      );
      await publishRecord(
        dht.nodes[2],
        "stable",
        "amd64",
        await signRecord(rel.keyPath, { version: "2026.11.21", mirrors: [retiredUrl] }),
      );
      // The attacker's own record claims the newest trust, so its source is asked first.
      await publishRecord(
        dht.nodes[3],
        "stable",
        "amd64",
        await signRecord(rogue.keyPath, {
          version: "2099.1.1",
          mirrors: [`${attacker.origin}/evil/manifest.json`],
          trustVersion: 99,
        }),
      );
      for (
        const [what, served] of [
          ["older (the pinned v1 again)", new Map([[2, v1]])],
          ["gapped (v3 served as 2, v3 as 3)", new Map([[2, v3], [3, v3]])],
        ] as const
      ) {
        attackerChain.clear();
        for (const [k, v] of served) attackerChain.set(k, v);
        // Only the attacker serves a chain: the device stays on A, as without a walk.
        honestChain.clear();
        let r = await discoverUrls(rel.trustPath, dht.boot[0], []);
        assertEquals(r.urls, [retiredUrl], `${what}: ${r.stderr}`);
        assert(r.stderr.includes("trust_version_refused"), `${what}: ${r.stderr}`);
        // The genuine v2 from the honest source still decides.
        honestChain.set(2, v2);
        r = await discoverUrls(rel.trustPath, dht.boot[0], []);
        assertEquals(r.urls, [honestUrl], `${what}: ${r.stderr}`);
        const refused = r.stderr.indexOf("trust_version_refused");
        assert(refused >= 0 && refused < r.stderr.indexOf('"trust_rotated"'), r.stderr);
      }
    } finally {
      for (const n of dht?.nodes ?? []) await Promise.resolve(n.stop()).catch(() => {});
      await honest.close();
      await attacker.close();
      await Deno.remove(rel.dir, { recursive: true });
      await Deno.remove(rogue.dir, { recursive: true });
    }
  },
});
