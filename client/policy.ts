/**
 * The policy file `/etc/phase/policy.toml` and its kernel command line
 * overrides (formats.md §6). The file is TOML 1.0 (read with npm
 * `smol-toml`, at most {@link MAX_POLICY_BYTES}); the schema is strict:
 * unknown keys and tables, values of the wrong type and repeated keys are
 * errors naming the line and the key.
 *
 * @module
 */
import { parse as parseTomlText, TomlError } from "smol-toml";
import { readFileCapped, TooLargeError } from "../core/mod.ts";
import {
  canonicalArch,
  isArtifactDigest,
  isChannel,
  isKeyid,
  isMode,
  isVersion,
  MAX_CMDLINE_FILE_BYTES,
  type Mode,
} from "../verify/mod.ts";
import { ClientError } from "./errors.ts";
import { httpUrlHint } from "../net/mod.ts";

/** Largest policy file read, in bytes. */
export const MAX_POLICY_BYTES = 64 * 1024;
/** Most DHT bootstrap peers accepted. */
export const MAX_BOOTSTRAP_PEERS = 32;
/** Most submitter keys in `node_accept_jobs`. */
export const MAX_NODE_SUBMITTERS = 64;

/**
 * The effective policy: how this machine boots and where it looks for a
 * release. Read from `/etc/phase/policy.toml` and the kernel command line
 * ({@link loadPolicy}); frozen.
 */
export interface Policy {
  /** Boot mode: `internet`, `local` (LAN only) or `private` (tmpfs only, Tor optional). */
  readonly mode: Mode;
  /** Release channel wanted (e.g. `stable`). */
  readonly channel: string;
  /** Whether fetched artifacts may be kept in a persistent cache; forced false in private mode. */
  readonly cacheEnabled: boolean;
  /** Lowest release version accepted (rollback protection), or undefined for no minimum. */
  readonly minVersion: string | undefined;
  /** Whether a private-mode boot may reach its provider through Tor. */
  readonly allowTor: boolean;
  /** Manual manifest URL ("" when none). */
  readonly provider: string;
  /** True when the provider came from the kernel command line (then it goes first). */
  readonly providerFromCmdline: boolean;
  /** DHT bootstrap multiaddrs (extension of §6: `bootstrap = [...]`, `phase.bootstrap=a,b`). */
  readonly bootstrap: readonly string[];
  /** Arch asked for (extension: `arch = "amd64"`, `phase.arch=`); undefined means this machine's. */
  readonly arch: string | undefined;
  /**
   * Submitter keyids the booted target's Plasm node accepts jobs from
   * (extension: `node_accept_jobs = ["ed25519:<hex>"]`). Empty and not
   * {@link Policy.unsafeNodeOpen}: the target starts no node (TM-22).
   */
  readonly nodeAcceptJobs: readonly string[];
  /** The target's node accepts jobs from any peer, rate-limited (extension: `unsafe_node_open`). */
  readonly unsafeNodeOpen: boolean;
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
  nodeAcceptJobs: Object.freeze([]) as readonly string[],
  unsafeNodeOpen: false,
});

function policyError(where: string, message: string, hint?: string): ClientError {
  return new ClientError("E_POLICY", `${where}: ${message}`, {
    hint: hint ??
      "see formats.md §6: mode, channel, cache_enabled, min_version, allow_tor, provider, bootstrap, arch, node_accept_jobs, unsafe_node_open",
  });
}

/** Deepest nesting of TOML arrays / inline tables accepted (the schema needs 1). */
export const MAX_POLICY_DEPTH = 4;

/** The 1-based line where top-level `key` is assigned, for error messages (0: not found). */
function lineOf(text: string, key: string): number {
  const lines = text.split("\n");
  for (let n = 0; n < lines.length; n++) {
    const m = /^\s*"?([A-Za-z0-9_-]+)"?\s*=/.exec(lines[n]);
    if (m && m[1] === key) return n + 1;
  }
  return 0;
}

