/**
 * End-to-end tests of the `discover` entrypoint under its own permission
 * set: real multicast between network namespaces against the real
 * provider (`deno task serve`), then the real `fetch` of what was found.
 */
import {
  assert,
  assertEquals,
  makeRelease,
  NetnsLab,
  serveRelease,
  spawnServe,
  stopServe,
  taskArgv,
  tempDir,
  writeRelease,
} from "../../testing/mod.ts";
import { auditCache, cacheLayout } from "../cache.ts";
import { EXIT_STATUS } from "../../core/mod.ts";
import { startTestSocks } from "../../testing/socks5.ts";

const ROOT = new URL("../../", import.meta.url).pathname;

async function output(cmd: Deno.Command) {
  const out = await cmd.output();
  return {
    code: out.code,
    stdout: new TextDecoder().decode(out.stdout),
    stderr: new TextDecoder().decode(out.stderr),
  };
}

Deno.test({
  name:
    "TM-07 mDNS poisoning (client side): over real multicast between namespaces, discover lists the genuine and a rogue provider as hints; only the genuine one verifies and is fetched",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const dir = await tempDir();
    await using lab = await NetnsLab.create(3);
    let prov: Awaited<ReturnType<typeof spawnServe>> | undefined;
    let rogue: Awaited<ReturnType<typeof spawnServe>> | undefined;
    try {
      await writeRelease(`${dir}/root`, "stable", "amd64", { kernel: 200_000, initramfs: 50_000 });
      const ip0 = lab.namespaces[0].ip;
      prov = await spawnServe([
        "--host",
        ip0,
        "--port",
        "8080",
        "--root",
        `${dir}/root`,
        "--state",
        `${dir}/state`,
        "--name",
        "prov1",
        "--no-dht",
      ], { lab, index: 0 });
      // A rogue provider on the same LAN: same release names, its own key.
      await writeRelease(`${dir}/rogue`, "stable", "amd64", { kernel: 1000, initramfs: 1000 }, 9);
      const ip2 = lab.namespaces[2].ip;
      rogue = await spawnServe([
        "--host",
        ip2,
        "--port",
        "8080",
        "--root",
        `${dir}/rogue`,
        "--state",
        `${dir}/rogue-state`,
        "--name",
        "rogue",
        "--no-dht",
      ], { lab, index: 2 });
      await Deno.writeTextFile(`${dir}/policy.toml`, `channel = "stable"\nmode = "internet"\n`);
      await Deno.writeTextFile(`${dir}/cmdline`, "console=ttyS0 quiet\n");
      const opts = { cwd: ROOT, stdout: "piped", stderr: "piped" } as const;
      const d = await output(lab.command(1, Deno.execPath(), [
        ...taskArgv("discover"),
        "--trust",
        `${dir}/state/trust.json`,
        "--policy",
        `${dir}/policy.toml`,
        "--cmdline",
        `${dir}/cmdline`,
        "--arch",
        "amd64",
        "--mdns-timeout",
        "2s",
      ], opts));
      assertEquals(d.code, 0, d.stderr);
      const res = JSON.parse(d.stdout);
      const url = `http://${ip0}:8080/stable/amd64/manifest.json`;
      const rogueUrl = `http://${ip2}:8080/stable/amd64/manifest.json`;
      const found = res.candidates.map((c: { manifestUrl: string; source: string }) =>
        `${c.source} ${c.manifestUrl}`
      );
      assertEquals(found.sort(), [`mdns ${url}`, `mdns ${rogueUrl}`].sort());
      assertEquals(res.steps.map((s: { step: string }) => s.step), ["lan", "wan", "manual"]);
      assertEquals(res.steps[0].found, 2);
      assert(res.steps[0].ms < 4_000, "the LAN step is bounded");
      // The candidate is a hint: the fetch verifies it against the trust file.
      // The rogue's manifest is not signed by the trust file: E_SIGNATURE (exit 4), nothing cached.
      const r = await output(lab.command(1, Deno.execPath(), [
        ...taskArgv("fetch"),
        "--manifest",
        rogueUrl,
        "--trust",
        `${dir}/state/trust.json`,
        "--cache",
        `${dir}/rogue-cache`,
      ], opts));
      assertEquals(r.code, EXIT_STATUS.E_SIGNATURE, r.stderr);
      assertEquals([...Deno.readDirSync(`${dir}/rogue-cache/cas/sha256`)], []);
      const f = await output(lab.command(1, Deno.execPath(), [
        ...taskArgv("fetch"),
        "--manifest",
        url,
        "--trust",
        `${dir}/state/trust.json`,
        "--cache",
        `${dir}/cache`,
      ], opts));
      assertEquals(f.code, 0, f.stderr);
      const fetched = JSON.parse(f.stdout);
      assertEquals(Object.keys(fetched.artifacts).sort(), ["initramfs", "kernel"]);
      assertEquals(await auditCache(cacheLayout(`${dir}/cache`)), []);
    } finally {
      if (prov) await stopServe(prov.child);
      if (rogue) await stopServe(rogue.child);
      await lab.cleanup();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("TM-15 captive portal and redirects: discover exits E_CAPTIVE with a hint when only a portal answers", async () => {
  const dir = await tempDir();
  const ac = new AbortController();
  const portal = Deno.serve(
    { hostname: "127.0.0.1", port: 0, signal: ac.signal, onListen() {} },
    () => new Response(null, { status: 302, headers: { location: "http://10.255.255.1/login" } }),
  );
  try {
    // A trust file is needed; a real one from keygen.
    const { keygen } = await import("../../sign/mod.ts");
    await keygen(`${dir}/keys`, "release");
    await Deno.writeTextFile(`${dir}/policy.toml`, "");
    await Deno.writeTextFile(
      `${dir}/cmdline`,
      `phase.provider=http://127.0.0.1:${portal.addr.port}/stable/amd64/manifest.json\n`,
    );
    const r = await output(
      new Deno.Command(Deno.execPath(), {
        args: [
          ...taskArgv("discover"),
          "--trust",
          `${dir}/keys/trust.json`,
          "--policy",
          `${dir}/policy.toml`,
          "--cmdline",
          `${dir}/cmdline`,
          "--order",
          "manual",
        ],
        cwd: ROOT,
        stdout: "piped",
        stderr: "piped",
      }),
    );
    assertEquals(r.code, EXIT_STATUS.E_CAPTIVE, r.stderr);
    const res = JSON.parse(r.stdout);
    assertEquals(res.candidates, []);
    assertEquals(res.rejected[0].captivePortal, true);
    assertEquals(res.rejected[0].source, "cmdline");
    assert(
      r.stderr.includes("hint: log in to the network elsewhere, or give a manual URL"),
      r.stderr,
    );
  } finally {
    ac.abort();
    await portal.finished;
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("TM-13 private-mode privacy: discover --socks asks only the manual URL, through the proxy, with the name unresolved", async () => {
  const rel = await makeRelease();
  const srv = serveRelease(rel);
  const port = Number(new URL(srv.origin).port);
  const name = "provider.phase.invalid";
  const socks = startTestSocks({ names: { [name]: port } });
  try {
    const manual = `http://${name}:${port}/stable/amd64/manifest.json`;
    await Deno.writeTextFile(`${rel.dir}/cmdline`, `quiet phase.provider=${manual}\n`);
    const base = [
      ...taskArgv("discover"),
      "--trust",
      rel.trustPath,
      "--policy",
      `${rel.dir}/no-policy.toml`,
      "--cmdline",
      `${rel.dir}/cmdline`,
      "--socks",
      `127.0.0.1:${socks.port}`,
      "--mdns-timeout",
      "5s",
    ];
    const t0 = performance.now();
    const ok = await output(
      new Deno.Command(Deno.execPath(), {
        args: base,
        cwd: ROOT,
        stdout: "piped",
        stderr: "piped",
      }),
    );
    assertEquals(ok.code, 0, ok.stderr);
    // No mDNS window was spent (it would take 5 s), the probe went through the proxy.
    assert(performance.now() - t0 < 5000 + 3000);
    const result = JSON.parse(ok.stdout);
    assertEquals(result.candidates.map((c: { manifestUrl: string }) => c.manifestUrl), [manual]);
    assertEquals(socks.requests.map((r) => [r.atyp, r.host]), [[3, name]]);
    assert(ok.stderr.includes("socks_only"), ok.stderr);
    // LAN discovery cannot go through a proxy: asking for it is a usage error.
    const lan = await output(
      new Deno.Command(Deno.execPath(), {
        args: [...base, "--order", "lan"],
        cwd: ROOT,
        stdout: "piped",
        stderr: "piped",
      }),
    );
    assertEquals(lan.code, EXIT_STATUS.E_USAGE, lan.stderr);
    assert(lan.stderr.includes("--socks allows only the manual step"), lan.stderr);
  } finally {
    await socks.close();
    await srv.close();
    await Deno.remove(rel.dir, { recursive: true });
  }
});
