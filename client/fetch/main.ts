/**
 * Entrypoint `phase-fetch`: fetch a verified release into the
 * content-addressed cache (or, with `--private`, into a tmpfs root).
 * Exit 0 only when every artifact is in the cache and verified.
 *
 * @module
 */
import {
  consoleLogger,
  type Logger,
  PhaseError,
  readFileCapped,
  UsageError,
} from "../../core/mod.ts";
import { main, parseDurationMs, parseFlags, printResult } from "../../cli/mod.ts";
import { fetchLines } from "../_output.ts";
import { hostArch, isArtifactDigest, loadTrust } from "../../verify/mod.ts";
import {
  type FetchCandidate,
  fetchFromCandidates,
  fetchRelease,
  type Rediscover,
  REDISCOVER_INTERVAL_MS,
} from "../fetch.ts";
import { discoverProviders } from "../discover.ts";
import { policyFromValues } from "../policy.ts";
import { queryServices } from "../../mdns/mod.ts";
import { DEFAULT_LIMITS, parseSocksAddress, socksFetch, TOR_LIMITS } from "../../net/mod.ts";
import { checkPrivateTree, preparePrivateRoot } from "../private.ts";
import { humanBytes, progressReporter, type ProgressSnapshot } from "../progress.ts";
import { cacheLayout, digestHex } from "../cache.ts";
import { fetchHelp } from "./_help.ts";
import { decodeDiscoverResult, type FetchResult, type FetchResultArtifact } from "../results.ts";

const USAGE =
  "deno task fetch --manifest URL --trust FILE --cache DIR [--mirror URL]... [--provider URL]... " +
  "[--gateway URL]... [--cid CID] [--channel C] [--arch A] [--min-version V] [--artifact NAME]... " +
  "[--stall-timeout 15s] [--headers-timeout 10s] [--no-parallel] [--candidates FILE|-] [--socks HOST:PORT] [--rediscover]\n" +
  "       deno task fetch-private --root TMPFS_DIR --manifest URL --trust FILE ...";

/** The flags of `deno task fetch` / `fetch-private` (their `--help` lists each one; testing/help_test.ts checks). */
export const FETCH_FLAGS = {
  manifest: { type: "string" },
  trust: { type: "string" },
  cache: { type: "string" },
  mirror: { type: "string", multiple: true },
  provider: { type: "string", multiple: true },
  gateway: { type: "string", multiple: true },
  cid: { type: "string" },
  channel: { type: "string" },
  arch: { type: "string" },
  "min-version": { type: "string" },
  artifact: { type: "string", multiple: true },
  have: { type: "string", multiple: true },
  "stall-timeout": { type: "string" },
  "headers-timeout": { type: "string" },
  "no-parallel": { type: "boolean" },
  private: { type: "boolean" },
  root: { type: "string" },
  candidates: { type: "string" },
  socks: { type: "string" },
  rediscover: { type: "boolean" },
  json: { type: "boolean" },
} as const;

/**
 * How long one mDNS re-discovery listens, in milliseconds (each is also
 * bounded by the fetcher's REDISCOVER_TIMEOUT_MS).
 */
export const REDISCOVER_MDNS_MS = 1_000;

/**
 * `--rediscover`: while artifacts download, ask the LAN (mDNS) again for
 * peers that re-serve the same release (same manifest CID) and move the
 * rest of a long download to them (issue 12 §4). Hints only (TM-07): every
 * artifact is still checked against its digest. Not in private mode nor
 * over SOCKS (TM-13: an mDNS query announces the machine to the LAN).
 */
