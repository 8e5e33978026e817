/**
 * A private Tor network on loopback for tests (what Tor's own `chutney`
 * builds): three directory authorities and two more relays, all guard, middle and
 * exit relays, with `TestingTorNetwork` timings. Nothing in it knows of the
 * public Tor network; its exits accept only 127.0.0.0/8. A Tor client is
 * pointed at it with `clientTorrc()` (the DirAuthority lines).
 *
 * Needs the `tor` package (tor, tor-gencert). Bootstrapping the network
 * takes 18-50 s (measured: a consensus where every relay has the Exit, Fast
 * and Guard flags after 11-18 s, then a first stream through an exit).
 *
 * @module
 */

/** Longest wait for the authorities to publish a consensus with exits, in ms. */
export const TOR_NET_START_TIMEOUT_MS = 240_000;
/** Longest a key or fingerprint command may take, in ms. */
const TOR_TOOL_TIMEOUT_MS = 30_000;
import { socksFetch, startTor } from "../net/mod.ts";

/** Directory authorities (each also a guard/middle/exit relay). */
const TOR_NET_AUTHORITIES = 3;
/**
 * All relays: the authorities plus plain exit relays. A provider on the
 * relays' own address is reached through that relay as the exit (Tor's
 * "enclave" rule); with only three relays the guard and that exit then
 * often leave no middle, and circuits fail for the first ~20 s.
 */
const TOR_NET_NODES = 5;

/** A running test network. */
export interface TorNet {
  /** DirAuthority lines (and test-network options) for a client torrc. */
  readonly clientTorrc: readonly string[];
  readonly dir: string;
  stop(): Promise<void>;
}

/** Whether tor and tor-gencert can be run here. */
export async function torAvailable(): Promise<boolean> {
  for (const cmd of ["tor", "tor-gencert"]) {
    try {
      const r = await new Deno.Command(cmd, { args: ["--version"], stdout: "null", stderr: "null" })
        .output();
      if (cmd === "tor" && !r.success) return false;
    } catch {
      return false;
    }
  }
  return true;
}

async function runTool(cmd: string, args: string[], stdin?: string): Promise<string> {
  const child = new Deno.Command(cmd, {
    args,
    stdin: stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(TOR_TOOL_TIMEOUT_MS),
  }).spawn();
  if (stdin !== undefined) {
    const w = child.stdin.getWriter();
    await w.write(new TextEncoder().encode(stdin));
    await w.close();
  }
  const r = await child.output();
  const out = new TextDecoder().decode(r.stdout);
  if (!r.success) {
    throw new Error(`${cmd} ${args.join(" ")} failed: ${new TextDecoder().decode(r.stderr)}${out}`);
  }
  return out;
}

/** First port of a network started on another address than loopback (see `TorNetOptions`). */
const FIXED_PORT_BASE = 17_100;

function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

/** Where the network runs. */
export interface TorNetOptions {
  /**
   * The address every relay binds and advertises, and the /24 its exits
   * accept; 127.0.0.1 by default. Another address is for a network
   * namespace that a VM reaches over a tap device (with `wrap`).
   */
  readonly address?: string;
  /** Command prefix for the relays, e.g. `["ip", "netns", "exec", ns]`. */
  readonly wrap?: readonly string[];
}

/** Flags every relay must carry in the consensus before the network is ready. */
const READY_FLAGS = ["Exit", "Fast", "Guard", "Running", "Valid"];

/** Options every node and client of the test network shares. */
const TESTING_OPTIONS = [
  "TestingTorNetwork 1",
  "AssumeReachable 1",
  "PathsNeededToBuildCircuits 0.67",
  "TestingDirAuthVoteExit *",
  "TestingDirAuthVoteGuard *",
  "TestingDirAuthVoteHSDir *",
  "TestingMinExitFlagThreshold 0",
  "V3AuthNIntervalsValid 2",
  // Microdescriptor exit summaries cover only policies open to the whole
  // internet; full descriptors carry the real (loopback-only) policy.
  "UseMicrodescriptors 0",
];

