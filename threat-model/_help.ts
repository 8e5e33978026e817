/**
 * `deno task docs:permissions --help`.
 *
 * @module
 */
import type { HelpSpec } from "../cli/mod.ts";

/** What `deno task docs:permissions --help` prints. */
export const DOCS_HELP: HelpSpec = {
  summary:
    "rewrites threat-model/permissions.md from the permission table in deno.json (run it after " +
    "changing the table; a test fails while the two disagree).",
  usage: "deno task docs:permissions",
  flags: [],
  examples: [
    "deno task docs:permissions",
    "deno task docs:permissions && git diff threat-model/permissions.md",
  ],
  codes: ["E_USAGE", "E_IO"],
};
