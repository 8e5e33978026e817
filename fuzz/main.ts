/**
 * Entrypoint `deno task fuzz`: runs the fuzz targets of fuzz/targets.ts
 * (every parser of untrusted bytes) for a number of inputs from a seed,
 * prints each target's figures, and exits 1 on any finding with
 * fast-check's report (the shrunk input, the seed and path that replay it).
 * A development tool: never compiled or shipped.
 *
 * @module
 */
import { PhaseError, UsageError } from "../core/mod.ts";
import { type HelpSpec, main, parseFlags, parseIntFlag } from "../cli/mod.ts";
import { runTarget } from "./harness.ts";
import { httpDifferences, httpExamples } from "./targets_net.ts";
import { targetNamed, TARGETS } from "./targets.ts";

const USAGE =
  "deno task fuzz [--runs N] [--seed S] [--target NAME[,NAME...]] [--path P] [--list] [--json]";

/** Inputs per target when --runs is not given. */
export const DEFAULT_RUNS = 10_000;

/** The flags of `deno task fuzz` (its `--help` lists each one; testing/help_test.ts checks). */
export const FUZZ_FLAGS = {
  runs: { type: "string" },
  seed: { type: "string" },
  target: { type: "string" },
  path: { type: "string" },
  list: { type: "boolean" },
  json: { type: "boolean" },
} as const;

/** What `deno task fuzz --help` prints. */
export const FUZZ_HELP: HelpSpec = {
  summary:
    "fuzzes every parser of untrusted bytes (fast-check): each input must give a value or the " +
    "parser's own typed error, within its deadline and caps; exits 1 on any finding with the input " +
    "that replays it.",
  usage: USAGE,
  flags: [
    { flag: "--runs N", text: "inputs per target", default: String(DEFAULT_RUNS) },
    {
      flag: "--seed S",
      text: "the random seed (printed, so a run can be replayed)",
      default: "from the clock",
    },
    {
      flag: "--target NAME[,NAME...]",
      text: "only these targets (--list names them)",
      default: "all",
    },
    {
      flag: "--path P",
      text: "replay one failing input: the path fast-check printed",
      default: "none",
    },
    { flag: "--list", text: "print the targets and the parser each one drives", default: "off" },
    { flag: "--json", text: "one JSON line per target", default: "off" },
  ],
  examples: [
    "deno task fuzz --runs 200 --seed 1",
    "deno task fuzz --target http-response,range --runs 1000000 --seed 20261130",
  ],
  codes: ["E_USAGE", "E_FINDINGS"],
};

if (import.meta.main) {
  await main({
    name: "fuzz",
    permissionSet: "fuzz",
    help: FUZZ_HELP,
    run: async (args) => {
      const { values } = parseFlags(args, FUZZ_FLAGS, USAGE);
      if (values.list) {
        for (const t of TARGETS) console.log(`${t.name.padEnd(20)} ${t.parser}`);
        return 0;
      }
      const runs = parseIntFlag(values.runs, "runs", {}, USAGE) ?? DEFAULT_RUNS;
      const seed = parseIntFlag(values.seed, "seed", {}, USAGE) ?? Date.now() % 2 ** 31;
      const names = values.target?.split(",") ?? TARGETS.map((t) => t.name);
      const targets = names.map((n) => {
        const t = targetNamed(n);
        if (!t) {
          throw new UsageError(
            `no fuzz target '${n}'`,
            `the targets are: ${TARGETS.map((x) => x.name).join(", ")}`,
          );
        }
        return t;
      });
      let failed = 0;
      for (const t of targets) {
        const r = await runTarget(t, { runs, seed, path: values.path });
        if (r.failed) failed++;
        const rate = r.ms > 0 ? Math.round(r.runs / (r.ms / 1000)) : r.runs;
        if (values.json) console.log(JSON.stringify({ ...r, perSecond: rate }));
        else {
          console.log(
            `${r.failed ? "FAIL" : "ok  "} ${t.name.padEnd(20)} ${
              String(r.runs).padStart(9)
            } inputs ${String(r.ms).padStart(8)} ms  ${rate}/s  seed ${seed}`,
          );
        }
        if (r.failed) console.log(r.report);
        if (t.name === "http-differential") {
          console.log(`  acceptance: ${JSON.stringify(httpDifferences)}`);
          console.log(`  examples: ${JSON.stringify(httpExamples)}`);
        }
      }
      if (failed > 0) {
        throw new PhaseError("E_FINDINGS", `${failed} fuzz target(s) found a failing input`, {
          hint:
            "replay with the same --seed and --target; make the shrunk input a regression test beside the parser",
        });
      }
      return 0;
    },
  });
}
