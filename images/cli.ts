/**
 * The `phase-images` command.
 *
 * @module
 */
import { consoleLogger, UsageError } from "../core/mod.ts";
import { KEYS_DIR, parseFlags, TRUST_FILE } from "../cli/mod.ts";
import { isKeyid, isVersion } from "../verify/mod.ts";
import { checkTorrcFragment } from "../net/mod.ts";
import { buildImages, DEFAULT_SOURCE_DATE_EPOCH } from "./build.ts";

/** The flags of `deno task images` (its `--help` lists each one; testing/help_test.ts checks). */
export const IMAGES_FLAGS = {
  arch: { type: "string" },
  out: { type: "string" },
  artifacts: { type: "string" },
  channel: { type: "string" },
  version: { type: "string" },
  keys: { type: "string" },
  provider: { type: "string" },
  cmdline: { type: "string" },
  kernel: { type: "string" },
  sysroot: { type: "string" },
  deno: { type: "string" },
  "no-release": { type: "boolean" },
  "with-tor": { type: "boolean" },
  "allow-tor": { type: "boolean" },
  torrc: { type: "string" },
  "secure-boot": { type: "boolean" },
  "db-key": { type: "string" },
  "db-cert": { type: "string" },
  "unsafe-test-key": { type: "boolean" },
  "node-allow": { type: "string", multiple: true },
  "unsafe-node-open": { type: "boolean" },
  "target-bootstrap": { type: "string", multiple: true },
} as const;

const USAGE =
  "deno task images --arch amd64|arm64 --out DIR [--artifacts DIR] [--channel C] [--version V] [--keys DIR] [--provider URL] [--cmdline STR] [--kernel FILE] [--sysroot DIR --deno FILE (arm64)] [--no-release] [--with-tor] [--allow-tor] [--torrc FILE] [--secure-boot --db-key KEY --db-cert CERT [--unsafe-test-key]] [--node-allow KEYID]... [--unsafe-node-open] [--target-bootstrap MULTIADDR]...";

function today(now: Date): string {
  const p = (n: number) => String(n).padStart(2, "0");
  return `${now.getUTCFullYear()}.${p(now.getUTCMonth() + 1)}.${p(now.getUTCDate())}.${
    p(now.getUTCHours())
  }${p(now.getUTCMinutes())}`;
}

/** Runs phase-images; returns the exit status. */
export async function runImages(args: string[]): Promise<number> {
  const { values } = parseFlags(args, IMAGES_FLAGS, USAGE);
  const log0 = { warn: (m: string) => console.error(`phase-images: warning: ${m}`) };
  const arch = values.arch ?? "amd64";
  if (arch !== "amd64" && arch !== "arm64") {
    throw new UsageError(`--arch must be amd64 or arm64, got '${arch}'`, USAGE);
  }
  if (!values.out) throw new UsageError("missing --out DIR", USAGE);
  const now = new Date();
  const version = values.version ?? today(now);
  if (!isVersion(version)) throw new UsageError(`bad --version '${version}'`, USAGE);
  const epochText = Deno.env.get("SOURCE_DATE_EPOCH");
  const epoch = epochText && /^\d+$/.test(epochText)
    ? Number(epochText)
    : DEFAULT_SOURCE_DATE_EPOCH;
  let torrc: string | undefined;
  if (values.torrc) {
    try {
      torrc = await Deno.readTextFile(values.torrc);
    } catch (err) {
      throw new UsageError(`cannot read --torrc ${values.torrc}: ${(err as Error).message}`, USAGE);
    }
    // Before anything is built: a fragment the boot would refuse (TM-13).
    try {
      checkTorrcFragment(torrc);
    } catch (err) {
      throw new UsageError(`--torrc ${values.torrc}: ${(err as Error).message}`, USAGE);
    }
  }
  if (values["allow-tor"] && !values["with-tor"]) {
    log0.warn("--allow-tor without --with-tor: a private boot will warn and fetch WITHOUT Tor");
  }
  const secureBoot = values["secure-boot"]
    ? {
      key: values["db-key"] ?? "",
      cert: values["db-cert"] ?? "",
      unsafeTestKey: values["unsafe-test-key"] ?? false,
    }
    : undefined;
  if (secureBoot && (!secureBoot.key || !secureBoot.cert)) {
    throw new UsageError("--secure-boot needs --db-key KEY.pem and --db-cert CERT.pem", USAGE);
  }
  if (!secureBoot && (values["db-key"] || values["db-cert"] || values["unsafe-test-key"])) {
    throw new UsageError("--db-key, --db-cert and --unsafe-test-key need --secure-boot", USAGE);
  }
  const nodeAllow = values["node-allow"] ?? [];
  for (const k of nodeAllow) {
    if (!isKeyid(k)) {
      throw new UsageError(
        `--node-allow takes a keyid ed25519:<64 hex>, got '${k}'`,
        "'deno task job key' prints a submitter's keyid",
      );
    }
  }
  if (values["unsafe-node-open"]) {
    log0.warn(
      "--unsafe-node-open: the booted target's node will accept jobs from ANY peer on its network",
    );
  }
  const targetBootstrap = values["target-bootstrap"] ?? [];
  for (const b of targetBootstrap) {
    // One word of the signed command line, split on commas by the target and the policy.
    if (!/^\/[A-Za-z0-9._/:-]+$/.test(b)) {
      throw new UsageError(
        `--target-bootstrap takes a multiaddr (/ip4/A/tcp/P/p2p/ID), got '${b}'`,
        "a DHT node's multiaddr: 'deno task serve' logs it (dht_started)",
      );
    }
  }
  const node = nodeAllow.length || values["unsafe-node-open"]
    ? { accept: nodeAllow, unsafeOpen: values["unsafe-node-open"] ?? false }
    : undefined;
  await Deno.mkdir("/tmp/phase", { recursive: true });
  const work = await Deno.makeTempDir({ dir: "/tmp/phase", prefix: "images-" });
  const log = consoleLogger("images");
  const t0 = performance.now();
  try {
    const r = await buildImages({
      arch,
      out: values.out,
      artifacts: values.artifacts ?? "./artifacts",
      channel: values.channel ?? "stable",
      version,
      keyDir: values.keys ?? KEYS_DIR,
      trustFile: values.keys ? undefined : TRUST_FILE,
      epoch,
      repo: Deno.cwd(),
      kernel: values.kernel,
      sysroot: values.sysroot,
      denoBin: values.deno,
      provider: values.provider,
      extraCmdline: values.cmdline,
      work,
      now,
      log,
      skipRelease: values["no-release"] ?? false,
      withTor: values["with-tor"] ?? false,
      allowTor: values["allow-tor"] ?? false,
      torrc,
      secureBoot,
      node,
      targetBootstrap,
    });
    console.log(
      `phase-images: built ${r.outputs.length} outputs in ${values.out} in ${
        ((performance.now() - t0) / 1000).toFixed(1)
      } s`,
    );
    for (const o of r.outputs) console.log(`  ${values.out}/${o}`);
    if (r.release) console.log(`phase-images: release ${r.release}`);
    return 0;
  } finally {
    await Deno.remove(work, { recursive: true }).catch(() => {});
  }
}
