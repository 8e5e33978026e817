/**
 * `deno task floor`: shows the rollback floors (TM-02) and removes one on
 * purpose. Showing is read-only; a reset needs the state directory, the
 * channel, the arch and a confirmation flag nobody types by accident, and
 * it logs a warning with the value it removed.
 *
 * @module
 */
import { consoleLogger, type Logger, UsageError } from "../core/mod.ts";
import { type HelpSpec, parseFlags, required } from "../cli/mod.ts";
import { type FloorReport, floorReset, floorShow } from "./floor.ts";

/** Permission set of the floor entrypoint: read+write the floors' state folders only. */
export const FLOOR_PERMISSION_SET = "floor";

/** The confirmation `floor reset` requires, spelled out so nobody types it by accident. */
export const CONFIRM_RESET_FLAG = "yes-reset-rollback-floor";

/**
 * Where floors live when `--state` is not given: the fetch cache of a
 * checkout (`./.cache`, floor in `./.cache/state`) and of an installed
 * machine (`/var/cache/phase/state`).
 */
export const DEFAULT_FLOOR_STATES: readonly string[] = ["./.cache/state", "/var/cache/phase/state"];

const USAGE = `deno task floor show [--state DIR]... [--json]
       deno task floor reset --state DIR --channel C --arch A --${CONFIRM_RESET_FLAG} [--json]`;

/** The flags of `deno task floor show`. */
export const FLOOR_SHOW_FLAGS = {
  state: { type: "string", multiple: true },
  json: { type: "boolean" },
} as const;

/** The flags of `deno task floor reset`. */
export const FLOOR_RESET_FLAGS = {
  state: { type: "string" },
  channel: { type: "string" },
  arch: { type: "string" },
  [CONFIRM_RESET_FLAG]: { type: "boolean" },
  json: { type: "boolean" },
} as const;

/** What `deno task floor --help` prints. */
export const FLOOR_HELP: HelpSpec = {
  summary: "Shows the rollback floors (the lowest release version each channel/arch accepts, " +
    "TM-02) and removes one on purpose. A fetch raises the floor; only 'reset' removes it.",
  usage: USAGE,
  flags: [
    {
      flag: "--state DIR",
      text: "a state folder holding floor.json, or a fetch cache root (its state/ is used); " +
        "repeat for several with 'show'; required by 'reset'",
      default: `show: ${DEFAULT_FLOOR_STATES.join(" and ")}`,
    },
    { flag: "--channel C", text: "reset: the release channel whose floor is removed" },
    { flag: "--arch A", text: "reset: the arch (amd64, arm64 or an alias)" },
    {
      flag: `--${CONFIRM_RESET_FLAG}`,
      text: "reset: confirms that older signed releases become acceptable again",
      default: "absent: reset refuses",
    },
    { flag: "--json", text: "one JSON document on stdout", default: "human-readable lines" },
  ],
  examples: [
    "deno task floor show --state ./.cache/state",
    `deno task floor reset --state ./.cache/state --channel stable --arch amd64 --${CONFIRM_RESET_FLAG}`,
  ],
  codes: ["E_USAGE", "E_IO"],
};

function showLines(reports: readonly FloorReport[]): string[] {
  const lines: string[] = [];
  for (const r of reports) {
    if (!r.exists) {
      lines.push(`${r.file}: no floor file (no release accepted here yet)`);
      continue;
    }
    if (r.floors.length === 0) lines.push(`${r.file}: no floors`);
    else lines.push(`${r.file}:`);
    for (const f of r.floors) lines.push(`  ${f.channel}/${f.arch}  ${f.version}`);
  }
  return lines;
}

/** Runs `floor show|reset`; returns the exit status. */
export async function runFloor(
  args: string[],
  out: (line: string) => void = console.log,
  logger: Logger = consoleLogger("floor"),
): Promise<number> {
  const [cmd, ...rest] = args;
  if (cmd === "show") {
    const { values } = parseFlags(rest, FLOOR_SHOW_FLAGS, USAGE);
    const reports = await floorShow(values.state?.length ? values.state : DEFAULT_FLOOR_STATES);
    if (values.json) out(JSON.stringify({ ok: true, states: reports }));
    else for (const l of showLines(reports)) out(l);
    return 0;
  }
  if (cmd === "reset") {
    const { values } = parseFlags(rest, FLOOR_RESET_FLAGS, USAGE);
    const state = required(values.state, "state", USAGE);
    const channel = required(values.channel, "channel", USAGE);
    const arch = required(values.arch, "arch", USAGE);
    if (values[CONFIRM_RESET_FLAG] !== true) {
      throw new UsageError(
        `refusing to reset the rollback floor of ${channel}/${arch} without --${CONFIRM_RESET_FLAG}`,
        "a reset lets this machine accept older signed releases again (TM-02); if that is " +
          `what you want: deno task floor reset --state ${state} --channel ${channel} ` +
          `--arch ${arch} --${CONFIRM_RESET_FLAG}`,
      );
    }
    const r = await floorReset(state, channel, arch, logger);
    if (values.json) out(JSON.stringify({ ok: true, reset: r }));
    else {
      out(
        `phase-floor: WARNING: removed the rollback floor ${r.previous} of ${r.channel}/${r.arch} ` +
          `from ${r.file}; older signed releases are accepted until the next fetch sets a new floor`,
      );
    }
    return 0;
  }
  throw new UsageError(
    cmd === undefined ? "missing command: show or reset" : `unknown command '${cmd}'`,
    USAGE,
  );
}
