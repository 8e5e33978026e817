/**
 * The shell of every entrypoint: guard the permission set, run, map errors
 * to `phase-<name>: error: ...` + `hint:` and a distinct exit status.
 *
 * @module
 */
import {
  describe,
  type ErrorCode,
  EXIT_STATUS,
  exitStatusOf,
  explainRefusal,
  isErrorCode,
  type NamedPath,
  PhaseError,
} from "../core/mod.ts";
import { assertPermissionSet, fsScopes, phaseVersion } from "./permissions.ts";

/** One flag as `--help` lists it. */
export interface FlagHelp {
  /** As typed, with its value: `--channel NAME`. */
  readonly flag: string;
  /** What it does. */
  readonly text: string;
  /** Its default in words, when it has one (`stable`, `./.phase/provider`). */
  readonly default?: string;
}

/** What `--help` prints: every entrypoint declares it once. */
export interface HelpSpec {
  /** One or two sentences: what the command does. */
  readonly summary: string;
  /** The usage line(s), starting with `deno task ...`. */
  readonly usage: string;
  /** Every flag, with its default. */
  readonly flags: readonly FlagHelp[];
  /** At least two complete example command lines. */
  readonly examples: readonly string[];
  /** The error codes the command can exit with (statuses come from the registry). */
  readonly codes: readonly ErrorCode[];
}

/** What an entrypoint declares once. */
export interface Entrypoint {
  /** Binary name without the `phase-` prefix. */
  readonly name: string;
  /** Its permission set in deno.json. */
  readonly permissionSet: string;
  /** Its `--help` text; without it `--help` prints the usage only. */
  readonly help?: HelpSpec;
  /** The work; returns the exit status. */
  readonly run: (args: string[]) => Promise<number> | number;
}

/** Renders a {@link HelpSpec} as the text `--help` prints. */
export function renderHelp(name: string, help: HelpSpec): string {
  const width = Math.max(...help.flags.map((f) => f.flag.length), 10);
  const lines = [
    `phase-${name} ${phaseVersion()}: ${help.summary}`,
    "",
    help.usage.startsWith("usage:") ? help.usage : `usage: ${help.usage}`,
    "",
    "flags:",
    ...help.flags.map((f) =>
      `  ${f.flag.padEnd(width)}  ${f.text}${
        f.default !== undefined ? ` (default: ${f.default})` : ""
      }`
    ),
    "  --help, -h".padEnd(width + 2) + "  print this help and exit 0",
    "  --version".padEnd(width + 2) + "  print the version and exit 0",
    "",
    "examples:",
    ...help.examples.map((e) => `  ${e}`),
    "",
    "exit statuses:",
    "  0   success",
    ...["E_USAGE", "E_PERMISSIONS", ...help.codes.filter((c) => c !== "E_USAGE"), "E_INTERNAL"]
      .filter((c, i, all) => all.indexOf(c) === i)
      .sort((a, b) => EXIT_STATUS[a as ErrorCode] - EXIT_STATUS[b as ErrorCode])
      .map((c) => `  ${String(EXIT_STATUS[c as ErrorCode]).padEnd(3)} ${c}`),
    "",
  ];
  return lines.join("\n");
}

/**
 * The hint printed for an error whose thrower gave none (issue 11 §4:
 * every error has a `hint:` line). One per code, so a new code cannot be
 * added without one (the type requires every key). Throw sites that know
 * more give their own.
 */