/**
 * Parses TOML with smol-toml: the full TOML 1.0 grammar, so integers,
 * tables and dotted keys are syntax the reader understands, and the schema
 * in {@link parsePolicy} then says what is allowed. Syntax errors name the
 * line and column; `__proto__` / `constructor` keys are refused.
 */
function parseToml(text: string, file: string): Record<string, unknown> {
  if (new TextEncoder().encode(text).length > MAX_POLICY_BYTES) {
    throw policyError(file, `larger than ${MAX_POLICY_BYTES} bytes`);
  }
  try {
    return parseTomlText(text, { maxDepth: MAX_POLICY_DEPTH, unsafeKeyBehaviour: "throw" });
  } catch (err) {
    if (err instanceof TomlError) {
      const key = /^\s*"?([A-Za-z0-9_.-]+)"?\s*=/.exec(text.split("\n")[err.line - 1] ?? "")?.[1];
      const message = err.message.split("\n")[0].replace(/^Invalid TOML document: /, "");
      throw policyError(`${file}:${err.line}:${err.column}${key ? `: ${key}` : ""}`, message);
    }
    throw policyError(file, (err as Error).message);
  }
}

/** How a TOML value is named in an error. */
function describe(v: unknown): string {
  if (Array.isArray(v)) return "an array";
  if (typeof v === "number" || typeof v === "bigint") return "a number";
  if (v !== null && typeof v === "object") {
    return typeof (v as { toISOString?: unknown }).toISOString === "function"
      ? "a date"
      : "a table";
  }
  return `a ${typeof v}`;
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
    throw policyError(where, `provider '${v}' is not a URL`, httpUrlHint(v));
  }
  if (u.protocol !== "http:" && u.protocol !== "https:") {
    throw policyError(where, `provider '${v}' must be http(s)`, httpUrlHint(v));
  }
  return u.href;
}
function checkArch(v: string, where: string): string {
  const a = canonicalArch(v);
  if (!a) throw policyError(where, `arch must be amd64 or arm64, got '${v}'`);
  return a;
}
function checkSubmitters(v: string[], where: string): string[] {
  if (v.length > MAX_NODE_SUBMITTERS) {
    throw policyError(where, `more than ${MAX_NODE_SUBMITTERS} submitter keys`);
  }
  for (const k of v) {
    if (!isKeyid(k)) {
      throw policyError(
        where,
        `'${k}' is not a keyid ed25519:<64 hex>`,
        "'deno task job key' prints a submitter's keyid",
      );
    }
  }
  return [...new Set(v)];
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

/**
 * Parses a policy file's text into a full policy (defaults for missing
 * keys). Strict schema: unknown keys (also tables) are refused, each value
 * must have its key's type, and errors name the file, line and key.
 */
export function parsePolicy(text: string, file = "policy.toml"): Policy {
  const doc = parseToml(text, file);
  const p: { -readonly [K in keyof Policy]: Policy[K] } = { ...DEFAULT_POLICY };
  for (const [key, value] of Object.entries(doc)) {
    const line = lineOf(text, key);
    const where = `${file}${line ? `:${line}` : ""}: ${key}`;
    const str = () => {
      if (typeof value !== "string") {
        throw policyError(where, `must be a string, got ${describe(value)}`);
      }
      return value;
    };
    const bool = () => {
      if (typeof value !== "boolean") {
        throw policyError(where, `must be true or false, got ${describe(value)}`);
      }
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
        if (!Array.isArray(value) || !value.every((v) => typeof v === "string")) {
          throw policyError(
            where,
            `must be an array of multiaddr strings, got ${describe(value)}`,
          );
        }
        p.bootstrap = Object.freeze(checkBootstrap(value as string[], where));
        break;
      case "node_accept_jobs":
        if (!Array.isArray(value) || !value.every((v) => typeof v === "string")) {
          throw policyError(where, `must be an array of keyid strings, got ${describe(value)}`);
        }
        p.nodeAcceptJobs = Object.freeze(checkSubmitters(value as string[], where));
        break;
      case "unsafe_node_open":
        p.unsafeNodeOpen = bool();
        break;
      default:
        throw policyError(
          where,
          `unknown ${
            value !== null && typeof value === "object" && !Array.isArray(value) ? "table" : "key"
          } '${key}'`,
        );
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
 * Command-line words of a Secure Boot seed's dm-verity parameters: the
 * image build writes them into the signed command line, the seed's /init
 * opens its partition with them and phase-boot hands them on (TM-14).
 */
export const SEED_VERITY_KEYS: Readonly<{ rootHash: string; salt: string; blocks: string }> = Object
  .freeze({
    rootHash: "phase.verity",
    salt: "phase.verity_salt",
    blocks: "phase.verity_blocks",
  });

/**
 * Command-line word of a USB seed naming its own partition's bytes: the
 * image build writes the sha256 (hex) of the squashfs it puts there, which
 * is also the release's `rootfs` artifact. phase-boot hands it to fetch as
 * `--have`, so those 40 MiB are not downloaded again (issue 17); the target
 * hashes what it reads from the partition before it uses it (TM-01).
 */
export const SEED_ROOTFS_KEY = "phase.seed_rootfs";

/**
 * Command-line words the seed's /init reads, not the policy: the dm-verity
 * parameters of a Secure Boot seed and the target's fallback mark. Known,
 * so not reported as ignored.
 */
export const SEED_INIT_KEYS: ReadonlySet<string> = new Set([
  ...Object.values(SEED_VERITY_KEYS),
  "phase.boot",
]);

/**
 * Applies `phase.*` overrides from a kernel command line to a policy.
 * Invalid values of known keys are errors; unknown `phase.*` keys are
 * returned in `ignored` so the caller can log them.
 */
export function applyCmdline(policy: Policy, cmdline: string): LoadedPolicy {
  const p: { -readonly [K in keyof Policy]: Policy[K] } = { ...policy };
  const ignored: string[] = [];
  const seedWords = new Map<string, string>();
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
      case SEED_ROOTFS_KEY:
        // The digest format's owner is verify/ (a manifest's artifact digest).
        if (!isArtifactDigest(`sha256:${value}`)) {
          throw policyError(where, `needs 64 lowercase hex digits (a sha256), got '${value}'`);
        }
        seedWords.set(key, value);
        break;
      default:
        if (SEED_INIT_KEYS.has(key)) seedWords.set(key, value);
        else ignored.push(word);
    }
  }
  if (p.mode === "private") p.cacheEnabled = false;
  // In `ROOTHASH:SALT:BLOCKS` order.
  const keys = [SEED_VERITY_KEYS.rootHash, SEED_VERITY_KEYS.salt, SEED_VERITY_KEYS.blocks];
  const verity = keys.map((k) => seedWords.get(k));
  if (verity.some((v) => v !== undefined) && !verity.every((v) => v)) {
    throw policyError(
      `kernel command line: ${SEED_VERITY_KEYS.rootHash}`,
      `needs all of ${keys.join(", ")}`,
    );
  }
  return {
    policy: Object.freeze(p),
    ignored,
    ...(verity.every((v) => v) ? { seedVerity: verity.join(":") } : {}),
    ...(seedWords.has(SEED_ROOTFS_KEY)
      ? { seedRootfs: `sha256:${seedWords.get(SEED_ROOTFS_KEY)}` }
      : {}),
  };
}

/**
 * Policy values given one by one (as flags carry them from the boot
 * orchestrator to discovery); each is checked as in the policy file, and
 * an absent one keeps its default.
 */
export interface PolicyValues {
  /** Boot mode: `internet`, `local` or `private`. */
  readonly mode?: string;
  /** Release channel (e.g. `stable`). */
  readonly channel?: string;
  /** Manual manifest URL (http or https). */
  readonly provider?: string;
  /** The provider came from the kernel command line: ask it first. */
  readonly providerFirst?: boolean;
  /** DHT bootstrap multiaddrs (`/ip4/.../tcp/...`), at most 32. */
  readonly bootstrap?: readonly string[];
  /** Arch asked for (`amd64` or `arm64`; aliases such as `x86_64` are accepted). */
  readonly arch?: string;
}

/**
 * A policy from values another process already loaded and validated (the
 * boot orchestrator): the same checks as the file and the command line,
 * no file read. Private mode still forces the cache off.
 */
export function policyFromValues(v: PolicyValues, where = "flags"): Policy {
  const p: { -readonly [K in keyof Policy]: Policy[K] } = { ...DEFAULT_POLICY };
  if (v.mode !== undefined) p.mode = checkMode(v.mode, `${where}: mode`);
  if (v.channel !== undefined) p.channel = checkChannel(v.channel, `${where}: channel`);
  if (v.provider !== undefined) p.provider = checkUrl(v.provider, `${where}: provider`);
  if (v.providerFirst) {
    if (!p.provider) throw policyError(`${where}: provider-first`, "needs a provider");
    p.providerFromCmdline = true;
  }
  if (v.bootstrap) {
    p.bootstrap = Object.freeze(checkBootstrap([...v.bootstrap], `${where}: bootstrap`));
  }
  if (v.arch !== undefined) p.arch = checkArch(v.arch, `${where}: arch`);
  if (p.mode === "private") p.cacheEnabled = false;
  return Object.freeze(p);
}

/** Where {@link loadPolicy} reads the policy from; every source is optional. */
export interface LoadPolicyOptions {
  /** The policy file (e.g. `/etc/phase/policy.toml`); a missing file means the defaults. */
  policyPath?: string;
  /**
   * A file holding the kernel command line (e.g. a copy of `/proc/cmdline`),
   * read when `cmdline` is not given; a missing file means no overrides.
   */
  cmdlinePath?: string;
  /** The kernel command line itself. */
  cmdline?: string;
}

/** A policy with the kernel command line applied. */
export interface LoadedPolicy {
  /** The effective policy. */
  policy: Policy;
  /** `phase.*` words of the command line that no key matched, for the caller to log. */
  ignored: string[];
  /**
   * A Secure Boot seed's dm-verity parameters from its signed command line
   * (`phase.verity`, `phase.verity_salt`, `phase.verity_blocks`) as
   * `ROOTHASH:SALT:BLOCKS`, for `phase-kexec load --seed-verity` (TM-14;
   * phase-kexec checks the values). Absent without them.
   */
  seedVerity?: string;
  /**
   * The digest (`sha256:<hex>`) of the bytes on a USB seed's own partition
   * ({@link SEED_ROOTFS_KEY}), for `phase-fetch --have`. Absent without it.
   */
  seedRootfs?: string;
}

/**
 * Loads the effective policy: the file (absent: defaults), then the kernel
 * command line. Both reads are capped. Throws a {@link ClientError}
 * (`E_POLICY`) naming the file, line and key of a value it refuses.
 */
export async function loadPolicy(opts: LoadPolicyOptions = {}): Promise<LoadedPolicy> {
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
          { cause: err, hint: "give --policy a readable file under /etc/phase (docs/policy.md)" },
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
          {
            cause: err,
            hint: "give --cmdline a readable copy of the command line, e.g. /run/phase/cmdline",
          },
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
    if (err instanceof TypeError) {
      throw new ClientError("E_POLICY", `${path} is not UTF-8`, {
        hint: "write the policy as UTF-8 TOML (docs/policy.md)",
      });
    }
    if (err instanceof TooLargeError) {
      throw new ClientError("E_POLICY", err.message, {
        cause: err,
        hint: "a policy is a few lines of TOML (docs/policy.md); is this the right file?",
      });
    }
    throw err;
  }
}
