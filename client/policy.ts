/**
 * The policy file `/etc/phase/policy.toml` and its kernel command line
 * overrides (formats.md §6). The TOML reader is a deliberately small,
 * strict subset: `key = value` lines with basic strings, booleans and
 * arrays of strings, `#` comments. Tables, dotted keys, unknown keys,
 * repeated keys and anything else are errors naming the line.
 *
 * @module
 */
import { readFileCapped, TooLargeError } from "../core/mod.ts";
import {
  canonicalArch,
  isChannel,
  isMode,
  isVersion,
  MAX_CMDLINE_FILE_BYTES,
  type Mode,
} from "../verify/mod.ts";
import { ClientError } from "./errors.ts";

/** Largest policy file read, in bytes. */
export const MAX_POLICY_BYTES = 64 * 1024;
/** Most DHT bootstrap peers accepted. */
export const MAX_BOOTSTRAP_PEERS = 32;

/** The effective policy. */
export interface Policy {
  readonly mode: Mode;
  readonly channel: string;
  /** Forced false in private mode. */
  readonly cacheEnabled: boolean;
  readonly minVersion: string | undefined;
  readonly allowTor: boolean;
  /** Manual manifest URL ("" when none). */
  readonly provider: string;
  /** True when the provider came from the kernel command line (then it goes first). */
  readonly providerFromCmdline: boolean;
  /** DHT bootstrap multiaddrs (extension of §6: `bootstrap = [...]`, `phase.bootstrap=a,b`). */
  readonly bootstrap: readonly string[];
  /** Arch asked for (extension: `arch = "amd64"`, `phase.arch=`); undefined means this machine's. */
  readonly arch: string | undefined;
}

/** The defaults when no policy file exists. */
export const DEFAULT_POLICY: Policy = Object.freeze({
  mode: "internet",
  channel: "stable",
  cacheEnabled: true,
  minVersion: undefined,
  allowTor: false,
  provider: "",
  providerFromCmdline: false,
  bootstrap: Object.freeze([]) as readonly string[],
  arch: undefined,
});

type TomlValue = string | boolean | string[];

function policyError(where: string, message: string): ClientError {
  return new ClientError("E_POLICY", `${where}: ${message}`, {
    hint:
      "see formats.md §6: mode, channel, cache_enabled, min_version, allow_tor, provider, bootstrap, arch",
  });
}

/** Reads one TOML basic string starting at `s[i] === '"'`; returns value and next index. */
function readString(s: string, i: number, where: string): [string, number] {
  let out = "";
  i++;
  while (i < s.length) {
    const c = s[i];
    if (c === '"') return [out, i + 1];
    if (c === "\\") {
      const e = s[i + 1];
      const simple: Record<string, string> = {
        '"': '"',
        "\\": "\\",
        n: "\n",
        t: "\t",
        r: "\r",
        b: "\b",
        f: "\f",
      };
      if (e !== undefined && e in simple) {
        out += simple[e];
        i += 2;
        continue;
      }
      if (e === "u") {
        const hex = s.slice(i + 2, i + 6);
        if (!/^[0-9A-Fa-f]{4}$/.test(hex)) throw policyError(where, "bad \\u escape");
        out += String.fromCharCode(parseInt(hex, 16));
        i += 6;
        continue;
      }
      throw policyError(where, `unsupported escape '\\${e ?? ""}'`);
    }
    if (c < " " && c !== "\t") throw policyError(where, "control character in string");
    out += c;
    i++;
  }
  throw policyError(where, "unterminated string");
}

function skipSpace(s: string, i: number): number {
  while (s[i] === " " || s[i] === "\t") i++;
  return i;
}

function readValue(s: string, i: number, where: string): [TomlValue, number] {
  if (s[i] === '"') return readString(s, i, where);
  if (s.startsWith("true", i)) return [true, i + 4];
  if (s.startsWith("false", i)) return [false, i + 5];
  if (s[i] === "[") {
    const items: string[] = [];
    i = skipSpace(s, i + 1);
    while (s[i] !== "]") {
      if (s[i] !== '"') throw policyError(where, "arrays hold strings only (one line)");
      const [v, next] = readString(s, i, where);
      items.push(v);
      i = skipSpace(s, next);
      if (s[i] === ",") i = skipSpace(s, i + 1);
      else if (s[i] !== "]") throw policyError(where, "expected ',' or ']' in array");
    }
    return [items, i + 1];
  }
  throw policyError(where, 'value must be a "string", true, false or ["array", "of strings"]');
}