function lanRediscover(
  trust: Awaited<ReturnType<typeof loadTrust>>,
  channel: string | undefined,
  arch: string | undefined,
  logger: Logger,
): Rediscover {
  const interfaces = Deno.networkInterfaces()
    .filter((i) => i.family === "IPv4" && !i.address.startsWith("127."))
    .map((i) => i.address);
  logger.info("rediscover", { interfaces, every_ms: REDISCOVER_INTERVAL_MS, threat: "TM-07" });
  const mdns = async (timeoutMs: number) =>
    (await Promise.all(
      interfaces.map((ip) => queryServices({ interfaceAddress: ip, timeoutMs }).catch(() => [])),
    )).flat();
  return {
    find: discoverProviders({
      policy: policyFromValues({ mode: "local", channel }),
      trust,
      arch: arch ?? hostArch(),
      mdns,
      order: ["lan"],
      mdnsTimeoutMs: REDISCOVER_MDNS_MS,
      // The peers' bytes are checked by digest; a /health probe per
      // answer and interval would only cost requests.
      probe: false,
      logger: { info() {}, warn: (e, f) => logger.warn(e, f), error: (e, f) => logger.error(e, f) },
    }),
  };
}

/** Largest candidates document read (discover's JSON output), in bytes. */
export const MAX_CANDIDATES_BYTES = 256 * 1024;

/**
 * Reads `discover`'s JSON output (a file, or `-` for stdin) and returns its
 * ranked candidates. They are hints: each is verified when fetched (TM-07).
 */
async function readCandidates(path: string): Promise<FetchCandidate[]> {
  let bytes: Uint8Array;
  try {
    if (path === "-") {
      const parts: Uint8Array[] = [];
      let n = 0;
      for await (const c of Deno.stdin.readable) {
        n += c.length;
        if (n > MAX_CANDIDATES_BYTES) throw new Error(`more than ${MAX_CANDIDATES_BYTES} bytes`);
        parts.push(c);
      }
      bytes = new Uint8Array(n);
      let off = 0;
      for (const c of parts) {
        bytes.set(c, off);
        off += c.length;
      }
    } else {
      bytes = await readFileCapped(path, MAX_CANDIDATES_BYTES);
    }
  } catch (err) {
    throw new UsageError(`cannot read --candidates ${path}: ${(err as Error).message}`, USAGE);
  }
  let discovered;
  try {
    discovered = decodeDiscoverResult(new TextDecoder().decode(bytes), "--candidates");
  } catch (err) {
    throw new UsageError(
      `${(err as Error).message} (give the output of 'deno task discover')`,
      USAGE,
    );
  }
  return discovered.candidates.map((c) => ({
    manifestUrl: c.manifestUrl,
    mirrors: [...c.mirrors],
    manifestCid: c.manifestCid,
    // Re-serving peers (mDNS, DHT provider records): hints, verified like the rest.
    providers: [...c.providers],
    source: c.source,
  }));
}