export const DEFAULT_HINTS: Readonly<Record<ErrorCode, string>> = {
  E_FINDINGS: "each finding above names the file and the rule; fix them and run the command again",
  E_USAGE: "run the command with --help for its flags and examples",
  E_SCHEMA: "the document is not one Phase signed; fetch or sign it again",
  E_SIGNATURE:
    "the trust file must name the key that signed it: check --trust (deno task keygen prints the keyid)",
  E_MISMATCH: "the manifest is for another channel or arch: check --channel/--arch and the URL",
  E_EXPIRED: "sign the release again (deno task sign), or check this machine's clock",
  E_ROLLBACK: "this version is older than one accepted before; sign a newer version",
  E_SIZE: "the file differs from what was signed: fetch it again or sign the release again",
  E_DIGEST: "the file differs from what was signed: fetch it again or sign the release again",
  E_TRUST: "give --trust a trust file deno task keygen wrote, e.g. ./.phase/trust/trust.json",
  E_IO:
    "check that the path exists and lies inside the command's permission set (--help lists defaults)",
  E_PERMISSIONS: "run it through 'deno task' or the compiled binary, never with -A",
  E_EXISTS: "move the existing file away first; Phase never overwrites a key or signature",
  E_KEY: "give --key a private key deno task keygen wrote, e.g. ./.phase/keys/release.pem",
  E_KEY_MODE: "chmod 600 the key file",
  E_ARTIFACT: "a release needs ROOT/CHANNEL/ARCH/kernel and initramfs",
  E_MANIFEST: "sign the release anew (deno task sign) instead of extending this manifest",
  E_POLICY: "see docs/policy.md for policy.toml and the kernel command line",
  E_FETCH: "check the URL and that the provider is running (deno task provider status URL)",
  E_TOO_LARGE: "the server sent more than Phase accepts; is the URL a Phase provider?",
  E_STALL: "the network or the provider is too slow; try again, or raise --stall-timeout",
  E_REDIRECT: "give the final URL directly; Phase follows only same-origin redirects",
  E_PRIVATE_ROOT: "mount a tmpfs there first (mount -t tmpfs tmpfs /run/phase)",
  E_CACHE: "remove the cache directory; it is rebuilt on the next fetch",
  E_CAPTIVE: "log in to the network's portal elsewhere, or give a manual provider URL",
  E_NO_CANDIDATE:
    "start a provider (deno task serve) or give its URL (--provider, phase.provider=)",
  E_TOR: "check that tor is installed and its torrc is valid",
  E_TOOL: "install the missing tool (.ci/apt-packages lists them)",
  E_INPUT: "check the input the message names (deno task images --help)",
  E_BUILD: "the message above says which step failed; run again with a clean --out",
  E_BIND: "pick another --port or --host",
  E_ROOT: "give --root a readable directory of releases, e.g. ./artifacts",
  E_STATE: "give --state a writable directory, e.g. ./.phase/provider",
  E_CATALOG: "check the releases under --root: each needs a kernel and initramfs",
  E_RUNTIME: "use Deno 2.9.6 (deno.json); deno compile needs denort (online, or DENORT_BIN)",
  E_COMPILE: "the deno compile output above says why",
  E_NETWORK: "check the cable or Wi-Fi and that a DHCP server answers",
  E_STEP: "the step's own error is printed above",
  E_NO_RELEASE:
    "start a provider on this network, or set phase.provider=URL on the kernel command line",
  E_KEXEC: "see docs/troubleshooting.md: kexec refused and the chainload fallback",
  E_STAGE: "check that /run/phase is writable and has room for the kernel and initramfs",
  E_LOAD: "the kernel refused the image; see docs/troubleshooting.md (lockdown, kexec_file_load)",
  E_EXEC: "see docs/troubleshooting.md: kexec refused and the chainload fallback",
  E_FDT: "arm64: the firmware device tree must be copied to /run/phase/fdt by the seed's init",
  E_FALLBACK:
    "see docs/troubleshooting.md: the chainload fallback needs a mounted ESP and efivarfs",
  E_NOT_LOADED: "run 'deno task kexec load ...' first",
  E_MODULE: "build a WASI preview1 command module (or a listed component)",
  E_IMPORT: "a job may import only wasi_snapshot_preview1 functions",
  E_TRAP: "a fault in the job; the receipt records it",
  E_TIMEOUT: "raise --timeout-ms if the job is meant to run longer",
  E_MEMORY: "raise --memory-mb if the job needs more memory",
  E_OUTPUT: "raise --output-kb if the job is meant to write more",
  E_EXIT: "the status is the job's own; its stderr may say why",
  E_RECEIPT: "the receipt is not one Phase wrote; check the file",
  E_INTERRUPTED: "run the same command again: it resumes from the partial files it kept",
  E_REJECTED: "the node said why; another node, or the node's --allow list, may take the job",
  E_PROTOCOL: "the peer may run another version of Phase; try another node",
  E_NO_NODE: "check --peer or --bootstrap, and that a node offers what --select asks for",
  E_UNVERIFIED: "do not use this output; the receipt names the node that signed it",
  E_DISAGREE:
    "keep both receipts: they prove one node lied ('deno task receipt verify' checks each)",
  E_CANCELLED: "the job was cancelled on purpose; submit it again to run it",
  E_CONFIG: "check the node's flags and config file; 'deno task node --help' lists them",
  E_INTERNAL: "this is a bug in Phase; please report it with the command you ran",
};

