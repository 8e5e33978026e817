/**
 * Private mode over Tor with a real `tor` client, against a private Tor
 * network on loopback (testing/tor_net.ts: three authority/exit relays).
 * CI installs the Debian `tor` package (.ci/apt-packages).
 */
import { EXIT_STATUS } from "../core/mod.ts";
import {
  assert,
  assertEquals,
  assertRejects,
  assertRejectsCode,
  makeRelease,
  serveRelease,
  taskArgv,
  tempDir,
} from "../testing/mod.ts";
import { startTorNet, torAvailable } from "../testing/tor_net.ts";
import { type BootDeps, runChain, SEED_PATHS, type StepResult } from "../boot/mod.ts";
import { ClientError, DEFAULT_POLICY, fetchRelease } from "../client/mod.ts";
import { NetError } from "./errors.ts";
import { socksFetch, TOR_LIMITS } from "./socks.ts";
import { checkTorrcFragment, startTor, TorMissing, torrc } from "./tor.ts";

const ROOT = new URL("../", import.meta.url).pathname;

function alive(pid: number): boolean {
  try {
    Deno.kill(pid, "SIGCONT");
    return true;
  } catch {
    return false;
  }
}

Deno.test("tor: torrc fragments may not move state, open ports or change logging (TM-13)", () => {
  assertEquals(
    checkTorrcFragment("# bridges\nUseBridges 1\nBridge 192.0.2.1:443 ABCD\n\n"),
    ["UseBridges 1", "Bridge 192.0.2.1:443 ABCD"],
  );
  for (
    const bad of [
      "SocksPort 0.0.0.0:9050",
      "ControlPort 9051",
      "DataDirectory /var/lib/tor",
      "Log debug file /var/log/tor",
      "DNSPort 53",
      "+ORPort 9001",
      "%include /etc/tor/torrc.d",
    ]
  ) {
    let code = "";
    try {
      checkTorrcFragment(`UseBridges 1\n${bad}\n`);
    } catch (err) {
      code = (err as NetError).code;
      assert((err as Error).message.includes("line 2"), (err as Error).message);
    }
    assertEquals(code, "E_TOR", bad);
  }
  const conf = torrc("/run/phase/tor", ["UseBridges 1"]);
  assert(conf.includes("SocksPort 127.0.0.1:auto\n"), conf);
  assert(conf.includes("DataDirectory /run/phase/tor\n"), conf);
  assert(conf.includes(`__OwningControllerProcess ${Deno.pid}\n`), conf);
});