/** Quotes one argument for a POSIX shell, only when it needs it. */
function shellQuote(a: string): string {
  return /^[A-Za-z0-9_\/.:=@%+,-]+$/.test(a) ? a : `'${a.replaceAll("'", `'\\''`)}'`;
}

/**
 * The command that resumes this fetch: the same task (or binary) and the
 * same arguments. The partial files are re-hashed and continued, so running
 * it again transfers only what is missing.
 */
export function resumeCommand(args: readonly string[], compiled: boolean): string {
  const isPrivate = args.includes("--private");
  const rest = args.filter((a) => a !== "--private").map(shellQuote);
  const head = compiled
    ? isPrivate ? "phase-fetch-private" : "phase-fetch"
    : isPrivate
    ? "deno task fetch-private"
    : "deno task fetch";
  return [head, ...rest].join(" ");
}

/** One partial file a Ctrl-C left in the cache. */
export interface KeptPartial {
  /** The artifact's name, when the release's plan names its digest. */
  readonly name: string | undefined;
  /** The partial file. */
  readonly path: string;
  /** Bytes in it. */
  readonly bytes: number;
  /** The artifact's full size, when known. */
  readonly size: number | undefined;
}

/** Lists the partial files under `cacheDir` (what a resume continues), named from the progress plan. */
export function keptPartials(cacheDir: string, snapshot: ProgressSnapshot): KeptPartial[] {
  const { partialDir } = cacheLayout(cacheDir);
  const byHex = new Map<string, { name: string; size: number }>();
  for (const a of snapshot.artifacts) {
    if (!a.digest) continue;
    try {
      byHex.set(digestHex(a.digest), a);
    } catch { /* not a sha256 digest: no partial file has its name */ }
  }
  const out: KeptPartial[] = [];
  try {
    for (const e of Deno.readDirSync(partialDir)) {
      // Partial artifacts are named by their hex digest; locks and temp manifests are not kept data.
      if (!e.isFile || !/^[0-9a-f]{64}$/.test(e.name)) continue;
      const bytes = Deno.statSync(`${partialDir}/${e.name}`).size;
      if (bytes === 0) continue;
      const a = byHex.get(e.name);
      out.push({ name: a?.name, path: `${partialDir}/${e.name}`, bytes, size: a?.size });
    }
  } catch { /* no partial directory yet: nothing kept */ }
  return out.sort((a, b) => a.path.localeCompare(b.path));
}

/**
 * The error a Ctrl-C ends a fetch with (E_INTERRUPTED): what was kept (the
 * partial files and their bytes, the artifacts already verified) and, as
 * hint, the exact command that resumes.
 */
export function interruptedError(
  cacheDir: string,
  snapshot: ProgressSnapshot,
  resume: string,
): PhaseError<"E_INTERRUPTED"> {
  const kept = keptPartials(cacheDir, snapshot);
  const verified = snapshot.artifacts.filter((a) => a.finished).map((a) => a.name);
  const parts = kept.map((k) =>
    `${k.name ?? "an artifact"} ${humanBytes(k.bytes)}${
      k.size !== undefined ? ` of ${humanBytes(k.size)}` : ""
    } (${k.path})`
  );
  const total = kept.reduce((n, k) => n + k.bytes, 0);
  let message = kept.length > 0
    ? `interrupted (Ctrl-C): kept ${kept.length} partial file(s), ${
      humanBytes(total)
    } (${total} bytes): ${parts.join(", ")}`
    : "interrupted (Ctrl-C): no partial file was kept";
  if (verified.length > 0) {
    message += `; already verified in ${cacheLayout(cacheDir).casDir}: ${verified.join(", ")}`;
  }
  return new PhaseError("E_INTERRUPTED", message, {
    hint: `resume with: ${resume}${
      kept.length > 0 ? " (the partial files are re-hashed and continued, not fetched again)" : ""
    }`,
  });
}

/** Runs `fetch` with `args`; returns the exit status. */
export async function run(args: string[]): Promise<number> {
  const { values } = parseFlags(args, FETCH_FLAGS, USAGE);
  const socks = values.socks ? parseSocksAddress(values.socks) : undefined;
  if (!values.trust) throw new UsageError("missing --trust", USAGE);
  if (!values.manifest && !values.cid && !(values.mirror?.length) && !values.candidates) {
    throw new UsageError(
      "give --manifest URL (or --mirror, --cid with --provider/--gateway, or --candidates from discover)",
      USAGE,
    );
  }
  if (values.rediscover && (values.private || socks)) {
    // TM-13: an mDNS query announces this machine to the LAN and cannot go through SOCKS.
    throw new UsageError(
      `--rediscover asks the LAN (mDNS): not with ${values.private ? "private mode" : "--socks"}`,
      USAGE,
    );
  }
  let cacheDir: string;
  if (values.private) {
    if (values.cache) {
      throw new UsageError(
        "--cache is not used in private mode: everything goes under --root",
        USAGE,
      );
    }
    if (!values.root) throw new UsageError("private mode needs --root <tmpfs dir>", USAGE);
    // TM-13: refuse before anything is written if the root is not RAM.
    cacheDir = await preparePrivateRoot(values.root);
  } else {
    if (values.root) throw new UsageError("--root is for --private; use --cache", USAGE);
    if (!values.cache) throw new UsageError("missing --cache", USAGE);
    cacheDir = values.cache;
  }
  const trust = await loadTrust(values.trust, {
    permissionSet: values.private ? "fetch-private" : "fetch",
  });
  // Over Tor, circuits take seconds to build: longer (still bounded) waits.
  const base = socks ? TOR_LIMITS : DEFAULT_LIMITS;
  const limits = {
    ...base,
    ...(values["stall-timeout"]
      ? { stallTimeoutMs: parseDurationMs(values["stall-timeout"], "stall-timeout") }
      : {}),
    ...(values["headers-timeout"]
      ? { headersTimeoutMs: parseDurationMs(values["headers-timeout"], "headers-timeout") }
      : {}),
  };
  const progress = progressReporter();
  // On a TTY a log line must not land on the bar: the bar steps aside.
  const plainLogger = consoleLogger("fetch");
  const logger: Logger = {
    info: (e, f) => progress.aside(() => plainLogger.info(e, f)),
    warn: (e, f) => progress.aside(() => plainLogger.warn(e, f)),
    error: (e, f) => progress.aside(() => plainLogger.error(e, f)),
  };
  const common = {
    providers: values.provider,
    gateways: values.gateway,
    trust,
    // TM-09: walk the trust chain from --trust and keep accepted versions
    // beside the floor: in private mode that is the tmpfs root's state
    // (checked before each write, gone at power-off), where kexec --state
    // finds them.
    trustChain: { persist: true },
    cacheDir,
    channel: values.channel,
    arch: values.arch,
    minVersion: values["min-version"],
    artifacts: values.artifact,
    have: (values.have ?? []).map((d) => {
      if (!isArtifactDigest(d)) {
        throw new UsageError(
          `--have needs a digest sha256:<64 lowercase hex>, got '${d}'`,
          USAGE,
        );
      }
      return d;
    }),
    limits,
    logger,
    progress,
    parallel: !values["no-parallel"],
    // TM-13: with --socks every request (manifest, artifacts, mirrors,
    // gateways) goes through the proxy, and nothing falls back to a direct
    // connection when the proxy fails.
    fetchFn: socks ? socksFetch(socks) : undefined,
    beforeWrite: values.private ? () => checkPrivateTree(cacheDir) : undefined,
    rediscover: values.rediscover
      ? lanRediscover(trust, values.channel, values.arch, logger)
      : undefined,
  };
  if (socks) logger.info("socks", { proxy: values.socks, threat: "TM-13" });
  // Ctrl-C: stop, say what was kept and how to resume (the partial files
  // are always a resumable prefix, so stopping at any byte loses nothing).
  let onSigint: (() => void) | undefined;
  const interrupted = new Promise<never>((_, reject) => {
    onSigint = () => {
      progress.close();
      reject(
        interruptedError(
          cacheDir,
          progress.snapshot(),
          resumeCommand(args, Deno.mainModule.includes("/deno-compile-")),
        ),
      );
    };
    Deno.addSignalListener("SIGINT", onSigint);
  });
  let release;
  try {
    release = await Promise.race([
      interrupted,
      values.candidates
        ? readCandidates(values.candidates).then((c) => fetchFromCandidates(c, common))
        : fetchRelease({
          ...common,
          manifestUrl: values.manifest,
          mirrors: values.mirror,
          manifestCid: values.cid,
        }),
    ]);
  } catch (err) {
    progress.close(); // the error goes below the bar, not onto it
    throw err;
  } finally {
    Deno.removeSignalListener("SIGINT", onSigint!);
  }
  const m = release.verified.value;
  const artifacts: Record<string, FetchResultArtifact> = {};
  for (const [name, a] of Object.entries(release.artifacts)) {
    artifacts[name] = { path: a.path, digest: a.digest, size: a.size, cached: a.cached };
  }
  // The one result line the boot orchestrator decodes (decodeFetchResult).
  const result: FetchResult = {
    ok: true,
    version: m.version,
    channel: m.channel,
    arch: m.arch,
    manifest: release.manifestPath,
    source: release.manifestSource,
    artifacts,
    floor: {
      current: release.floor.current,
      previous: release.floor.previous ?? null,
      file: release.floor.file,
    },
  };
  // A terminal gets lines; a pipe (phase-boot) or --json the JSON line.
  printResult(result, () => fetchLines(result), { json: values.json });
  return 0;
}

if (import.meta.main) {
  await main({
    name: "fetch",
    permissionSet: Deno.args.includes("--private") ? "fetch-private" : "fetch",
    help: fetchHelp(Deno.args),
    run,
  });
}
