/**
 * `fetch --rediscover` end to end (issue 12 §4): real multicast between
 * network namespaces, real `serve` processes and the `fetch` entrypoint
 * under its own permission set.
 */
import {
  assert,
  assertEquals,
  NetnsLab,
  readUntil,
  spawnServe,
  stopServe,
  taskArgv,
  tempDir,
  writeRelease,
} from "../../testing/mod.ts";
import { auditCache, cacheLayout } from "../cache.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
/** Longest the rediscovering fetch may take before it counts as stuck, in ms. */
const FETCH_DEADLINE_MS = 60_000;
/** Longest the holder may take to get its response head, in ms. */
const HOLD_TIMEOUT_MS = 20_000;

async function output(cmd: Deno.Command, deadlineMs = FETCH_DEADLINE_MS) {
  const child = cmd.spawn();
  const kill = setTimeout(() => child.kill("SIGKILL"), deadlineMs);
  try {
    const out = await child.output();
    return {
      code: out.code,
      stdout: new TextDecoder().decode(out.stdout),
      stderr: new TextDecoder().decode(out.stderr),
    };
  } finally {
    clearTimeout(kill);
  }
}

Deno.test({
  name:
    "fetch --rediscover (issue 12 §4): over real multicast between namespaces, a client whose origin is at its download cap finds a re-serving peer by mDNS and completes from it",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const dir = await tempDir();
    await using lab = await NetnsLab.create(3);
    const served: Deno.ChildProcess[] = [];
    let holder: Deno.ChildProcess | undefined;
    try {
      // Large enough that a download nobody reads holds its place.
      await writeRelease(`${dir}/root`, "stable", "amd64", {
        kernel: 24 << 20,
        initramfs: 1 << 20,
      });
      const [ip0, , ip2] = lab.namespaces.map((n) => n.ip);
      const origin = `http://${ip0}:8080`;
      const manifest = `${origin}/stable/amd64/manifest.json`;
      const trust = `${dir}/state/trust.json`;
      served.push(
        (await spawnServe([
          ...["--host", ip0, "--port", "8080", "--root", `${dir}/root`, "--state", `${dir}/state`],
          ...["--name", "origin", "--no-dht", "--max-downloads", "1"],
        ], { lab, index: 0 })).child,
      );
      const opts = { cwd: ROOT, stdout: "piped", stderr: "piped" } as const;
      // The peer: a machine that fetched the release and re-serves its cache.
      const filled = await output(lab.command(2, Deno.execPath(), [
        ...taskArgv("fetch"),
        ...["--manifest", manifest, "--trust", trust, "--cache", `${dir}/peer`],
      ], opts));
      assertEquals(filled.code, 0, filled.stderr);
      served.push(
        (await spawnServe([
          ...["--host", ip2, "--port", "8080", "--from-cache", `${dir}/peer`, "--trust", trust],
          ...["--state", `${dir}/peer-state`, "--name", "peer", "--no-dht"],
        ], { lab, index: 2 })).child,
      );
      // The origin's only download place is taken by a reader that never reads.
      holder = lab.command(1, Deno.execPath(), [
        "eval",
        `const r = await fetch("${origin}/stable/amd64/kernel"); console.log(r.status); await new Promise((ok) => setTimeout(ok, ${
          FETCH_DEADLINE_MS * 2
        }));`,
      ], { stdout: "piped", stderr: "null" }).spawn();
      const head = await readUntil(
        holder.stdout,
        (s) => s.includes("\n") ? s : undefined,
        HOLD_TIMEOUT_MS,
        { then: "release" },
      );
      assertEquals(head.found?.trim(), "200", `the holder got no response head: ${head.seen}`);
      const f = await output(lab.command(1, Deno.execPath(), [
        ...taskArgv("fetch"),
        ...["--manifest", manifest, "--trust", trust, "--cache", `${dir}/cache`, "--rediscover"],
      ], opts));
      assertEquals(f.code, 0, f.stderr);
      const events = f.stderr.split("\n").filter((l) => l.startsWith("{")).map((l) =>
        JSON.parse(l)
      );
      const busy = events.filter((e) => e.event === "source_busy");
      assert(busy.length > 0, "the origin answered busy");
      assert(
        events.some((e) =>
          e.event === "provider_rediscovered" && String(e.url).startsWith(`http://${ip2}:8080`)
        ),
        "the peer was found by mDNS",
      );
      const kernel = events.find((e) => e.event === "artifact_verified" && e.artifact === "kernel");
      assertEquals(kernel?.sources, [`http://${ip2}:8080`]);
      assertEquals(await auditCache(cacheLayout(`${dir}/cache`)), []);
    } finally {
      try {
        holder?.kill("SIGKILL");
      } catch { /* gone */ }
      await holder?.status;
      for (const c of served) await stopServe(c);
      await lab.cleanup();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
