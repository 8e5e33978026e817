/**
 * Entrypoint `phase-discover`: LAN (mDNS), WAN (DHT), manual URL; prints
 * ranked candidates as JSON on stdout. Exit 0 when at least one usable
 * candidate was found, E_CAPTIVE when only captive portals answered,
 * E_NO_CANDIDATE otherwise.
 *
 * @module
 */
import {
  consoleLogger,
  explainFsError,
  type Logger,
  readFileCapped,
  UsageError,
} from "../../core/mod.ts";
import { main, parseDurationMs, parseFlags, parseIntFlag, printResult } from "../../cli/mod.ts";
import { discoverLines } from "../_output.ts";
import { queryServices } from "../../mdns/mod.ts";
import { hostArch, loadStoredTrust, loadTrust, MAX_CMDLINE_FILE_BYTES } from "../../verify/mod.ts";
import { discover, type DiscoverResult, type MdnsAnswer, type Step } from "../discover.ts";
import { dhtLookup, dhtProviderLookup } from "../_dht.ts";
import { ClientError } from "../errors.ts";
import { loadPolicy, type Policy, policyFromValues } from "../policy.ts";
import { parseSocksAddress, socksFetch, TOR_PROBE_TIMEOUT_MS } from "../../net/mod.ts";
import { DISCOVER_HELP } from "./_help.ts";

const USAGE =
  "deno task discover [--trust /etc/phase/trust.json] [--policy /etc/phase/policy.toml] " +
  "[--cmdline /proc/cmdline|/run/phase/cmdline] [--arch A] [--interface IPv4]... [--bootstrap MULTIADDR]... [--order lan,wan,manual] " +
  "[--mdns-timeout 2s] [--dht-timeout 5s] [--mdns-port 5353] [--no-probe] [--socks HOST:PORT] [--state DIR]\n" +
  "  or, with a policy another process loaded (phase-boot): --mode M --channel C [--provider URL [--provider-first]]\n" +
  "  [--bootstrap MULTIADDR]... (then neither --policy nor --cmdline: nothing is read twice)";

/** The flags of `deno task discover` (its `--help` lists each one; testing/help_test.ts checks). */
export const DISCOVER_FLAGS = {
  trust: { type: "string" },
  state: { type: "string" },
  policy: { type: "string" },
  cmdline: { type: "string" },
  arch: { type: "string" },
  interface: { type: "string", multiple: true },
  bootstrap: { type: "string", multiple: true },
  order: { type: "string" },
  "mdns-timeout": { type: "string" },
  "dht-timeout": { type: "string" },
  "mdns-port": { type: "string" },
  "no-probe": { type: "boolean" },
  socks: { type: "string" },
  mode: { type: "string" },
  channel: { type: "string" },
  provider: { type: "string" },
  "provider-first": { type: "boolean" },
  json: { type: "boolean" },
} as const;

/** Default trust file. */
export const DEFAULT_TRUST = "/etc/phase/trust.json";
/** Default policy file. */
export const DEFAULT_POLICY_PATH = "/etc/phase/policy.toml";
/** Where the kernel command line is read, in order (the second: a copy made by the initramfs init). */
export const DEFAULT_CMDLINES = ["/proc/cmdline", "/run/phase/cmdline"];

function localIPv4(): string[] {
  return Deno.networkInterfaces()
    .filter((i) => i.family === "IPv4" && !i.address.startsWith("127."))
    .map((i) => i.address);
}

/**
 * The policy file plus the kernel command line, for discover run by hand.
 * Deno 2.9 refuses every read under /proc to a scoped permission set, so
 * by default the copy the initramfs init makes in /run/phase/cmdline is
 * read when /proc/cmdline is refused; an unreadable command line is
 * reported and skipped rather than fatal.
 */
async function policyFromFiles(
  policyPath: string | undefined,
  cmdlinePath: string | undefined,
  logger: Logger,
): Promise<Policy> {
  let cmdline: string | undefined;
  for (const path of cmdlinePath ? [cmdlinePath] : DEFAULT_CMDLINES) {
    try {
      cmdline = new TextDecoder().decode(await readFileCapped(path, MAX_CMDLINE_FILE_BYTES));
      break;
    } catch (err) {
      logger.warn("cmdline_unreadable", { path, error: explainFsError(err, path, "discover") });
    }
  }
  const { policy, ignored } = await loadPolicy({
    policyPath: policyPath ?? DEFAULT_POLICY_PATH,
    cmdline,
  });
  if (ignored.length) logger.info("cmdline_ignored", { words: ignored });
  return policy;
}