/** Parses the strict TOML subset into key/value pairs. */
export function parseTomlSubset(text: string, file = "policy.toml"): Map<string, TomlValue> {
  const out = new Map<string, TomlValue>();
  const lines = text.split("\n");
  for (let n = 0; n < lines.length; n++) {
    const where = `${file}:${n + 1}`;
    const line = lines[n].replace(/\r$/, "");
    let i = skipSpace(line, 0);
    if (i === line.length || line[i] === "#") continue;
    const key = /^[A-Za-z0-9_-]+/.exec(line.slice(i))?.[0];
    if (!key) {
      throw policyError(
        where,
        line[i] === "[" ? "tables are not supported" : "expected 'key = value'",
      );
    }
    i = skipSpace(line, i + key.length);
    if (line[i] !== "=") {
      throw policyError(where, `expected '=' after '${key}' (dotted keys are not supported)`);
    }
    i = skipSpace(line, i + 1);
    const [value, next] = readValue(line, i, where);
    i = skipSpace(line, next);
    if (i < line.length && line[i] !== "#") {
      throw policyError(where, "unexpected text after the value");
    }
    if (out.has(key)) throw policyError(where, `'${key}' is set twice`);
    out.set(key, value);
  }
  return out;
}

function checkMode(v: string, where: string): Mode {
  if (isMode(v)) return v;
  throw policyError(where, `mode must be internet, local or private, got '${v}'`);
}
function checkChannel(v: string, where: string): string {
  if (!isChannel(v)) throw policyError(where, `invalid channel '${v}'`);
  return v;
}
function checkVersion(v: string, where: string): string | undefined {
  if (v === "") return undefined;
  if (!isVersion(v)) throw policyError(where, `min_version '${v}' is not a version`);
  return v;
}
function checkUrl(v: string, where: string): string {
  if (v === "") return "";
  let u: URL;
  try {
    u = new URL(v);
  } catch {
    throw policyError(where, `provider '${v}' is not a URL`);
  }
  if (u.protocol !== "http:" && u.protocol !== "https:") {
    throw policyError(where, `provider '${v}' must be http(s)`);
  }
  return u.href;
}
function checkArch(v: string, where: string): string {
  const a = canonicalArch(v);
  if (!a) throw policyError(where, `arch must be amd64 or arm64, got '${v}'`);
  return a;
}
function checkBootstrap(v: string[], where: string): string[] {
  if (v.length > MAX_BOOTSTRAP_PEERS) {
    throw policyError(where, `more than ${MAX_BOOTSTRAP_PEERS} bootstrap peers`);
  }
  for (const a of v) {
    if (!/^\/(ip4|ip6|dns4|dns6|dns)\/[^\s]+$/.test(a)) {
      throw policyError(where, `'${a}' is not a multiaddr`);
    }
  }
  return v;
}

/** Parses a policy file's text into a full policy (defaults for missing keys). */
export function parsePolicy(text: string, file = "policy.toml"): Policy {
  const kv = parseTomlSubset(text, file);
  const p: { -readonly [K in keyof Policy]: Policy[K] } = { ...DEFAULT_POLICY };
  for (const [key, value] of kv) {
    const where = `${file}: ${key}`;
    const str = () => {
      if (typeof value !== "string") throw policyError(where, "must be a string");
      return value;
    };
    const bool = () => {
      if (typeof value !== "boolean") throw policyError(where, "must be true or false");
      return value;
    };
    switch (key) {
      case "mode":
        p.mode = checkMode(str(), where);
        break;
      case "channel":
        p.channel = checkChannel(str(), where);
        break;
      case "cache_enabled":
        p.cacheEnabled = bool();
        break;
      case "min_version":
        p.minVersion = checkVersion(str(), where);
        break;
      case "allow_tor":
        p.allowTor = bool();
        break;
      case "provider":
        p.provider = checkUrl(str(), where);
        break;
      case "arch":
        p.arch = checkArch(str(), where);
        break;
      case "bootstrap":
        if (!Array.isArray(value)) {
          throw policyError(where, "must be an array of multiaddr strings");
        }
        p.bootstrap = Object.freeze(checkBootstrap(value, where));
        break;
      default:
        throw policyError(where, `unknown key '${key}'`);
    }
  }
  if (p.mode === "private") p.cacheEnabled = false;
  return Object.freeze(p);
}

