/**
 * Entrypoint `phase-fetch`: fetch a verified release into the
 * content-addressed cache (or, with `--private`, into a tmpfs root).
 * Exit 0 only when every artifact is in the cache and verified.
 *
 * @module
 */
import { consoleLogger, readFileCapped, UsageError } from "../../core/mod.ts";
import { main, parseDurationMs, parseFlags } from "../../cli/mod.ts";
import { loadTrust } from "../../verify/mod.ts";
import { type FetchCandidate, fetchFromCandidates, fetchRelease } from "../fetch.ts";
import { DEFAULT_LIMITS, parseSocksAddress, socksFetch, TOR_LIMITS } from "../../net/mod.ts";
import { checkPrivateTree, preparePrivateRoot } from "../private.ts";
import { progressReporter } from "../progress.ts";
import { decodeDiscoverResult, type FetchResult, type FetchResultArtifact } from "../results.ts";

const USAGE =
  "deno task fetch --manifest URL --trust FILE --cache DIR [--mirror URL]... [--provider URL]... " +
  "[--gateway URL]... [--cid CID] [--channel C] [--arch A] [--min-version V] [--artifact NAME]... " +
  "[--stall-timeout 15s] [--no-parallel] [--candidates FILE|-] [--socks HOST:PORT]\n" +
  "       deno task fetch-private --root TMPFS_DIR --manifest URL --trust FILE ...";

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

/** Runs `fetch` with `args`; returns the exit status. */
export async function run(args: string[]): Promise<number> {
  const { values } = parseFlags(args, {
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
    "stall-timeout": { type: "string" },
    "no-parallel": { type: "boolean" },
    private: { type: "boolean" },
    root: { type: "string" },
    candidates: { type: "string" },
    socks: { type: "string" },
  }, USAGE);
  const socks = values.socks ? parseSocksAddress(values.socks) : undefined;
  if (!values.trust) throw new UsageError("missing --trust", USAGE);
  if (!values.manifest && !values.cid && !(values.mirror?.length) && !values.candidates) {
    throw new UsageError(
      "give --manifest URL (or --mirror, --cid with --provider/--gateway, or --candidates from discover)",
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
  const limits = values["stall-timeout"]
    ? {
      ...base,
      stallTimeoutMs: parseDurationMs(values["stall-timeout"], "stall-timeout"),
    }
    : base;
  const logger = consoleLogger("fetch");
  const common = {
    providers: values.provider,
    gateways: values.gateway,
    trust,
    cacheDir,
    channel: values.channel,
    arch: values.arch,
    minVersion: values["min-version"],
    artifacts: values.artifact,
    limits,
    logger,
    progress: progressReporter(),
    parallel: !values["no-parallel"],
    // TM-13: with --socks every request (manifest, artifacts, mirrors,
    // gateways) goes through the proxy, and nothing falls back to a direct
    // connection when the proxy fails.
    fetchFn: socks ? socksFetch(socks) : undefined,
    beforeWrite: values.private ? () => checkPrivateTree(cacheDir) : undefined,
  };
  if (socks) logger.info("socks", { proxy: values.socks, threat: "TM-13" });
  const release = values.candidates
    ? await fetchFromCandidates(await readCandidates(values.candidates), common)
    : await fetchRelease({
      ...common,
      manifestUrl: values.manifest,
      mirrors: values.mirror,
      manifestCid: values.cid,
    });
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
  console.log(JSON.stringify(result));
  return 0;
}

if (import.meta.main) {
  await main({
    name: "fetch",
    permissionSet: Deno.args.includes("--private") ? "fetch-private" : "fetch",
    run,
  });
}
