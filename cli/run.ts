/**
 * The shell of every entrypoint: guard the permission set, run, map errors
 * to `phase-<name>: error: ...` + `hint:` and a distinct exit status.
 *
 * @module
 */
import { describe, exitStatusOf, PhaseError } from "../core/mod.ts";
import { assertPermissionSet } from "./permissions.ts";

/** What an entrypoint declares once. */
export interface Entrypoint {
  /** Binary name without the `phase-` prefix. */
  readonly name: string;
  /** Its permission set in deno.json. */
  readonly permissionSet: string;
  /** The work; returns the exit status. */
  readonly run: (args: string[]) => Promise<number> | number;
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

/** Runs an entrypoint as a process: guard, work, exit. */
export async function main(entry: Entrypoint): Promise<never> {
  let status: number;
  try {
    assertPermissionSet(entry.permissionSet);
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
