/**
 * The boot orchestrator hands fetch the peers discovery found (issue 12
 * §2, `[vm self-host-dht]`): a real origin, a real libp2p DHT, a real
 * re-serving peer providing the manifest CID, a real `discover` and the
 * real `fetch` entrypoint under its permission set. The origin answers at
 * discovery and is gone when fetch runs: only the providers and the CID
 * that boot passes on can deliver the release.
 */
import { withDhtPeer } from "../testing/provider.ts";
import { memoryLogger } from "../core/mod.ts";
import { DEFAULT_POLICY } from "../client/mod.ts";
import { assert, assertEquals, taskArgv } from "../testing/mod.ts";
import { type BootDeps, runChain, SEED_PATHS } from "./boot.ts";

const ROOT = new URL("../", import.meta.url).pathname;
const opts = { sanitizeResources: false, sanitizeOps: false };

/** Runs a seed step's entrypoint as its task does (its permission set), as phase-boot runs phase-<step>. */
async function entrypoint(task: string, args: readonly string[]) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [...taskArgv(task), ...args],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
  }).output();
  return { code: out.code, stdout: new TextDecoder().decode(out.stdout) };
}

Deno.test({
  name:
    "TM-07 mDNS poisoning: boot passes the discovered providers and the manifest CID to fetch: the origin gone after discovery, the release comes verified from the re-serving peer",
  ...opts,
  fn: () =>
    withDhtPeer("boot-providers", { mirrors: "origin", kernelBytes: 400_000 }, async (lab) => {
      const { dir, trustPath, files, origin, originManifest, bootAddrs, peer, manifestCid } = lab;
      const said: string[] = [];
      const fetchArgs: string[][] = [];
      await Deno.mkdir(`${dir}/run`, { recursive: true });
      await Deno.writeTextFile(`${dir}/run/interfaces`, "lo\neth0\n");
      const deps: BootDeps = {
        policy: { ...DEFAULT_POLICY, bootstrap: bootAddrs },
        arch: "amd64",
        paths: {
          ...SEED_PATHS,
          bin: "/nonexistent/bin",
          trust: trustPath,
          cache: `${dir}/cacheB`,
          run: `${dir}/run`,
          interfaces: `${dir}/run/interfaces`,
        },
        log: memoryLogger(),
        say: (l) => said.push(l),
        dryRun: true,
        run: async (program, args) => {
          const step = program.slice(program.lastIndexOf("/") + 1).replace(/^phase-/, "");
          if (step === "udhcpc") return { code: 0, stdout: "" };
          if (step === "discover") {
            // The real discover entrypoint with the arguments boot gives it: the origin answers its probe now.
            const r = await entrypoint("discover", args);
            // ... and is gone before fetch runs.
            await origin.close();
            return r;
          }
          if (step === "fetch") {
            fetchArgs.push([...args]);
            return await entrypoint("fetch", args);
          }
          if (step === "kexec") {
            return {
              code: 0,
              stdout: JSON.stringify({
                ok: true,
                channel: "stable",
                arch: "amd64",
                version: "2026.11.20",
                method: "file",
                argv: ["/sbin/kexec", "-s", "-l", "k"],
                dryRun: true,
              }) + "\n",
            };
          }
          throw new Error(`unexpected step ${step}`);
        },
      };
      const outcome = await runChain(deps);
      assert(said.some((l) => l.includes(`using ${originManifest} (dht)`)), said.join("\n"));
      const args = fetchArgs[0];
      assert(args.includes("--provider") && args.includes(`${peer.url}/`), args.join(" "));
      assertEquals(args[args.indexOf("--cid") + 1], manifestCid);
      assertEquals(await Deno.readFile(outcome.artifacts.kernel), files.kernel);
    }),
});
