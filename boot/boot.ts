/**
 * The seed's boot chain: network up (busybox udhcpc) -> discover -> fetch
 * -> kexec. Each step is its own entrypoint under its own permission set,
 * started through its launcher; this orchestrator holds no network and no
 * write access beyond /run/phase. Each step's result line is read only
 * through the decoder of the component that prints it. Paths pass between
 * steps, trust never does: fetch verifies what it promotes into the cache,
 * kexec verifies what it stages and loads (docs/architecture.md, "Trust
 * boundaries").
 *
 * @module
 */
import type { Logger } from "../core/mod.ts";
import { EXIT_STATUS, PhaseError, readFileCapped } from "../core/mod.ts";
import {
  compareVersions,
  loadStoredTrust,
  loadTrust,
  MAX_MANIFEST_BYTES,
  readFloor,
  type Trust,
  VerifyError,
  verifyManifest,
} from "../verify/mod.ts";
import {
  type Candidate,
  decodeDiscoverResult,
  decodeFetchResult,
  type DiscoverResult,
  type FetchResult,
  type Policy,
  PROBE_TIMEOUT_MS,
} from "../client/mod.ts";
import { decodeKexecLoadResult } from "../kexec/mod.ts";
import {
  checkTorrcFragment,
  DEFAULT_TOR_PATHS,
  MAX_TORRC_BYTES,
  startTor,
  type TorHandle,
  TorMissing,
  type TorOptions,
} from "../net/mod.ts";

/** Deadline of DHCP on one interface (udhcpc retries inside it). */
export const DHCP_TIMEOUT_MS = 20_000;
/** Deadline of discovery (mDNS + DHT + manual probe). */
export const DISCOVER_TIMEOUT_MS = 60_000;
/** Deadline of fetching a release (TCG guests are slow; the fetcher bounds stalls itself). */
export const FETCH_TIMEOUT_MS = 15 * 60_000;
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
  /** Exit status (137 when the process was killed, e.g. at its deadline). */
  readonly code: number;
  /** What the step printed on stdout, UTF-8 decoded (its last line is its JSON result). */
  readonly stdout: string;
}

/**
 * Starts one program (a launcher or udhcpc) with `args` and returns its
 * exit status and stdout; the process is killed after `timeoutMs`
 * milliseconds. {@link spawnStep} is the real one; tests inject their own.
 */
export type StepRunner = (
  program: string,
  args: readonly string[],
  timeoutMs: number,
) => Promise<StepResult>;

/** Paths the chain uses. */
export interface BootPaths {
  /** Directory of the launchers (`phase-discover`, ...). */
  readonly bin: string;
  /** Trust file (release keys and threshold) passed to every verifying step. */
  readonly trust: string;
  /** Boot policy file (TOML: mode, channel, provider, ...). */
  readonly policy: string;
  /** Copy of the kernel command line (`/proc/cmdline`), which can override the policy. */
  readonly cmdline: string;
  /** Content-addressed cache of releases (local and internet modes; holds the rollback floor). */
  readonly cache: string;
  /** tmpfs directory private mode fetches into (nothing persistent is written). */
  readonly privateRoot: string;
  /** Runtime directory (tmpfs): staging, the chosen provider, the last error. */
  readonly run: string;
  /** The busybox udhcpc binary. */
  readonly udhcpc: string;
  /** udhcpc's script that configures the lease (address, route, DNS). */
  readonly udhcpcScript: string;
  /** Interface names, one a line (init writes it from /sys/class/net). */
  readonly interfaces: string;
  /** Optional torrc fragment for private mode over Tor (bridges, transports). */
  readonly torrc: string;
  /** Where tor may be, in order. */
  readonly torPaths: readonly string[];
}

