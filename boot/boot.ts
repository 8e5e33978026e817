/**
 * The seed's boot chain: network up (busybox udhcpc) -> discover -> fetch
 * -> verify -> kexec. Each step is its own entrypoint under its own
 * permission set, started through its launcher; this orchestrator holds
 * no network and no write access beyond /run/phase. Paths pass between
 * steps, trust never does: verify and kexec each re-verify the manifest
 * against the trust file themselves.
 *
 * @module
 */
import type { Logger } from "../core/mod.ts";
import { EXIT_STATUS, PhaseError, readFileCapped } from "../core/mod.ts";
import {
  compareVersions,
  isJsonObject,
  MAX_MANIFEST_BYTES,
  parseStrictJson,
} from "../verify/mod.ts";
import {
  checkTorrcFragment,
  DEFAULT_TOR_PATHS,
  MAX_TORRC_BYTES,
  type Policy,
  startTor,
  type TorHandle,
  TorMissing,
  type TorOptions,
} from "../client/mod.ts";

/** Deadline of DHCP on one interface (udhcpc retries inside it). */
export const DHCP_TIMEOUT_MS = 20_000;
/** Deadline of discovery (mDNS + DHT + manual probe). */
export const DISCOVER_TIMEOUT_MS = 60_000;
/** Deadline of fetching a release (TCG guests are slow; the fetcher bounds stalls itself). */
export const FETCH_TIMEOUT_MS = 15 * 60_000;
/** Deadline of the verify step. */
export const VERIFY_TIMEOUT_MS = 3 * 60_000;
/** Deadline of kexec load (+ exec). */
export const KEXEC_TIMEOUT_MS = 5 * 60_000;
/** Largest stdout kept from a step (its one JSON line). */
export const MAX_STEP_STDOUT_BYTES = 1024 * 1024;
/** Most cache entries looked at when booting from the cache. */
export const MAX_CACHE_SCAN = 4096;

/** Codes of the boot chain. */
export type BootCode = "E_NETWORK" | "E_STEP" | "E_NO_RELEASE" | "E_KEXEC";

/** An error of the boot chain. */
export class BootError extends PhaseError<BootCode> {}

/** phase-kexec exit statuses that mean "the kernel would not load / run". */
const KEXEC_E_LOAD = EXIT_STATUS.E_LOAD;
const KEXEC_E_EXEC = EXIT_STATUS.E_EXEC;

/** Result of one step process. */
export interface StepResult {
  readonly code: number;
  readonly stdout: string;
}

/** Starts one program (a launcher or udhcpc) under a deadline. */
export type StepRunner = (
  program: string,
  args: readonly string[],
  timeoutMs: number,
) => Promise<StepResult>;

/** Paths the chain uses. */
export interface BootPaths {
  /** Directory of the launchers (`phase-discover`, ...). */
  readonly bin: string;
  readonly trust: string;
  readonly policy: string;
  readonly cmdline: string;
  readonly cache: string;
  readonly privateRoot: string;
  readonly run: string;
  readonly udhcpc: string;
  readonly udhcpcScript: string;
  /** Interface names, one a line (init writes it from /sys/class/net). */
  readonly interfaces: string;
  /** Optional torrc fragment for private mode over Tor (bridges, transports). */
  readonly torrc: string;
  /** Where tor may be, in order. */
  readonly torPaths: readonly string[];
}

/** Defaults on the seed. */
export const SEED_PATHS: BootPaths = Object.freeze({
  bin: "/usr/lib/phase/bin",
  trust: "/etc/phase/trust.json",
  policy: "/etc/phase/policy.toml",
  // Deno refuses scoped reads of /proc: the seed's init copies the command line here.
  cmdline: "/run/phase/cmdline",
  cache: "/var/cache/phase",
  // tmpfs, but not under /dev: Deno refuses scoped access there.
  privateRoot: "/run/phase/private",
  run: "/run/phase",
  udhcpc: "/sbin/udhcpc",
  udhcpcScript: "/usr/share/udhcpc/default.script",
  interfaces: "/run/phase/interfaces",
  torrc: "/etc/phase/torrc",
  torPaths: DEFAULT_TOR_PATHS,
});

