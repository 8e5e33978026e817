/**
 * `deno task build --help`.
 *
 * @module
 */
import type { HelpSpec } from "../cli/mod.ts";

/** What `deno task build --help` prints. */
export const BUILD_HELP: HelpSpec = {
  summary:
    "compiles each entrypoint with deno compile under exactly its permission set (no prompt, imports " +
    "denied) into one binary per set. Needs denort: online, or DENORT_BIN.",
  usage: "deno task build [--out DIR] [--only phase-NAME]...",
  flags: [
    { flag: "--out DIR", text: "where the binaries go (an absolute path)", default: "./dist" },
    {
      flag: "--only NAME",
      text: "build only this binary, e.g. phase-verify (repeatable)",
      default: "all",
    },
  ],
  examples: [
    "deno task build",
    "DENORT_BIN=/path/to/denort deno task build --only phase-verify --only phase-fetch",
  ],
  codes: ["E_USAGE", "E_RUNTIME", "E_COMPILE"],
};