/** The paths on the seed image (override single members for a test or another layout). */
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
  /** The effective boot policy (mode, channel, provider, ...), loaded once by the caller. */
  readonly policy: Policy;
  /** Architecture of the release to boot. */
  readonly arch: "amd64" | "arm64";
  /** Where the launchers, trust, cache and runtime files are. */
  readonly paths: BootPaths;
  /** Starts each step's process ({@link spawnStep} on a real seed). */
  readonly run: StepRunner;
  /** Structured log events. */
  readonly log: Logger;
  /** Console lines for the person at the machine. */
  readonly say: (line: string) => void;
  /**
   * A Secure Boot seed's dm-verity parameters (`ROOTHASH:SALT:BLOCKS`, from
   * its signed command line): kexec hands them to the target, which opens
   * the seed partition through dm-verity too (TM-14).
   */
  readonly seedVerity?: string;
  /**
   * The digest of the bytes on the seed's own partition (`sha256:<hex>`,
   * from `phase.seed_rootfs`): fetch does not download an artifact with
   * that signed digest (the release's rootfs is the seed's squashfs).
   */
  readonly seedRootfs?: string;
  /** Stop after loading (kexec dry run). */
  readonly dryRun?: boolean;
  /** Monotonic milliseconds for the timings. */
  readonly clock?: () => number;
  /** Wall clock (ms since the epoch) for expiry when choosing a cached release. */
  readonly now?: () => number;
  /** Starts tor (tests inject the test network's options through `paths.torrc`). */
  readonly startTor?: (o: TorOptions) => Promise<TorHandle>;
}

/** What a successful chain did (it returns only from a dry run). */
export interface BootOutcome {
  /** Path of the verified manifest that was loaded. */
  readonly manifest: string;
  /** Path of each artifact handed to kexec, by name (`kernel`, `initramfs`). */
  readonly artifacts: Readonly<Record<string, string>>;
  /** Whether the release came over the network or from the local cache. */
  readonly source: "network" | "cache";
  /** Duration of each step (`network`, `tor`, `discover`, `fetch`, `kexec`), in milliseconds. */
  readonly timingsMs: Readonly<Record<string, number>>;
}

/**
 * The real {@link StepRunner}: runs a program with piped stdout (at most
 * 1 MiB kept), stdin closed and the console as stderr, and kills it with
 * SIGKILL at its deadline.
 */
