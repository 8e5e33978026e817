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
      .map((c) => `  ${String(EXIT_STATUS[c as ErrorCode]).padEnd(3)} ${c}`),
    "",
  ];
  return lines.join("\n");
}

/** Formats an error the way every Phase CLI prints it. */
export function formatError(name: string, err: unknown): string {
  let text = `phase-${name}: error: ${describe(err)}\n`;
  if (err instanceof PhaseError && err.hint) text += `hint: ${err.hint}\n`;
  else if (!(err instanceof PhaseError)) {
    text += "hint: this is a bug in Phase; please report it with the command you ran\n";
  }
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
