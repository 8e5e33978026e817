/**
 * The result lines `phase-discover` and `phase-fetch` print, one type and
 * one strict decoder each. The producers (`client/discover/main.ts`,
 * `client/fetch/main.ts`) print values of these types; the boot
 * orchestrator and `fetch --candidates` read them only through the
 * decoders. A result is a hint about paths and URLs, never trust: fetch
 * and kexec verify what they act on themselves.
 *
 * @module
 */
import { stepResult } from "../core/mod.ts";
import { isJsonObject, type JsonValue, parseStrictJson } from "../verify/mod.ts";
import type { Candidate, DiscoverResult, Rejected, Step } from "./discover.ts";

const SOURCES: readonly Candidate["source"][] = ["cmdline", "mdns", "dht", "manual"];
const STEPS: readonly Step[] = ["lan", "wan", "manual"];

function parseLine(line: string, step: string): stepResult.StepObject {
  let doc: JsonValue;
  try {
    doc = parseStrictJson(line);
  } catch (err) {
    throw new stepResult.StepOutputError(
      "E_STEP",
      `${step}: result line is not strict JSON: ${err}`,
      {
        cause: err,
      },
    );
  }
  if (!isJsonObject(doc)) stepResult.stepFail(step, "line", "is not a JSON object");
  return doc as stepResult.StepObject;
}

function candidate(v: unknown, where: string, step: string): Candidate {
  const o = stepResult.objectWith(
    v,
    step,
    where,
    ["manifestUrl", "mirrors", "providers", "source"],
    [
      "version",
      "manifestCid",
      "name",
    ],
  );
  const c: { -readonly [K in keyof Candidate]: Candidate[K] } = {
    manifestUrl: stepResult.str(o, "manifestUrl", step, where),
    mirrors: stepResult.strings(o, "mirrors", step, where),
    providers: stepResult.strings(o, "providers", step, where),
    source: stepResult.oneOf(o, "source", SOURCES, step, where),
  };
  const version = stepResult.optStr(o, "version", step, where);
  const manifestCid = stepResult.optStr(o, "manifestCid", step, where);
  const name = stepResult.optStr(o, "name", step, where);
  if (version !== undefined) c.version = version;
  if (manifestCid !== undefined) c.manifestCid = manifestCid;
  if (name !== undefined) c.name = name;
  return c;
}

function rejected(v: unknown, where: string, step: string): Rejected {
  const o = stepResult.objectWith(v, step, where, ["url", "source", "reason", "captivePortal"], [
    "hint",
  ]);
  const hint = stepResult.optStr(o, "hint", step, where);
  return {
    url: stepResult.str(o, "url", step, where),
    source: stepResult.oneOf(o, "source", SOURCES, step, where),
    reason: stepResult.str(o, "reason", step, where),
    captivePortal: stepResult.bool(o, "captivePortal", step, where),
    ...(hint !== undefined ? { hint } : {}),
  };
}

/**
 * Decodes `phase-discover`'s result (its stdout, or just the line): ranked
 * candidates, rejected ones, and what each discovery step did. Throws
 * `stepResult.StepOutputError` (E_STEP) on anything else.
 */
export function decodeDiscoverResult(stdout: string, step = "discover"): DiscoverResult {
  const o = stepResult.objectWith(
    parseLine(stepResult.resultLine(stdout, step), step),
    step,
    "line",
    ["candidates", "rejected", "steps"],
  );
  return {
    candidates: stepResult.arrayOf(o, "candidates", step, "", (v, w) => candidate(v, w, step)),
    rejected: stepResult.arrayOf(o, "rejected", step, "", (v, w) => rejected(v, w, step)),
    steps: stepResult.arrayOf(o, "steps", step, "", (v, w) => {
      const s = stepResult.objectWith(v, step, w, ["step", "ms", "found"], ["error"]);
      const error = stepResult.optStr(s, "error", step, w);
      return {
        step: stepResult.oneOf(s, "step", STEPS, step, w),
        ms: stepResult.count(s, "ms", step, w),
        found: stepResult.count(s, "found", step, w),
        ...(error !== undefined ? { error } : {}),
      };
    }),
  };
}