export const spawnStep: StepRunner = async (program, args, timeoutMs): Promise<StepResult> => {
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

/**
 * Runs step `name` and returns its stdout when it exited 0. A failed step
 * is E_STEP (its own error went to the console); `onFailure` may still read
 * what it printed (discover prints its rejected candidates before failing).
 */
async function step(
  d: BootDeps,
  name: string,
  args: string[],
  timeoutMs: number,
  onFailure?: (stdout: string) => void,
): Promise<string> {
  const program = `${d.paths.bin}/phase-${name}`;
  const r = await d.run(program, args, timeoutMs);
  if (r.code !== 0) {
    onFailure?.(r.stdout);
    throw new BootError("E_STEP", `step '${name}' failed with exit status ${r.code}`, {
      hint: `its own error is printed above (phase-${name}: error: ...)`,
    });
  }
  return r.stdout;
}

/** Decodes a step's result line; a malformed line is E_STEP naming the step. */
function decoded<T>(name: string, decode: () => T): T {
  try {
    return decode();
  } catch (err) {
    throw new BootError(
      "E_STEP",
      `step '${name}' printed a malformed result: ${(err as Error).message}`,
      { cause: err, hint: "the step and phase-boot come from the same seed: rebuild it" },
    );
  }
}

function sayRejected(d: BootDeps, found: DiscoverResult): void {
  for (const rej of found.rejected) {
    d.say(
      `phase-boot: discover: rejected ${rej.url} (${rej.source}): ${rej.reason}${
        rej.captivePortal ? " [captive portal]" : ""
      }`,
    );
  }
}

/** What {@link cachedRelease} checks each cached manifest against. */
export interface CacheSelection {
  /** The trusted release keys and threshold. */
  readonly trust: Trust;
  /** Release channel the manifest must name (`stable`, ...). */
  readonly channel: string;
  /** Architecture the manifest must name (`amd64`, `arm64`). */
  readonly arch: string;
  /** Lowest version accepted, if any. */
  readonly minVersion?: string;
  /** The on-device rollback floor (TM-02). */
  readonly floor?: string;
  /** Time to check expiry against (default: now). */
  readonly now?: Date;
  /** Told about every manifest skipped, and why. */
  readonly log?: Logger;
}

/** A release found in the cache whose manifest verified. */
export interface CachedRelease {
  /** Path of the manifest in the cache. */
  readonly manifest: string;
  /** Its release version. */
  readonly version: string;
  /** CAS path of `kernel` and `initramfs`, by name (not re-hashed here: kexec does that). */
  readonly artifacts: Readonly<Record<string, string>>;
}

/**
 * The newest cached release whose manifest VERIFIES (trust, channel, arch,
 * expiry, min version, floor), with its artifacts' CAS paths. Anyone who
 * can write the cache partition can plant a manifest there, and releases
 * expire: a newer invalid, expired, other-arch or planted manifest is
 * skipped with a log line, so it cannot stop a local boot of the newest
 * valid one (TM-02, TM-11). The kexec step verifies the chosen manifest
 * again before it loads anything; this check only chooses.
 */
export async function cachedRelease(
  cache: string,
  sel: CacheSelection,
): Promise<CachedRelease | undefined> {
  const cas = `${cache}/cas/sha256`;
  let best: CachedRelease | undefined;
  let seen = 0;
  const skip = (path: string, reason: string, code?: string) =>
    sel.log?.info("cache_manifest_skipped", { path, reason, ...(code ? { code } : {}) });
  try {
    for await (const e of Deno.readDir(cas)) {
      if (++seen > MAX_CACHE_SCAN) {
        sel.log?.warn("cache_scan_capped", { dir: cas, max: MAX_CACHE_SCAN });
        break;
      }
      if (!e.isFile || !/^[0-9a-f]{64}$/.test(e.name)) continue;
      const path = `${cas}/${e.name}`;
      const st = await Deno.stat(path);
      if (st.size > MAX_MANIFEST_BYTES || st.size < 2) continue;
      // Capped read: the stat above can race a writer (house style 5).
      const bytes = await readFileCapped(path, MAX_MANIFEST_BYTES);
      if (bytes[0] !== 0x7b) continue; // '{': artifacts are not manifests, skip them quietly.
      let verified;
      try {
        verified = verifyManifest(bytes, sel.trust, {
          channel: sel.channel,
          arch: sel.arch,
          now: sel.now,
          minVersion: sel.minVersion,
          floor: sel.floor,
        });
      } catch (err) {
        if (!(err instanceof VerifyError)) throw err;
        skip(path, err.message, err.code);
        continue;
      }
      const m = verified.value;
      const artifacts: Record<string, string> = {};
      for (const name of ["kernel", "initramfs"]) {
        const a = m.artifacts[name];
        if (a) artifacts[name] = `${cas}/${a.digest.slice("sha256:".length)}`;
      }
      if (!artifacts.kernel || !artifacts.initramfs) {
        skip(path, "the manifest has no kernel or no initramfs");
        continue;
      }
      if (best && compareVersions(m.version, best.version) <= 0) {
        skip(path, `version ${m.version} is not newer than ${best.version}`);
        continue;
      }
      if (best) skip(best.manifest, `version ${best.version} is older than ${m.version}`);
      best = { version: m.version, manifest: path, artifacts };
    }
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return undefined;
    throw err;
  }
  return best;
}

/**
 * The state directory of the rollback floor (TM-02) and the accepted trust
 * versions (TM-09) the fetcher keeps: kexec checks the floor and verifies
 * under the newest trust there, also when booting from the cache. Private
 * mode's state is its tmpfs root's (`fetch-private` wrote it this boot;
 * nothing persistent).
 */
export function stateDir(d: Pick<BootDeps, "policy" | "paths">): string {
  return d.policy.mode === "private" ? `${d.paths.privateRoot}/state` : `${d.paths.cache}/state`;
}

function stateArgs(d: BootDeps): string[] {
  return ["--state", stateDir(d)];
}

function commonArgs(d: BootDeps): string[] {
  const a = ["--trust", d.paths.trust, "--channel", d.policy.channel, "--arch", d.arch];
  if (d.policy.minVersion) a.push("--min-version", d.policy.minVersion);
  return a;
}

/**
 * What fetch need not download: the seed partition's bytes. Nothing before
 * kexec reads the rootfs; the target copies it from the partition and
 * hashes the copy against the signed `phase.rootfs` before it mounts it
 * (TM-01), and a release whose rootfs differs is downloaded as before.
 */
function haveArgs(d: BootDeps): string[] {
  return d.seedRootfs ? ["--have", d.seedRootfs] : [];
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

/**
 * The policy, once: phase-boot loaded and validated it (file + kernel
 * command line); discover gets the effective values as flags and reads
 * neither the policy file nor the command line itself.
 */
export function discoverPolicyArgs(policy: Policy, arch: string): string[] {
  const a = ["--arch", arch, "--mode", policy.mode, "--channel", policy.channel];
  if (policy.provider) {
    a.push("--provider", policy.provider);
    if (policy.providerFromCmdline) a.push("--provider-first");
  }
  for (const b of policy.bootstrap) a.push("--bootstrap", b);
  return a;
}

async function discoverAndFetch(
  d: BootDeps,
  timings: Record<string, number>,
  clock: () => number,
  tor: TorHandle | undefined,
): Promise<{ manifest: string; artifacts: Record<string, string> }> {
  const socks = tor ? ["--socks", `${tor.socks.hostname}:${tor.socks.port}`] : [];
  const cmdline = d.policy.providerFromCmdline ? d.policy.provider : undefined;
  if (cmdline) {
    // Issue 17: the operator named the provider on the command line, so
    // no discovery process is started for it (one Deno start, ~1.5 s under
    // TCG): fetch asks it at once and verifies what it serves like any
    // candidate's (TM-01, TM-02). If that fails (down, a captive portal
    // answering in its place: TM-15), discovery runs as it always did
    // (the URL's /health first, then LAN and DHT) and fetch runs again.
    d.say(
      `phase-boot: discover: not run, the command line names ${cmdline}; fetch verifies what it serves`,
    );
    try {
      // A URL that is down fails here within discover's own probe deadline
      // (not fetch's 10 s), so an address that drops packets delays the
      // fallback to discovery no more than it did before. Over Tor,
      // circuits take seconds: fetch keeps its Tor limits.
      const firstAnswer = tor ? [] : ["--headers-timeout", `${PROBE_TIMEOUT_MS / 1000}s`];
      return await fetchFrom(
        d,
        {
          first: { manifestUrl: cmdline, mirrors: [], providers: [], source: "cmdline" },
          others: [],
          extra: [...socks, ...firstAnswer],
          tor,
        },
        timings,
        clock,
      );
    } catch (err) {
      if (!(err instanceof BootError)) throw err;
      d.say(
        `phase-boot: fetch from the command-line provider failed (${err.message}): discovering`,
      );
      d.log.warn("cmdline_fetch_failed", { url: cmdline, error: err.message });
    }
  }

  const t = clock();
  // Local mode (LAN only) and Tor (manual URL only) are discover's own rules.
  const discoverArgs = [
    "--trust",
    d.paths.trust,
    // TM-09: DHT records are checked under the newest trust fetch accepted.
    ...stateArgs(d),
    ...discoverPolicyArgs(d.policy, d.arch),
    ...socks,
  ];
  const stdout = await step(d, "discover", discoverArgs, DISCOVER_TIMEOUT_MS, (out) => {
    try {
      sayRejected(d, decodeDiscoverResult(out));
    } catch { /* failed without a result line: its error is on the console */ }
  });
  const found = decoded("discover", () => decodeDiscoverResult(stdout));
  timings.discover = clock() - t;
  sayRejected(d, found);
  const candidates = found.candidates;
  if (candidates.length === 0) {
    throw new BootError("E_NO_RELEASE", "discovery found no provider", {
      hint:
        "start a provider on this network ('deno task serve --host 0.0.0.0'), or set phase.provider=URL on the kernel command line",
    });
  }
  const first = candidates[0];
  d.say(
    `phase-boot: discover: ${candidates.length} candidate(s), using ${first.manifestUrl} (${first.source}) in ${timings.discover} ms`,
  );
  return await fetchFrom(
    d,
    { first, others: candidates.slice(1), extra: socks, tor },
    timings,
    clock,
  );
}

/** What one fetch run asks for, and how. */
interface FetchPlan {
  /** The candidate fetched from. */
  readonly first: Candidate;
  /** The other candidates, passed as mirrors. */
  readonly others: readonly Candidate[];
  /** More fetch flags: `--socks` over Tor, `--headers-timeout` for a command-line provider. */
  readonly extra: readonly string[];
  /** The Tor client when the boot goes over Tor (then no LAN re-discovery, TM-13). */
  readonly tor: TorHandle | undefined;
}

/** Runs fetch (or fetch-private) for `plan.first`, the others as mirrors. */
async function fetchFrom(
  d: BootDeps,
  { first, others, extra, tor }: FetchPlan,
  timings: Record<string, number>,
  clock: () => number,
): Promise<{ manifest: string; artifacts: Record<string, string> }> {
  const url = first.manifestUrl;
  await Deno.writeTextFile(`${d.paths.run}/provider`, url + "\n").catch(() => {});

  const t = clock();
  const fetchArgs = ["--manifest", url, ...commonArgs(d), ...haveArgs(d), ...extra];
  for (const c of others) fetchArgs.push("--mirror", c.manifestUrl);
  for (const m of first.mirrors) fetchArgs.push("--mirror", m);
  // Issue 12 §4: in a boot storm, machines that booted first re-serve the
  // release on the LAN; fetch asks mDNS again during the download and moves
  // the rest to them (hints, checked by digest: TM-07). Never in private
  // mode nor over Tor (TM-13: an mDNS query announces this machine).
  if (d.policy.mode !== "private" && !tor) fetchArgs.push("--rediscover");
  // The peers that claim this release (mDNS, DHT provider records): fetch
  // asks them for /cas/sha256/<hex> and, with the CID, /ipfs/<cid> for the
  // manifest, so the release still comes when its URL stops answering.
  // Hints (TM-07, TM-08): fetch verifies the manifest and every digest.
  for (const p of first.providers) if (/^https?:\/\//.test(p)) fetchArgs.push("--provider", p);
  if (first.manifestCid) fetchArgs.push("--cid", first.manifestCid);
  // TM-13: private mode writes nothing persistent; the fetcher refuses a root that is not tmpfs.
  const [name, where] = d.policy.mode === "private"
    ? ["fetch-private", ["--root", d.paths.privateRoot]]
    : ["fetch", ["--cache", d.paths.cache]];
  const out = await step(d, name, [...where, ...fetchArgs], FETCH_TIMEOUT_MS);
  const fetched: FetchResult = decoded(name, () => decodeFetchResult(out, name));
  timings.fetch = clock() - t;
  const kernel = fetched.artifacts.kernel?.path;
  const initramfs = fetched.artifacts.initramfs?.path;
  if (!kernel || !initramfs) {
    throw new BootError("E_STEP", `step '${name}' reported no kernel or no initramfs`);
  }
  d.say(
    `phase-boot: fetch: ${fetched.channel}/${fetched.arch} ${fetched.version} in ${timings.fetch} ms`,
  );
  return { manifest: fetched.manifest, artifacts: { kernel, initramfs } };
}

/**
 * Local mode, network path failed: the newest cached release that verifies.
 * Private mode never gets here (no cache); the floor is the cache's own.
 */
async function fromCache(d: BootDeps, cause: unknown) {
  const p = d.policy;
  const say = (path: string, reason: string) =>
    d.say(`phase-boot: cache: skipped ${path}: ${reason}`);
  const log: Logger = {
    info: (event, fields = {}) => {
      d.log.info(event, fields);
      if (event === "cache_manifest_skipped") say(String(fields.path), String(fields.reason));
    },
    warn: (e, f) => d.log.warn(e, f),
    error: (e, f) => d.log.error(e, f),
  };
  const cached = await cachedRelease(d.paths.cache, {
    // TM-09: the newest trust version the fetcher accepted, re-verified from the pinned file.
    trust: (await loadStoredTrust(
      `${d.paths.cache}/state`,
      await loadTrust(d.paths.trust, { permissionSet: "boot" }),
      d.now ? new Date(d.now()) : undefined,
    )).trust,
    channel: p.channel,
    arch: d.arch,
    minVersion: p.minVersion,
    floor: await readFloor(`${d.paths.cache}/state`, p.channel, d.arch),
    now: d.now ? new Date(d.now()) : undefined,
    log,
  });
  if (!cached) {
    throw new BootError(
      "E_NO_RELEASE",
      `no provider and no cached ${p.channel}/${d.arch} release that verifies`,
      { cause, hint: "boot once in internet mode to fill the cache" },
    );
  }
  d.say(`phase-boot: cache: ${cached.manifest} (${cached.version})`);
  return cached;
}

/**
 * Runs the chain: network, discover, fetch (local mode: or the newest
 * cached release that verifies), kexec load, then exec. Returns only on a
 * dry run (`dryRun`: stop after the load); a real boot ends in the target
 * kernel. Throws {@link BootError} naming the step that failed.
 */
export async function runChain(d: BootDeps): Promise<BootOutcome> {
  const clock = d.clock ?? (() => Math.round(performance.now()));
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
  let rel: { manifest: string; artifacts: Readonly<Record<string, string>> };
  let source: "network" | "cache" = "network";
  try {
    rel = await fromNetwork(d, timings, clock);
  } catch (err) {
    if (p.mode !== "local" || !p.cacheEnabled) throw err;
    d.say(
      `phase-boot: local mode: network path failed (${(err as Error).message}); trying the cache`,
    );
    rel = await fromCache(d, err);
    source = "cache";
  }
  const artifactArgs = Object.entries(rel.artifacts).flatMap((
    [n, path],
  ) => ["--artifact", `${n}=${path}`]);
  // No separate verify step: kexec load verifies the manifest, copies and
  // re-hashes exactly what it loads (the trust boundary at the process
  // that acts on the bytes, TM-11).
  const t = clock();
  // What `load` and `fallback` both verify and stage.
  const stageArgs = [
    "--manifest",
    rel.manifest,
    ...commonArgs(d),
    ...stateArgs(d),
    ...artifactArgs,
    "--mode",
    p.mode,
    "--dir",
    d.paths.run,
  ];
  const kexecArgs = ["load", ...stageArgs];
  // The chainload fallback never takes it: it is disabled under Secure Boot.
  if (d.seedVerity) kexecArgs.push("--seed-verity", d.seedVerity);
  if (d.dryRun) kexecArgs.push("--dry-run");
  else kexecArgs.push("--exec");
  d.say(
    `phase-boot: kexec: verifying and loading (${d.dryRun ? "dry run" : "then exec"}); timings ${
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
    const fallbackArgs = ["fallback", ...stageArgs];
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
  const loaded = decoded("kexec", () => decodeKexecLoadResult(r.stdout));
  d.say(
    `phase-boot: kexec: dry run: ${loaded.channel}/${loaded.arch} ${loaded.version} verified and staged; would run ${
      loaded.argv.join(" ")
    }`,
  );
  return { manifest: rel.manifest, artifacts: rel.artifacts, source, timingsMs: timings };
}