/** Formats an error the way every Phase CLI prints it: the message, then a `hint:` line. */
export function formatError(name: string, err: unknown): string {
  let text = `phase-${name}: error: ${describe(err)}\n`;
  if (err instanceof PhaseError && err.hint) text += `hint: ${err.hint}\n`;
  else if (err instanceof PhaseError && isErrorCode(err.code)) {
    text += `hint: ${DEFAULT_HINTS[err.code]}\n`;
  } else text += `hint: ${DEFAULT_HINTS.E_INTERNAL}\n`;
  return text;
}

/** True when the user asked for help. */
export function wantsHelp(args: readonly string[]): boolean {
  return args.includes("--help") || args.includes("-h");
}

/**
 * True when the user asked for the version: `--version` before any `--`,
 * and not followed by a value. `deno task sign ... --version 2026.11.20`
 * names the release's version (issue 11: the README's sign line printed
 * "phase-sign 0.1.0" and signed nothing).
 */
export function wantsVersion(args: readonly string[]): boolean {
  const end = args.indexOf("--");
  const head = end < 0 ? args : args.slice(0, end);
  return head.some((a, i) =>
    a === "--version" && (i + 1 >= head.length || head[i + 1].startsWith("-"))
  );
}

/**
 * The paths a user named on the command line (`--cache DIR`,
 * `--cache=DIR`, `--artifact NAME=PATH`, positional arguments), so a
 * refusal can say which flag to change. Any value may be a path: only
 * those a refused path lies under are ever shown.
 */
export function namedPaths(args: readonly string[]): NamedPath[] {
  const out: NamedPath[] = [];
  const push = (flag: string, value: string) => {
    out.push({ flag, path: value });
    const eq = value.indexOf("=");
    // --artifact kernel=./x: the path is after the name.
    if (eq > 0 && !value.slice(0, eq).includes("/")) out.push({ flag, path: value.slice(eq + 1) });
  };
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === "--") {
      for (const rest of args.slice(i + 1)) push("argument", rest);
      break;
    }
    if (a.startsWith("--")) {
      const eq = a.indexOf("=");
      if (eq > 0) push(a.slice(0, eq), a.slice(eq + 1));
      else if (i + 1 < args.length && !args[i + 1].startsWith("-")) push(a, args[++i]);
    } else if (!a.startsWith("-")) {
      push("argument", a);
    }
  }
  return out;
}

/** Runs an entrypoint as a process: guard, work, exit. */
export async function main(entry: Entrypoint): Promise<never> {
  let status: number;
  try {
    assertPermissionSet(entry.permissionSet);
    if (wantsVersion(Deno.args)) {
      console.log(`phase-${entry.name} ${phaseVersion()}`);
      Deno.exit(0);
    }
    if (entry.help && wantsHelp(Deno.args)) {
      console.log(renderHelp(entry.name, entry.help));
      Deno.exit(0);
    }
    status = await entry.run(Deno.args);
  } catch (err) {
    if (wantsHelp(Deno.args) && err instanceof PhaseError && err.code === "E_USAGE" && err.hint) {
      // No entrypoint declares --help: strict parsing refuses it before any
      // work is done, and the usage it carries is the help text.
      console.log(err.hint.startsWith("usage:") ? err.hint : `usage: ${err.hint}`);
      Deno.exit(0);
    }
    // A path outside the set (or one the system refused) gets the set's
    // directories and the flag to change, in every entrypoint alike.
    const explained = explainRefusal(err, fsScopes(entry.permissionSet), namedPaths(Deno.args));
    Deno.stderr.writeSync(new TextEncoder().encode(formatError(entry.name, explained)));
    status = exitStatusOf(explained);
  }
  Deno.exit(status);
}
