/**
 * DHT discovery against a loopback DHT of real libp2p nodes (p2p/mod.ts),
 * through the `discover` entrypoint under its own permission set.
 */
import { createPhaseNode, type PhaseNode, publishRecord } from "../../p2p/mod.ts";
import {
  assert,
  assertEquals,
  makeRelease,
  serveRelease,
  signRecord,
  taskArgv,
} from "../../testing/mod.ts";
import { keygen, loadSigningKey, trustRotate } from "../../sign/mod.ts";
import { recordTrustStep, verifyTrustStep } from "../../verify/mod.ts";
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
      nodes.push(await createPhaseNode({ trust: rel.trust }));
      const boot = nodes[0].getMultiaddrs().map(String);
      for (let i = 1; i < 5; i++) {
        nodes.push(await createPhaseNode({ trust: rel.trust, bootstrap: boot }));
      }
      const size = (n: PhaseNode) =>
        (n.services.dht as unknown as { routingTable: { size: number } }).routingTable.size;
      const settle = async (cond: () => boolean) => {
        for (const t0 = performance.now(); !cond() && performance.now() - t0 < 10_000;) {
          await new Promise((r) => setTimeout(r, 50));
        }
        assert(cond(), "DHT formed");
      };
      await settle(() => nodes.every((n) => size(n) >= 4));
      const older = await signRecord(rel.keyPath, {
        version: "2026.11.01",
        mirrors: [`${srv.origin}/old/manifest.json`],
      });
      const genuine = await signRecord(rel.keyPath, { version: "2026.11.20", mirrors: [srv.url] });
      await publishRecord(nodes[1], "stable", "amd64", older);
      await publishRecord(nodes[2], "stable", "amd64", genuine);
      // A forger with no trust file stores its own self-consistent record with a higher version.
      forger = await createPhaseNode({ bootstrap: boot });
      const forged = await signRecord(rogue.keyPath, {
        version: "2099.1.1",
        mirrors: ["http://127.0.0.1:9/evil.json"],
      });
      await settle(() => size(forger!) >= 5);
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
    const b = await keygen(`${rel.dir}/keys-b`, "b");
    const nodes: PhaseNode[] = [];
    try {
      // Trust v2 (A → B), signed by A and B, accepted into a state directory as fetch does.
      const v2 = `${rel.dir}/trust-2.json`;
      await trustRotate({
        from: rel.trustPath,
        out: v2,
        addKeys: [b.paths.publicKey],
        removeKeys: [(await loadSigningKey(rel.keyPath)).keyid],
        expiresInMs: 365 * 86_400_000,
        signWith: [rel.keyPath, b.paths.privateKey],
      });
      const state = `${rel.dir}/state`;
      await recordTrustStep(state, verifyTrustStep(rel.trust, await Deno.readFile(v2), new Date()));
      // Three nodes that store any record (a DHT node is not the device's trust).
      nodes.push(await createPhaseNode());
      const boot = nodes[0].getMultiaddrs().map(String);
      for (let i = 1; i < 3; i++) nodes.push(await createPhaseNode({ bootstrap: boot }));
      const size = (n: PhaseNode) =>
        (n.services.dht as unknown as { routingTable: { size: number } }).routingTable.size;
      for (const t0 = performance.now(); performance.now() - t0 < 10_000;) {
        if (nodes.every((n) => size(n) >= 2)) break;
        await new Promise((r) => setTimeout(r, 50));
      }
      assert(nodes.every((n) => size(n) >= 2), "DHT formed");
      const byB = await signRecord(b.paths.privateKey, {
        version: "2026.11.20",
        mirrors: ["http://127.0.0.1:9/signed-by-b/manifest.json"],
      });
      const byA = await signRecord(rel.keyPath, {
        version: "2026.11.21",
        mirrors: ["http://127.0.0.1:9/signed-by-retired-a/manifest.json"],
      });
      const discover = async (extra: string[]) => {
        const out = await new Deno.Command(Deno.execPath(), {
          args: [
            ...taskArgv("discover"),
            ...["--trust", rel.trustPath, "--mode", "internet", "--channel", "stable"],
            ...["--bootstrap", boot[0], "--order", "wan", "--dht-timeout", "5s"],
            ...["--arch", "amd64", "--no-probe", "--json", ...extra],
          ],
          cwd: ROOT,
          stdout: "piped",
          stderr: "piped",
        }).output();
        const stderr = new TextDecoder().decode(out.stderr);
        if (out.code === EXIT_STATUS.E_NO_CANDIDATE) {
          assert(stderr.includes("dht_record_rejected"), stderr);
          return [];
        }
        assertEquals(out.code, 0, stderr);
        const res = JSON.parse(new TextDecoder().decode(out.stdout));
        return (res.candidates as { manifestUrl: string }[]).map((c) => c.manifestUrl);
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