/** One artifact of a fetch result: where it is in the cache, and what it is. */
export interface FetchResultArtifact {
  /** Its file in the cache. */
  readonly path: string;
  /** `sha256:<hex>`. */
  readonly digest: string;
  /** Its size, in bytes. */
  readonly size: number;
  /** True when it was already in the cache. */
  readonly cached: boolean;
}

/** What `phase-fetch` (and `phase-fetch-private`) prints when every artifact is in the cache. */
export interface FetchResult {
  /** Always true: a failed fetch prints an error instead. */
  readonly ok: true;
  /** The release version. */
  readonly version: string;
  /** The release channel. */
  readonly channel: string;
  /** The release arch. */
  readonly arch: string;
  /** The verified manifest's bytes in the cache. */
  readonly manifest: string;
  /** The URL the manifest came from. */
  readonly source: string;
  /** Each artifact by name. */
  readonly artifacts: Readonly<Record<string, FetchResultArtifact>>;
  /** The rollback floor of this channel/arch after the fetch, and where it is kept (TM-02). */
  readonly floor?: FetchResultFloor;
}

/** The rollback floor a fetch leaves behind. */
export interface FetchResultFloor {
  /** The lowest version this machine now accepts for the channel/arch. */
  readonly current: string;
  /** The floor before this fetch (null: none was recorded). */
  readonly previous: string | null;
  /** The floor file (`<cache>/state/floor.json`). */
  readonly file: string;
}

/**
 * Decodes `phase-fetch`'s result (its stdout, or just the line). Throws
 * `stepResult.StepOutputError` (E_STEP) on anything else.
 */
export function decodeFetchResult(stdout: string, step = "fetch"): FetchResult {
  const o = stepResult.objectWith(
    parseLine(stepResult.resultLine(stdout, step), step),
    step,
    "line",
    [
      "ok",
      "version",
      "channel",
      "arch",
      "manifest",
      "source",
      "artifacts",
    ],
    ["floor"],
  );
  if (o.ok !== true) stepResult.stepFail(step, ".ok", "is not true");
  const arts = o.artifacts;
  if (arts === null || typeof arts !== "object" || Array.isArray(arts)) {
    stepResult.stepFail(step, ".artifacts", "is not an object");
  }
  // Names from input: a prototype-free map (no 'constructor' surprises).
  const artifacts: Record<string, FetchResultArtifact> = Object.create(null);
  for (const [name, v] of Object.entries(arts as stepResult.StepObject)) {
    const w = `.artifacts.${name}`;
    const a = stepResult.objectWith(v, step, w, ["path", "digest", "size", "cached"]);
    const digest = stepResult.str(a, "digest", step, w);
    if (!/^sha256:[0-9a-f]{64}$/.test(digest)) {
      stepResult.stepFail(step, `${w}.digest`, "is not sha256:<hex>");
    }
    artifacts[name] = {
      path: stepResult.str(a, "path", step, w),
      digest,
      size: stepResult.count(a, "size", step, w),
      cached: stepResult.bool(a, "cached", step, w),
    };
  }
  let floor: FetchResultFloor | undefined;
  if (o.floor !== undefined) {
    const f = stepResult.objectWith(o.floor, step, ".floor", ["current", "previous", "file"]);
    floor = {
      current: stepResult.str(f, "current", step, ".floor"),
      previous: f.previous === null ? null : stepResult.str(f, "previous", step, ".floor"),
      file: stepResult.str(f, "file", step, ".floor"),
    };
  }
  return {
    ok: true,
    version: stepResult.str(o, "version", step, ""),
    channel: stepResult.str(o, "channel", step, ""),
    arch: stepResult.str(o, "arch", step, ""),
    manifest: stepResult.str(o, "manifest", step, ""),
    source: stepResult.str(o, "source", step, ""),
    artifacts,
    ...(floor ? { floor } : {}),
  };
}
