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