/** Runs `discover` with `args`; returns the exit status. */
export async function run(args: string[]): Promise<number> {
  const { values } = parseFlags(args, DISCOVER_FLAGS, USAGE);
  const logger = consoleLogger("discover");
  const socks = values.socks ? parseSocksAddress(values.socks) : undefined;
  const trustPath = values.trust ?? DEFAULT_TRUST;
  const pinned = await loadTrust(trustPath, { permissionSet: "discover" });
  // TM-09: DHT records are checked under the newest trust version this
  // device can reach: from the newest it accepted (re-verified from the
  // pinned file), discover walks the chain its candidate sources serve,
  // read-only (fetch is what persists), so a record signed only by a
  // rotated-in key counts and one signed only by a retired key does not,
  // even before the first fetch after a rotation and on a private boot.
  const stored = values.state !== undefined
    ? await loadStoredTrust(values.state, pinned)
    : { trust: pinned, floor: undefined };
  const fromBoot = values.mode !== undefined || values.channel !== undefined ||
    values.provider !== undefined || values["provider-first"] !== undefined;
  let policy: Policy;
  let extraBootstrap = values.bootstrap ?? [];
  if (fromBoot) {
    // The policy was loaded once, by phase-boot: take its effective values
    // (validated again here: flags are input) and read no file.
    if (values.policy !== undefined || values.cmdline !== undefined) {
      throw new UsageError(
        "--mode/--channel/--provider carry a loaded policy: give them or --policy/--cmdline, not both",
        USAGE,
      );
    }
    policy = policyFromValues({
      mode: values.mode,
      channel: values.channel,
      provider: values.provider,
      providerFirst: values["provider-first"],
      bootstrap: values.bootstrap,
    });
    extraBootstrap = [];
  } else {
    policy = await policyFromFiles(values.policy, values.cmdline, logger);
  }
  let order: Step[] | undefined;
  if (socks) {
    // TM-13: over Tor only the manual URL is asked, through the proxy. An
    // mDNS query announces the machine to the LAN and a DHT lookup talks to
    // peers directly; neither can go through SOCKS.
    if (values.order && values.order !== "manual") {
      throw new UsageError("--socks allows only the manual step (--order manual)", USAGE);
    }
    order = ["manual"];
    logger.info("socks_only", { proxy: values.socks, skipped: ["lan", "wan"], threat: "TM-13" });
  } else if (values.order) {
    order = values.order.split(",") as Step[];
    for (const s of order) {
      if (s !== "lan" && s !== "wan" && s !== "manual") {
        throw new UsageError(`--order: unknown step '${s}'`, USAGE);
      }
    }
  }
  const mdnsPort = parseIntFlag(values["mdns-port"], "mdns-port", { min: 1, max: 65535 }, USAGE);
  const interfaces = values.interface ?? localIPv4();
  const bootstrap = [...policy.bootstrap, ...extraBootstrap];
  const mdns = async (timeoutMs: number): Promise<MdnsAnswer[]> => {
    const all = await Promise.all(
      interfaces.map((ip) =>
        queryServices({ interfaceAddress: ip, timeoutMs, port: mdnsPort }).catch((err) => {
          logger.warn("mdns_interface_failed", { interface: ip, error: (err as Error).message });
          return [];
        })
      ),
    );
    return all.flat();
  };
  // The one result line the boot orchestrator and `fetch --candidates`
  // decode (client/results.ts decodeDiscoverResult).
  const result: DiscoverResult = await discover({
    policy,
    trust: stored.trust,
    trustWalk: { floor: stored.floor },
    arch: values.arch ?? policy.arch ?? hostArch(),
    mdns: interfaces.length ? mdns : undefined,
    dht: bootstrap.length ? dhtLookup(bootstrap, logger) : undefined,
    dhtProviders: bootstrap.length ? dhtProviderLookup(bootstrap, logger) : undefined,
    order,
    mdnsTimeoutMs: values["mdns-timeout"]
      ? parseDurationMs(values["mdns-timeout"], "mdns-timeout")
      : undefined,
    dhtTimeoutMs: values["dht-timeout"]
      ? parseDurationMs(values["dht-timeout"], "dht-timeout")
      : undefined,
    probe: !values["no-probe"],
    fetchFn: socks ? socksFetch(socks) : undefined,
    probeTimeoutMs: socks ? TOR_PROBE_TIMEOUT_MS : undefined,
    logger,
  });
  // A terminal gets lines; a pipe (phase-boot, fetch --candidates -) or --json the JSON line.
  printResult(result, () => discoverLines(result), { json: values.json });
  if (result.candidates.length > 0) return 0;
  if (result.rejected.some((r) => r.captivePortal)) {
    throw new ClientError(
      "E_CAPTIVE",
      "only captive portals answered; no provider is usable (TM-15)",
      {
        hint:
          "log in to the network elsewhere, or give a manual URL with phase.provider= on the kernel command line",
      },
    );
  }
  throw new ClientError(
    "E_NO_CANDIDATE",
    "no provider found on the LAN, the DHT or the manual URL",
    {
      hint:
        'set provider = "http://host:8080/stable/amd64/manifest.json" in /etc/phase/policy.toml or phase.provider= on the kernel command line',
    },
  );
}

if (import.meta.main) {
  await main({
    name: "discover",
    permissionSet: "discover",
    help: DISCOVER_HELP,
    run,
  });
}