/** Starts the network under `dir` and waits for a consensus listing every relay as an exit. */
export async function startTorNet(dir: string, o: TorNetOptions = {}): Promise<TorNet> {
  const address = o.address ?? "127.0.0.1";
  const wrap = o.wrap ?? [];
  // On loopback: free ports of this namespace. Elsewhere (a namespace of
  // the test's own): fixed ports, nothing else listens there.
  const port = (i: number) => address === "127.0.0.1" ? freePort() : FIXED_PORT_BASE + i;
  const nodes = Array.from({ length: TOR_NET_NODES }, (_, i) => ({
    authority: i < TOR_NET_AUTHORITIES,
    nick: `phasetest${i + 1}`,
    dir: `${dir}/a${i + 1}`,
    orPort: port(2 * i),
    dirPort: port(2 * i + 1),
    v3: "",
    fpr: "",
  }));
  const subnet = `${address.split(".").slice(0, 3).join(".")}.0/24`;
  for (const n of nodes) {
    await Deno.mkdir(`${n.dir}/keys`, { recursive: true, mode: 0o700 });
    await Deno.chmod(n.dir, 0o700);
    if (!n.authority) continue;
    await runTool("tor-gencert", [
      "--create-identity-key",
      "--passphrase-fd",
      "0",
      "-m",
      "12",
      "-a",
      `${address}:${n.dirPort}`,
      "-i",
      `${n.dir}/keys/authority_identity_key`,
      "-s",
      `${n.dir}/keys/authority_signing_key`,
      "-c",
      `${n.dir}/keys/authority_certificate`,
    ], "phase-test\n");
    const cert = await Deno.readTextFile(`${n.dir}/keys/authority_certificate`);
    n.v3 = /^fingerprint ([0-9A-F]{40})$/m.exec(cert)?.[1] ?? "";
    const fp = await runTool("tor", [
      "--list-fingerprint",
      "--DataDirectory",
      n.dir,
      "--ORPort",
      "1",
      "--Nickname",
      n.nick,
      "--DirAuthority",
      "placeholder 127.0.0.1:1 0000000000000000000000000000000000000000",
      "--Log",
      "err stderr",
    ]);
    n.fpr = /([0-9A-F]{4}(?: [0-9A-F]{4}){9})\s*$/.exec(fp.trim())?.[1].replaceAll(" ", "") ?? "";
    if (!n.v3 || !n.fpr) throw new Error(`could not read the keys of ${n.nick}`);
  }
  const authorities = nodes.filter((n) => n.authority).map((n) =>
    `DirAuthority ${n.nick} orport=${n.orPort} no-v2 v3ident=${n.v3} ${address}:${n.dirPort} ${n.fpr}`
  );
  const procs: Deno.ChildProcess[] = [];
  const stop = async () => {
    for (const p of procs) {
      try {
        p.kill("SIGKILL");
      } catch { /* gone */ }
    }
    await Promise.all(procs.map((p) => p.status));
  };
  try {
    for (const n of nodes) {
      const conf = [
        ...TESTING_OPTIONS,
        `DataDirectory ${n.dir}`,
        `Nickname ${n.nick}`,
        "RunAsDaemon 0",
        "ShutdownWaitLength 0",
        `__OwningControllerProcess ${Deno.pid}`,
        `Log notice file ${n.dir}/notice.log`,
        "SafeLogging 0",
        "SocksPort 0",
        `ORPort ${address}:${n.orPort}`,
        `Address ${address}`,
        `DirPort ${address}:${n.dirPort}`,
        `ContactInfo ${n.nick}@phase.test`,
        ...(n.authority
          ? [
            "AuthoritativeDirectory 1",
            "V3AuthoritativeDirectory 1",
            // chutney's fastest stable voting schedule.
            "TestingV3AuthInitialVotingInterval 10",
            "TestingV3AuthInitialVoteDelay 2",
            "TestingV3AuthInitialDistDelay 2",
            "V3AuthVotingInterval 10",
            "V3AuthVoteDelay 2",
            "V3AuthDistDelay 2",
            // Fast goes to relays above the 12.5th percentile of the
            // bandwidth they have seen, so a relay that carried less than
            // the others kept waiting for it (measured: over a minute, and
            // once past the 240 s start deadline in CI). Any non-zero
            // guarantee below 1 KB/s lowers the threshold to 0 KB/s: every
            // relay is Fast from the first consensus that lists it.
            "AuthDirFastGuarantee 1 bytes",
          ]
          : []),
        "ExitRelay 1",
        // Only the tests' own addresses (the provider). Nothing else.
        "ExitPolicyRejectPrivate 0",
        `ExitPolicy accept ${address === "127.0.0.1" ? "127.0.0.0/8" : subnet}:*`,
        "ExitPolicy reject *:*",
        ...authorities,
        "",
      ].join("\n");
      await Deno.writeTextFile(`${n.dir}/torrc`, conf);
      procs.push(
        new Deno.Command(wrap[0] ?? "tor", {
          args: [
            ...wrap.slice(1),
            ...(wrap.length ? ["tor"] : []),
            "-f",
            `${n.dir}/torrc`,
            "--ignore-missing-torrc",
          ],
          stdin: "null",
          stdout: "null",
          stderr: "null",
        }).spawn(),
      );
    }
    // Ready once an authority's consensus lists every relay as a usable
    // exit, guard and fast node: earlier consensuses let a client bootstrap
    // but not build exit circuits (it finds no "live, fast routers" for the
    // middle hop). Measured: 11-18 s from start.
    const deadline = Date.now() + TOR_NET_START_TIMEOUT_MS;
    for (;;) {
      let text = "";
      try {
        text = await Deno.readTextFile(`${nodes[0].dir}/cached-consensus`);
      } catch { /* not yet */ }
      const lines = text.split("\n");
      const usable = lines.filter((l) =>
        l.startsWith("s ") && READY_FLAGS.every((f) => ` ${l} `.includes(` ${f} `))
      );
      if (usable.length >= TOR_NET_NODES) break;
      if (Date.now() > deadline) {
        throw new Error(
          `the test Tor network had no consensus of usable exits after ${TOR_NET_START_TIMEOUT_MS} ms\n` +
            await torNetDiagnosis(nodes, lines),
        );
      }
      await new Promise((r) => setTimeout(r, 1000));
    }
  } catch (err) {
    await stop();
    throw err;
  }
  const clientTorrc = [
    "TestingTorNetwork 1",
    "PathsNeededToBuildCircuits 0.67",
    "UseMicrodescriptors 0",
    ...authorities,
  ];
  // On loopback, also wait until a fresh client can carry a stream through
  // an exit: right after the flags appear, a client's first stream can
  // still wait a minute for a usable path when the machine is busy.
  if (address === "127.0.0.1") {
    try {
      await waitForExitStream(dir, clientTorrc);
    } catch (err) {
      await stop();
      throw err;
    }
  }
  return { clientTorrc, dir, stop };
}