Deno.test("tor: a missing binary is reported as such; a broken configuration stops with E_TOR", async () => {
  const dir = await tempDir();
  try {
    const missing = await assertRejects(
      startTor({ torPaths: [`${dir}/no-tor`, `${dir}/nor-here`], dataDir: `${dir}/t0` }),
      TorMissing,
    );
    assertEquals(missing.paths, [`${dir}/no-tor`, `${dir}/nor-here`]);
    if (!(await torAvailable())) throw new Error("tor is not installed (apt-get install tor)");
    const t0 = performance.now();
    const e = await assertRejectsCode(
      startTor({
        torPaths: ["/usr/sbin/tor", "/usr/bin/tor"],
        dataDir: `${dir}/t1`,
        extraTorrc: ["NoSuchTorOption 1"],
      }),
      NetError,
      "E_TOR",
    );
    assert(e.message.includes("exited before it bootstrapped"), e.message);
    assert(performance.now() - t0 < 30_000);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test({
  name:
    "TM-13 private-mode privacy: over a real Tor network the release arrives only through Tor, and nothing is sent without it",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(t) {
    if (!(await torAvailable())) throw new Error("tor is not installed (apt-get install tor)");
    const dir = await tempDir();
    const net = await startTorNet(`${dir}/net`);
    const rel = await makeRelease({ dir: `${dir}/rel` }).catch(async (err) => {
      await net.stop();
      throw err;
    });
    const srv = serveRelease(rel);
    try {
      await t.step("the library: startTor, then fetchRelease through its SOCKS port", async () => {
        const lines: string[] = [];
        const tor = await startTor({
          torPaths: ["/usr/sbin/tor", "/usr/bin/tor"],
          dataDir: `${dir}/tor-lib`,
          extraTorrc: checkTorrcFragment(net.clientTorrc.join("\n")),
          say: (l) => lines.push(l),
        });
        try {
          assert(lines.some((l) => l.includes("bootstrapped 100%")), lines.join("\n"));
          const fetchFn = socksFetch(tor.socks);
          const got = await fetchRelease({
            manifestUrl: srv.url,
            trust: rel.trust,
            cacheDir: `${dir}/cache-lib`,
            fetchFn,
            limits: TOR_LIMITS,
          });
          for (const [name, a] of Object.entries(got.artifacts)) {
            assertEquals(new Uint8Array(await Deno.readFile(a.path)), rel.files.get(name));
          }
        } finally {
          await tor.stop();
        }
        assert(!alive(tor.pid), "tor still runs after stop()");
        // Tor gone: the same fetch fails and the provider sees nothing.
        const before = srv.requests.length;
        await assertRejectsCode(
          fetchRelease({
            manifestUrl: srv.url,
            trust: rel.trust,
            cacheDir: `${dir}/cache-after`,
            fetchFn: socksFetch(tor.socks),
          }),
          ClientError,
          "E_FETCH",
        );
        assertEquals(srv.requests.length, before);
      });

      await t.step(
        "the orchestrator: allow_tor starts tor and hands its SOCKS port to discover and fetch",
        async () => {
          const torrcPath = `${dir}/torrc`;
          await Deno.writeTextFile(torrcPath, net.clientTorrc.join("\n") + "\n");
          await Deno.mkdir(`${dir}/run`);
          const ifaces = `${dir}/run/interfaces`;
          await Deno.writeTextFile(ifaces, "lo\neth0\n");
          const calls: { program: string; args: readonly string[] }[] = [];
          let torPid = 0;
          const said: string[] = [];
          const deps: BootDeps = {
            policy: {
              ...DEFAULT_POLICY,
              mode: "private",
              allowTor: true,
              provider: srv.url,
            },
            arch: "amd64",
            paths: {
              ...SEED_PATHS,
              bin: `${dir}/bin`,
              run: `${dir}/run`,
              interfaces: ifaces,
              torrc: torrcPath,
              torPaths: ["/usr/sbin/tor", "/usr/bin/tor"],
            },
            log: { info() {}, warn() {}, error() {} },
            say: (l) => said.push(l),
            dryRun: true,
            startTor: async (o) => {
              const h = await startTor(o);
              torPid = h.pid;
              return h;
            },
            // Steps run as the seed would run them: DHCP is assumed; discover
            // runs for real, through Tor, under its own permission set.
            run: async (program, args): Promise<StepResult> => {
              calls.push({ program, args });
              if (program.endsWith("udhcpc")) return { code: 0, stdout: "" };
              if (program.endsWith("phase-discover")) {
                assert(alive(torPid), "tor is not running during discovery");
                const out = await new Deno.Command(Deno.execPath(), {
                  args: [
                    ...taskArgv("discover"),
                    // The boot passes the policy it loaded as flags (--provider ...).
                    ...args.map((a) => a === SEED_PATHS.trust ? rel.trustPath : a),
                  ],
                  cwd: ROOT,
                  stdout: "piped",
                  stderr: "piped",
                }).output();
                const stdout = new TextDecoder().decode(out.stdout);
                assertEquals(out.code, 0, new TextDecoder().decode(out.stderr));
                return { code: out.code, stdout };
              }
              // fetch-private: stop here (its tmpfs run is covered above and in
              // fetch/main_test.ts); the boot must then stop tor.
              return { code: EXIT_STATUS.E_FETCH, stdout: "" };
            },
          };
          await assertRejects(runChain(deps), Error);
          const discover = calls.find((c) => c.program.endsWith("phase-discover"));
          const fetch = calls.find((c) => c.program.endsWith("phase-fetch-private"));
          assert(discover && fetch, JSON.stringify(calls));
          const socksOf = (a: readonly string[]) => a[a.indexOf("--socks") + 1];
          assert(/^127\.0\.0\.1:\d+$/.test(socksOf(discover.args)), discover.args.join(" "));
          assertEquals(socksOf(fetch.args), socksOf(discover.args));
          assertEquals(fetch.args[fetch.args.indexOf("--manifest") + 1], srv.url);
          assert(said.some((l) => l.includes("tor: ready")), said.join("\n"));
          assert(!alive(torPid), "tor still runs after the boot chain ended");
        },
      );

      await t.step("the orchestrator: no tor binary, a loud warning and no --socks", async () => {
        const calls: { program: string; args: readonly string[] }[] = [];
        const said: string[] = [];
        await Deno.writeTextFile(`${dir}/run/interfaces`, "eth0\n");
        await assertRejects(
          runChain({
            policy: { ...DEFAULT_POLICY, mode: "private", allowTor: true, provider: srv.url },
            arch: "amd64",
            paths: {
              ...SEED_PATHS,
              bin: `${dir}/bin`,
              run: `${dir}/run`,
              interfaces: `${dir}/run/interfaces`,
              torrc: `${dir}/none`,
              torPaths: [`${dir}/no-tor`],
            },
            log: { info() {}, warn() {}, error() {} },
            say: (l) => said.push(l),
            dryRun: true,
            run: (program, args) => {
              calls.push({ program, args });
              return Promise.resolve(
                program.endsWith("udhcpc")
                  ? { code: 0, stdout: "" }
                  : { code: EXIT_STATUS.E_NO_CANDIDATE, stdout: "" },
              );
            },
          }),
          Error,
        );
        assert(
          said.some((l) => /WARNING: allow_tor is set but this seed has no tor binary/.test(l)),
          said.join("\n"),
        );
        const discover = calls.find((c) => c.program.endsWith("phase-discover"));
        assert(discover && !discover.args.includes("--socks"), JSON.stringify(calls));
      });
    } finally {
      await srv.close();
      await net.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
