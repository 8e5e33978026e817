/**
 * Flag parsing on top of `node:util` parseArgs, strict: unknown flags and
 * missing values are usage errors.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { UsageError } from "../core/mod.ts";

/** Option spec as `node:util` parseArgs takes it. */
export type OptionSpec = Record<
  string,
  { type: "string" | "boolean"; multiple?: boolean; short?: string }
>;

/** Values parsed for an option spec: strings, booleans, or lists of them. */
export type ParsedValues<O extends OptionSpec> = {
  [K in keyof O]?: O[K]["type"] extends "boolean"
    ? (O[K]["multiple"] extends true ? boolean[] : boolean)
    : (O[K]["multiple"] extends true ? string[] : string);
};

/** Parses `args` strictly; throws {@link UsageError} with `usage` as hint. */
export function parseFlags<O extends OptionSpec>(
  args: readonly string[],
  options: O,
  usage: string,
  allowPositionals = false,
): { values: ParsedValues<O>; positionals: string[] } {
  try {
    const { values, positionals } = parseArgs({
      args: [...args],
      options,
      strict: true,
      allowPositionals,
    });
    return { values: values as ParsedValues<O>, positionals };
  } catch (err) {
    const message = err instanceof Error ? err.message.split("\n")[0] : String(err);
    const unknown = /^Unknown option '(-{1,2}[^']+)'/.exec(message);
    const near = unknown ? nearestFlag(unknown[1], Object.keys(options)) : undefined;
    throw new UsageError(
      near ? `${message}; did you mean --${near}?` : message,
      usage,
    );
  }
}

/** Longest flag name compared for a suggestion, in characters (bounds the work). */
const MAX_SUGGEST_CHARS = 64;

/**
 * The known flag nearest to a mistyped one (`--chanel` -> `channel`), or
 * undefined when none is within two edits (or a third of its length).
 */
export function nearestFlag(given: string, known: readonly string[]): string | undefined {
  const name = given.replace(/^-+/, "").split("=")[0].slice(0, MAX_SUGGEST_CHARS);
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const k of known) {
    const d = editDistance(name, k.slice(0, MAX_SUGGEST_CHARS));
    if (d < bestDistance) [best, bestDistance] = [k, d];
  }
  const limit = Math.max(1, Math.min(2, Math.floor(name.length / 3)));
  return bestDistance <= limit ? best : undefined;
}

/** Levenshtein distance, one row at a time. */
function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      row[j] = Math.min(
        prev[j] + 1,
        row[j - 1] + 1,
        prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1),
      );
    }
    prev = row;
  }
  return prev[b.length];
}

/** Returns the string flag or throws a usage error naming it. */
export function required(
  value: string | undefined,
  flag: string,
  usage: string,
): string {
  if (value === undefined || value === "") {
    throw new UsageError(`missing required flag --${flag}`, usage);
  }
  return value;
}

const DURATION_RE = /^(\d+)(s|m|h|d)$/;
const DURATION_UNIT_MS = { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** Parses `30d`, `12h`, `90m`, `45s` into milliseconds. */
export function parseDurationMs(text: string, flag: string): number {
  const m = DURATION_RE.exec(text);
  if (!m) {
    throw new UsageError(
      `--${flag} must look like 30d, 12h, 90m or 45s, got '${text}'`,
    );
  }
  return Number(m[1]) *
    DURATION_UNIT_MS[m[2] as keyof typeof DURATION_UNIT_MS];
}

/** Longest decimal a whole-number flag takes (below 2^53, so exact as a JS number). */
const INT_FLAG_RE = /^\d{1,15}$/;

/**
 * Parses a whole-number flag: decimal digits only (no sign, space, `0x`,
 * exponent or fraction, which `Number()` would take), within `min..max`.
 * `undefined` stays `undefined` (the flag was not given).
 *
 * @example
 * ```ts
 * import { parseIntFlag } from "./flags.ts";
 * const port = parseIntFlag("8080", "port", { min: 0, max: 65535 });
 * ```
 */
export function parseIntFlag(
  text: string | undefined,
  flag: string,
  range: { readonly min?: number; readonly max?: number } = {},
  usage?: string,
): number | undefined {
  if (text === undefined) return undefined;
  const min = range.min ?? 0;
  const max = range.max ?? Number.MAX_SAFE_INTEGER;
  const bounds = max === Number.MAX_SAFE_INTEGER ? `${min} or more` : `${min}..${max}`;
  const n = INT_FLAG_RE.test(text) ? Number(text) : NaN;
  if (!(n >= min && n <= max)) {
    throw new UsageError(`--${flag} must be a whole number ${bounds}, got '${text}'`, usage);
  }
  return n;
}