/** Lines of each relay's notice log quoted when the network does not come up. */
const DIAGNOSIS_LOG_LINES = 8;

/**
 * What a failed start shows: the consensus's relay and flag lines, and the
 * last warnings of every relay's log (a relay that could not bind, votes
 * that arrived late).
 */
async function torNetDiagnosis(
  nodes: readonly { nick: string; dir: string }[],
  consensus: readonly string[],
): Promise<string> {
  const out = [
    consensus.length > 1
      ? `consensus of ${nodes[0].nick}:\n` +
        consensus.filter((l) =>
          l.startsWith("r ") || l.startsWith("s ") || l.startsWith("valid-after")
        )
          .map((l) => `  ${l}`).join("\n")
      : `no consensus at ${nodes[0].dir}/cached-consensus`,
  ];
  for (const n of nodes) {
    const log = await Deno.readTextFile(`${n.dir}/notice.log`).catch(() => "(no log)");
    const tail = log.split("\n").filter((l) => /\[(warn|err)\]/.test(l)).slice(
      -DIAGNOSIS_LOG_LINES,
    );
    out.push(`${n.nick} warnings:\n${tail.map((l) => `  ${l}`).join("\n") || "  (none)"}`);
  }
  return out.join("\n");
}

/** Longest wait for a probe stream through the new network, in ms. */
const TOR_NET_PROBE_TIMEOUT_MS = 180_000;
/** Deadline of one probe request, in ms. */
const TOR_NET_PROBE_REQUEST_MS = 10_000;

async function waitForExitStream(dir: string, clientTorrc: readonly string[]): Promise<void> {
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    () => new Response("ok"),
  );
  const tor = await startTor({ dataDir: `${dir}/probe-client`, extraTorrc: clientTorrc });
  try {
    const fetchFn = socksFetch(tor.socks);
    const deadline = Date.now() + TOR_NET_PROBE_TIMEOUT_MS;
    for (;;) {
      const ok = await fetchFn(`http://127.0.0.1:${server.addr.port}/`, {
        signal: AbortSignal.timeout(TOR_NET_PROBE_REQUEST_MS),
      }).then((r) => r.text().then(() => r.ok), () => false);
      if (ok) return;
      if (Date.now() > deadline) {
        throw new Error(
          `no stream through the test Tor network after ${TOR_NET_PROBE_TIMEOUT_MS} ms`,
        );
      }
    }
  } finally {
    await tor.stop();
    await server.shutdown();
  }
}
