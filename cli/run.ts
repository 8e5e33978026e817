/**
 * The shell of every entrypoint: guard the permission set, run, map errors
 * to `phase-<name>: error: ...` + `hint:` and a distinct exit status.
 *
 * @module
 */
import { describe, type ErrorCode, EXIT_STATUS, exitStatusOf, PhaseError } from "../core/mod.ts";
import { assertPermissionSet, phaseVersion } from "./permissions.ts";

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

/** True when the user asked for the version (`--version` before any `--`). */
export function wantsVersion(args: readonly string[]): boolean {
  const end = args.indexOf("--");
  return (end < 0 ? args : args.slice(0, end)).includes("--version");
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
    Deno.stderr.writeSync(new TextEncoder().encode(formatError(entry.name, err)));
    status = exitStatusOf(err);
  }
  Deno.exit(status);
}