/** What the chain needs injected. */
export interface BootDeps {
  readonly policy: Policy;
  readonly arch: "amd64" | "arm64";
  readonly paths: BootPaths;
  readonly run: StepRunner;
  readonly log: Logger;
  /** Console lines for the person at the machine. */
  readonly say: (line: string) => void;
  /** Stop after loading (kexec dry run). */
  readonly dryRun?: boolean;
  readonly now?: () => number;
  /** Starts tor (tests inject the test network's options through `paths.torrc`). */
  readonly startTor?: (o: TorOptions) => Promise<TorHandle>;
}

/** What a successful chain did (when it returns: dry run, or exec returned). */
export interface BootOutcome {
  readonly manifest: string;
  readonly artifacts: Readonly<Record<string, string>>;
  readonly source: "network" | "cache";
  readonly timingsMs: Readonly<Record<string, number>>;
}

/** Runs a program with piped stdout (capped) and the console as stderr. */
export const spawnStep: StepRunner = async (program, args, timeoutMs) => {
  const child = new Deno.Command(program, {
    args: [...args],
    stdin: "null",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const timer = setTimeout(() => {
    try {
      child.kill("SIGKILL");
    } catch { /* gone */ }
  }, timeoutMs);
  try {
    const chunks: Uint8Array[] = [];
    let total = 0;
    for await (const c of child.stdout) {
      if (total < MAX_STEP_STDOUT_BYTES) chunks.push(c.subarray(0, MAX_STEP_STDOUT_BYTES - total));
      total += c.length;
    }
    const status = await child.status;
    const bytes = new Uint8Array(Math.min(total, MAX_STEP_STDOUT_BYTES));
    let o = 0;
    for (const c of chunks) {
      bytes.set(c, o);
      o += c.length;
    }
    return { code: status.signal ? 137 : status.code, stdout: new TextDecoder().decode(bytes) };
  } finally {
    clearTimeout(timer);
  }
};

/** The last JSON object line of a step's stdout. */
export function lastJson(stdout: string): Record<string, unknown> | undefined {
  const lines = stdout.trim().split("\n").reverse();
  for (const l of lines) {
    if (!l.startsWith("{")) continue;
    try {
      const v = JSON.parse(l);
      if (v && typeof v === "object" && !Array.isArray(v)) return v as Record<string, unknown>;
    } catch { /* not JSON */ }
  }
  return undefined;
}

/** Largest interface list read. */
export const MAX_INTERFACES_BYTES = 64 * 1024;

async function listInterfaces(path: string): Promise<string[]> {
  let text: string;
  try {
    text = new TextDecoder().decode(await readFileCapped(path, MAX_INTERFACES_BYTES));
  } catch (err) {
    throw new BootError(
      "E_NETWORK",
      `cannot read the interface list ${path}: ${(err as Error).message}`,
      {
        cause: err,
        hint: "the seed's init writes it (ls /sys/class/net); Deno refuses scoped reads of /sys",
      },
    );
  }
  return text.split(/\s+/).filter((n) => n && n !== "lo" && /^[A-Za-z0-9_.:-]{1,15}$/.test(n))
    .sort();
}

/** Network up: udhcpc on each interface until one has a lease. */
export async function networkUp(d: BootDeps): Promise<string> {
  const ifaces = await listInterfaces(d.paths.interfaces);
  if (ifaces.length === 0) {
    throw new BootError("E_NETWORK", "no network interface (only lo)", {
      hint: "the seed has virtio_net; real hardware needs its NIC driver in the seed initramfs",
    });
  }
  for (const i of ifaces) {
    d.say(`phase-boot: network: DHCP on ${i}`);
    const r = await d.run(
      d.paths.udhcpc,
      ["-i", i, "-f", "-q", "-n", "-t", "5", "-T", "2", "-s", d.paths.udhcpcScript],
      DHCP_TIMEOUT_MS,
    );
    if (r.code === 0) return i;
    d.say(`phase-boot: network: no lease on ${i} (udhcpc exit ${r.code})`);
  }
  throw new BootError("E_NETWORK", `no DHCP lease on ${ifaces.join(", ")}`, {
    hint:
      "check the cable / virtual NIC and that a DHCP server answers; phase-diag shows addresses and routes",
  });
}

async function step(
  d: BootDeps,
  name: string,
  args: string[],
  timeoutMs: number,
): Promise<Record<string, unknown>> {
  const program = `${d.paths.bin}/phase-${name}`;
  const r = await d.run(program, args, timeoutMs);
  const json = lastJson(r.stdout);
  if (r.code !== 0) {
    for (
      const rej of Array.isArray(json?.rejected) ? json.rejected as Record<string, unknown>[] : []
    ) {
      d.say(`phase-boot: ${name}: rejected ${rej.url} (${rej.source}): ${rej.reason}`);
    }
    const detail = json && typeof json.message === "string"
      ? `: ${json.code ?? ""} ${json.message}`
      : "";
    throw new BootError("E_STEP", `step '${name}' failed with exit status ${r.code}${detail}`, {
      hint: `its own error is printed above (phase-${name}: error: ...)`,
    });
  }
  if (!json) throw new BootError("E_STEP", `step '${name}' printed no JSON result`);
  return json;
}

/** The newest manifest for channel/arch in the cache (unverified: the next steps verify it). */
export async function cachedRelease(
  cache: string,
  channel: string,
  arch: string,
): Promise<{ manifest: string; artifacts: Record<string, string> } | undefined> {
  const cas = `${cache}/cas/sha256`;
  let best: { version: string; manifest: string; artifacts: Record<string, string> } | undefined;
  let seen = 0;
  try {
    for await (const e of Deno.readDir(cas)) {
      if (++seen > MAX_CACHE_SCAN) break;
      if (!e.isFile || !/^[0-9a-f]{64}$/.test(e.name)) continue;
      const path = `${cas}/${e.name}`;
      const st = await Deno.stat(path);
      if (st.size > MAX_MANIFEST_BYTES || st.size < 2) continue;
      // Capped read: the stat above can race a writer (house style 5).
      const bytes = await readFileCapped(path, MAX_MANIFEST_BYTES);
      if (bytes[0] !== 0x7b) continue; // '{'
      let doc;
      try {
        doc = parseStrictJson(bytes);
      } catch {
        continue;
      }
      if (
        !isJsonObject(doc) || doc.channel !== channel || doc.arch !== arch ||
        typeof doc.version !== "string"
      ) continue;
      const arts = doc.artifacts;
      if (!isJsonObject(arts)) continue;
      const artifacts: Record<string, string> = {};
      for (const name of ["kernel", "initramfs"]) {
        const a = arts[name];
        if (
          !isJsonObject(a) || typeof a.digest !== "string" ||
          !/^sha256:[0-9a-f]{64}$/.test(a.digest)
        ) continue;
        artifacts[name] = `${cas}/${a.digest.slice(7)}`;
      }
      if (!artifacts.kernel || !artifacts.initramfs) continue;
      try {
        if (best && compareVersions(doc.version, best.version) <= 0) continue;
      } catch {
        continue;
      }
      best = { version: doc.version, manifest: path, artifacts };
    }
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return undefined;
    throw err;
  }
  return best && { manifest: best.manifest, artifacts: best.artifacts };
}

/**
 * The on-device rollback floor (TM-02) the fetcher raises in the cache:
 * verify and kexec check it too, also when booting from the cache. Private
 * mode has no persistent floor.
 */
function floorArgs(d: BootDeps): string[] {
  return d.policy.mode === "private" ? [] : ["--state", `${d.paths.cache}/state`];
}

function commonArgs(d: BootDeps): string[] {
  const a = ["--trust", d.paths.trust, "--channel", d.policy.channel, "--arch", d.arch];
  if (d.policy.minVersion) a.push("--min-version", d.policy.minVersion);
  return a;
}

/**
 * Private mode with `allow_tor`: starts tor with its state on tmpfs
 * (`<run>/tor`) and returns it, or undefined (with a loud warning) when
 * the seed has no tor binary. A tor that is there but cannot bootstrap
 * stops the boot: the user asked for Tor, so there is no silent fallback
 * to a direct connection (TM-13).
 */
async function torFor(d: BootDeps): Promise<TorHandle | undefined> {
  let extra: string[] = [];
  try {
    extra = checkTorrcFragment(
      new TextDecoder().decode(await readFileCapped(d.paths.torrc, MAX_TORRC_BYTES)),
    );
    d.say(`phase-boot: tor: ${extra.length} option(s) from ${d.paths.torrc}`);
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
  try {
    const tor = await (d.startTor ?? startTor)({
      torPaths: d.paths.torPaths,
      dataDir: `${d.paths.run}/tor`,
      extraTorrc: extra,
      say: d.say,
    });
    d.say(
      `phase-boot: tor: ready (${tor.torPath}); discovery and fetch go through SOCKS ${tor.socks.hostname}:${tor.socks.port}`,
    );
    return tor;
  } catch (err) {
    if (!(err instanceof TorMissing)) throw err;
    d.say(
      `phase-boot: WARNING: allow_tor is set but this seed has no tor binary (looked at ${
        d.paths.torPaths.join(", ")
      }): fetching WITHOUT Tor`,
    );
    d.log.warn("tor_missing", { paths: d.paths.torPaths, threat: "TM-13" });
    return undefined;
  }
}

/** Discover and fetch over the network; returns manifest and artifact paths. */
async function fromNetwork(d: BootDeps, timings: Record<string, number>, clock: () => number) {
  let t = clock();
  await networkUp(d);
  timings.network = clock() - t;
  d.say(`phase-boot: network up in ${timings.network} ms`);
  let tor: TorHandle | undefined;
  if (d.policy.mode === "private" && d.policy.allowTor) {
    t = clock();
    tor = await torFor(d);
    timings.tor = clock() - t;
  }
  try {
    return await discoverAndFetch(d, timings, clock, tor);
  } finally {
    // Tor is needed only until the artifacts are on tmpfs.
    await tor?.stop();
  }
}

async function discoverAndFetch(
  d: BootDeps,
  timings: Record<string, number>,
  clock: () => number,
  tor: TorHandle | undefined,
) {
  let t: number;
  const socks = tor ? ["--socks", `${tor.socks.hostname}:${tor.socks.port}`] : [];

  t = clock();
  const discoverArgs = [
    "--trust",
    d.paths.trust,
    "--policy",
    d.paths.policy,
    "--cmdline",
    d.paths.cmdline,
    "--arch",
    d.arch,
  ];
  // Local mode: LAN only, never the WAN (DHT) or a manual internet URL.
  if (d.policy.mode === "local") discoverArgs.push("--order", "lan");
  // Over Tor: the manual URL only, through the proxy (discover enforces it).
  discoverArgs.push(...socks);
  const found = await step(d, "discover", discoverArgs, DISCOVER_TIMEOUT_MS);
  timings.discover = clock() - t;
  const candidates = Array.isArray(found.candidates)
    ? found.candidates as Record<string, unknown>[]
    : [];
  for (
    const rej of Array.isArray(found.rejected) ? found.rejected as Record<string, unknown>[] : []
  ) {
    d.say(
      `phase-boot: discover: rejected ${rej.url} (${rej.source}): ${rej.reason}${
        rej.captivePortal ? " [captive portal]" : ""
      }`,
    );
  }
  if (candidates.length === 0) throw new BootError("E_NO_RELEASE", "discovery found no provider");
  const first = candidates[0];
  const url = String(first.manifestUrl);
  d.say(
    `phase-boot: discover: ${candidates.length} candidate(s), using ${url} (${first.source}) in ${timings.discover} ms`,
  );
  await Deno.writeTextFile(`${d.paths.run}/provider`, url + "\n").catch(() => {});

  t = clock();
  const fetchArgs = ["--manifest", url, ...commonArgs(d), ...socks];
  for (const c of candidates.slice(1)) fetchArgs.push("--mirror", String(c.manifestUrl));
  for (const m of Array.isArray(first.mirrors) ? first.mirrors : []) {
    fetchArgs.push("--mirror", String(m));
  }
  let fetched;
  if (d.policy.mode === "private") {
    // TM-13: nothing persistent; the fetcher refuses a root that is not tmpfs.
    fetched = await step(
      d,
      "fetch-private",
      ["--root", d.paths.privateRoot, ...fetchArgs],
      FETCH_TIMEOUT_MS,
    );
  } else {
    fetched = await step(d, "fetch", ["--cache", d.paths.cache, ...fetchArgs], FETCH_TIMEOUT_MS);
  }
  timings.fetch = clock() - t;
  const arts = fetched.artifacts as Record<string, { path: string }> | undefined;
  if (typeof fetched.manifest !== "string" || !arts?.kernel?.path || !arts?.initramfs?.path) {
    throw new BootError("E_STEP", "fetch did not report manifest and artifact paths");
  }
  d.say(
    `phase-boot: fetch: ${fetched.channel}/${fetched.arch} ${fetched.version} in ${timings.fetch} ms`,
  );
  return {
    manifest: fetched.manifest,
    artifacts: { kernel: arts.kernel.path, initramfs: arts.initramfs.path },
  };
}

/** Runs the chain. Returns only on a dry run; a real boot ends in the target kernel. */
export async function runChain(d: BootDeps): Promise<BootOutcome> {
  const clock = d.now ?? (() => Math.round(performance.now()));
  const timings: Record<string, number> = {};
  const p = d.policy;
  d.say(
    `phase-boot: mode ${p.mode}, channel ${p.channel}, arch ${d.arch}${
      p.provider ? `, manual provider ${p.provider}` : ""
    }`,
  );
  if (p.mode === "private") {
    d.say(
      "phase-boot: private mode: tmpfs only, no cache partition, nothing persistent is written",
    );
  }
  let rel: { manifest: string; artifacts: Record<string, string> };
  let source: "network" | "cache" = "network";
  try {
    rel = await fromNetwork(d, timings, clock);
  } catch (err) {
    if (p.mode !== "local" || !p.cacheEnabled) throw err;
    d.say(
      `phase-boot: local mode: network path failed (${(err as Error).message}); trying the cache`,
    );
    const cached = await cachedRelease(d.paths.cache, p.channel, d.arch);
    if (!cached) {
      throw new BootError(
        "E_NO_RELEASE",
        `no provider and no cached ${p.channel}/${d.arch} release`,
        {
          cause: err,
          hint: "boot once in internet mode to fill the cache",
        },
      );
    }
    rel = cached;
    source = "cache";
    d.say(`phase-boot: cache: ${cached.manifest}`);
  }
  const artifactArgs = Object.entries(rel.artifacts).flatMap((
    [n, path],
  ) => ["--artifact", `${n}=${path}`]);
  let t = clock();
  const v = await step(d, "verify", [
    "--manifest",
    rel.manifest,
    ...commonArgs(d),
    ...floorArgs(d),
    ...artifactArgs,
    "--json",
  ], VERIFY_TIMEOUT_MS);
  timings.verify = clock() - t;
  d.say(
    `phase-boot: verify: ok ${v.version}, signed by ${
      (v.signers as string[] | undefined)?.join(", ")
    } in ${timings.verify} ms`,
  );
  t = clock();
  const kexecArgs = [
    "load",
    "--manifest",
    rel.manifest,
    ...commonArgs(d),
    ...floorArgs(d),
    ...artifactArgs,
    "--mode",
    p.mode,
    "--dir",
    d.paths.run,
  ];
  if (d.dryRun) kexecArgs.push("--dry-run");
  else kexecArgs.push("--exec");
  d.say(
    `phase-boot: kexec: loading (${d.dryRun ? "dry run" : "then exec"}); timings ${
      JSON.stringify(timings)
    }`,
  );
  const r = await d.run(`${d.paths.bin}/phase-kexec`, kexecArgs, KEXEC_TIMEOUT_MS);
  timings.kexec = clock() - t;
  // Not in private mode: the fallback writes the target onto the ESP (persistent).
  if (
    r.code !== 0 && !d.dryRun && p.mode !== "private" &&
    (r.code === KEXEC_E_LOAD || r.code === KEXEC_E_EXEC)
  ) {
    d.say(`phase-boot: kexec failed (exit ${r.code}): trying the chainload fallback entry`);
    const fallbackArgs = ["fallback", ...kexecArgs.slice(1).filter((a) => a !== "--exec")];
    const f = await d.run(`${d.paths.bin}/phase-kexec`, fallbackArgs, KEXEC_TIMEOUT_MS);
    d.say(`phase-boot: chainload fallback did not reboot (exit ${f.code})`);
  }
  if (r.code !== 0 || !d.dryRun) {
    // exec never returns on success; here kexec failed (or returned).
    throw new BootError("E_KEXEC", `kexec failed (exit ${r.code})`, {
      hint:
        "phase-kexec printed why above; 'phase-kexec fallback' sets the chainload entry and reboots",
    });
  }
  return { manifest: rel.manifest, artifacts: rel.artifacts, source, timingsMs: timings };
}
