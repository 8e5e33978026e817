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
import {
  arrayOf,
  bool,
  count,
  objectWith,
  oneOf,
  optStr,
  resultLine,
  stepFail,
  type StepObject,
  StepOutputError,
  str,
  strings,
} from "../core/step.ts";
import { isJsonObject, type JsonValue, parseStrictJson } from "../verify/mod.ts";
import type { Candidate, DiscoverResult, Rejected, Step } from "./discover.ts";

const SOURCES: readonly Candidate["source"][] = ["cmdline", "mdns", "dht", "manual"];
const STEPS: readonly Step[] = ["lan", "wan", "manual"];

function parseLine(line: string, step: string): StepObject {
  let doc: JsonValue;
  try {
    doc = parseStrictJson(line);
  } catch (err) {
    throw new StepOutputError("E_STEP", `${step}: result line is not strict JSON: ${err}`, {
      cause: err,
    });
  }
  if (!isJsonObject(doc)) stepFail(step, "line", "is not a JSON object");
  return doc as StepObject;
}

function candidate(v: unknown, where: string, step: string): Candidate {
  const o = objectWith(v, step, where, ["manifestUrl", "mirrors", "providers", "source"], [
    "version",
    "manifestCid",
    "name",
  ]);
  const c: { -readonly [K in keyof Candidate]: Candidate[K] } = {
    manifestUrl: str(o, "manifestUrl", step, where),
    mirrors: strings(o, "mirrors", step, where),
    providers: strings(o, "providers", step, where),
    source: oneOf(o, "source", SOURCES, step, where),
  };
  const version = optStr(o, "version", step, where);
  const manifestCid = optStr(o, "manifestCid", step, where);
  const name = optStr(o, "name", step, where);
  if (version !== undefined) c.version = version;
  if (manifestCid !== undefined) c.manifestCid = manifestCid;
  if (name !== undefined) c.name = name;
  return c;
}

function rejected(v: unknown, where: string, step: string): Rejected {
  const o = objectWith(v, step, where, ["url", "source", "reason", "captivePortal"], ["hint"]);
  const hint = optStr(o, "hint", step, where);
  return {
    url: str(o, "url", step, where),
    source: oneOf(o, "source", SOURCES, step, where),
    reason: str(o, "reason", step, where),
    captivePortal: bool(o, "captivePortal", step, where),
    ...(hint !== undefined ? { hint } : {}),
  };
}

/**
 * Decodes `phase-discover`'s result (its stdout, or just the line): ranked
 * candidates, rejected ones, and what each discovery step did. Throws
 * `StepOutputError` (E_STEP) on anything else.
 */
export function decodeDiscoverResult(stdout: string, step = "discover"): DiscoverResult {
  const o = objectWith(
    parseLine(resultLine(stdout, step), step),
    step,
    "line",
    ["candidates", "rejected", "steps"],
  );
  return {
    candidates: arrayOf(o, "candidates", step, "", (v, w) => candidate(v, w, step)),
    rejected: arrayOf(o, "rejected", step, "", (v, w) => rejected(v, w, step)),
    steps: arrayOf(o, "steps", step, "", (v, w) => {
      const s = objectWith(v, step, w, ["step", "ms", "found"], ["error"]);
      const error = optStr(s, "error", step, w);
      return {
        step: oneOf(s, "step", STEPS, step, w),
        ms: count(s, "ms", step, w),
        found: count(s, "found", step, w),
        ...(error !== undefined ? { error } : {}),
      };
    }),
  };
}

/** One artifact of a fetch result: where it is in the cache, and what it is. */
export interface FetchResultArtifact {
  readonly path: string;
  readonly digest: string;
  readonly size: number;
  readonly cached: boolean;
}

/** What `phase-fetch` (and `phase-fetch-private`) prints when every artifact is in the cache. */
export interface FetchResult {
  readonly ok: true;
  readonly version: string;
  readonly channel: string;
  readonly arch: string;
  /** The verified manifest's bytes in the cache. */
  readonly manifest: string;
  /** The URL the manifest came from. */
  readonly source: string;
  readonly artifacts: Readonly<Record<string, FetchResultArtifact>>;
}

/**
 * Decodes `phase-fetch`'s result (its stdout, or just the line). Throws
 * `StepOutputError` (E_STEP) on anything else.
 */
export function decodeFetchResult(stdout: string, step = "fetch"): FetchResult {
  const o = objectWith(parseLine(resultLine(stdout, step), step), step, "line", [
    "ok",
    "version",
    "channel",
    "arch",
    "manifest",
    "source",
    "artifacts",
  ]);
  if (o.ok !== true) stepFail(step, ".ok", "is not true");
  const arts = o.artifacts;
  if (arts === null || typeof arts !== "object" || Array.isArray(arts)) {
    stepFail(step, ".artifacts", "is not an object");
  }
  // Names from input: a prototype-free map (no 'constructor' surprises).
  const artifacts: Record<string, FetchResultArtifact> = Object.create(null);
  for (const [name, v] of Object.entries(arts as StepObject)) {
    const w = `.artifacts.${name}`;
    const a = objectWith(v, step, w, ["path", "digest", "size", "cached"]);
    const digest = str(a, "digest", step, w);
    if (!/^sha256:[0-9a-f]{64}$/.test(digest)) stepFail(step, `${w}.digest`, "is not sha256:<hex>");
    artifacts[name] = {
      path: str(a, "path", step, w),
      digest,
      size: count(a, "size", step, w),
      cached: bool(a, "cached", step, w),
    };
  }
  return {
    ok: true,
    version: str(o, "version", step, ""),
    channel: str(o, "channel", step, ""),
    arch: str(o, "arch", step, ""),
    manifest: str(o, "manifest", step, ""),
    source: str(o, "source", step, ""),
    artifacts,
  };
}