/** Splits a kernel command line into words, honouring double quotes as the kernel does. */
export function splitCmdline(text: string): string[] {
  const words: string[] = [];
  let cur = "";
  let inQuote = false;
  let has = false;
  for (const c of text) {
    if (c === '"') {
      inQuote = !inQuote;
      has = true;
    } else if (!inQuote && /\s/.test(c)) {
      if (has) words.push(cur);
      cur = "";
      has = false;
    } else {
      cur += c;
      has = true;
    }
  }
  if (has) words.push(cur);
  return words;
}

/**
 * Applies `phase.*` overrides from a kernel command line to a policy.
 * Invalid values of known keys are errors; unknown `phase.*` keys are
 * returned in `ignored` so the caller can log them.
 */
export function applyCmdline(
  policy: Policy,
  cmdline: string,
): { policy: Policy; ignored: string[] } {
  const p: { -readonly [K in keyof Policy]: Policy[K] } = { ...policy };
  const ignored: string[] = [];
  for (const word of splitCmdline(cmdline)) {
    if (!word.startsWith("phase.")) continue;
    const eq = word.indexOf("=");
    const key = eq < 0 ? word : word.slice(0, eq);
    const value = eq < 0 ? "" : word.slice(eq + 1);
    const where = `kernel command line: ${key}`;
    switch (key) {
      case "phase.mode":
        p.mode = checkMode(value, where);
        break;
      case "phase.channel":
        p.channel = checkChannel(value, where);
        break;
      case "phase.provider":
        p.provider = checkUrl(value, where);
        p.providerFromCmdline = p.provider !== "";
        break;
      case "phase.min_version":
        p.minVersion = checkVersion(value, where);
        break;
      case "phase.arch":
        p.arch = checkArch(value, where);
        break;
      case "phase.bootstrap":
        p.bootstrap = Object.freeze(checkBootstrap(value === "" ? [] : value.split(","), where));
        break;
      default:
        ignored.push(word);
    }
  }
  if (p.mode === "private") p.cacheEnabled = false;
  return { policy: Object.freeze(p), ignored };
}

/**
 * Loads the effective policy: the file (absent: defaults), then the kernel
 * command line. Both reads are capped.
 */
export async function loadPolicy(
  opts: { policyPath?: string; cmdlinePath?: string; cmdline?: string } = {},
): Promise<{ policy: Policy; ignored: string[] }> {
  let policy = DEFAULT_POLICY;
  if (opts.policyPath) {
    let text: string | undefined;
    try {
      text = await readText(opts.policyPath, MAX_POLICY_BYTES);
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) {
        throw new ClientError(
          "E_POLICY",
          `cannot read ${opts.policyPath}: ${(err as Error).message}`,
          { cause: err },
        );
      }
    }
    if (text !== undefined) policy = parsePolicy(text, opts.policyPath);
  }
  let cmdline = opts.cmdline;
  if (cmdline === undefined && opts.cmdlinePath) {
    try {
      cmdline = await readText(opts.cmdlinePath, MAX_CMDLINE_FILE_BYTES);
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) {
        throw new ClientError(
          "E_POLICY",
          `cannot read ${opts.cmdlinePath}: ${(err as Error).message}`,
          { cause: err },
        );
      }
    }
  }
  return cmdline === undefined ? { policy, ignored: [] } : applyCmdline(policy, cmdline);
}

async function readText(path: string, max: number): Promise<string> {
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(await readFileCapped(path, max));
  } catch (err) {
    if (err instanceof TypeError) throw new ClientError("E_POLICY", `${path} is not UTF-8`);
    if (err instanceof TooLargeError) {
      throw new ClientError("E_POLICY", err.message, { cause: err });
    }
    throw err;
  }
}
