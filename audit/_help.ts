/**
 * `deno task audit --help`.
 *
 * @module
 */
import type { HelpSpec } from "../cli/mod.ts";

/** What `deno task audit --help` prints. */
export const AUDIT_HELP: HelpSpec = {
  summary:
    "reviews every entrypoint against the permission table in deno.json: static rules, a probe run " +
    "inside each entrypoint under its own set, and the compiled binaries in --dist. Exits 1 on any finding.",
  usage: "deno task audit [--dist DIR] [--deb-root DIR] [--static-only] [--json]",
  flags: [
    {
      flag: "--dist DIR",
      text: "where the compiled binaries are (missing ones are skipped)",
      default: "./dist",
    },
    {
      flag: "--deb-root DIR",
      text: "an unpacked Debian package (dpkg-deb -x): check its launchers against the table",
      default: "none",
    },
    { flag: "--static-only", text: "skip the probes and the binaries", default: "off" },
    {
      flag: "--json",
      text: "print the summary (table digest, findings) as one JSON line even on a terminal",
      default: "JSON when stdout is not a terminal",
    },
  ],
  examples: ["deno task audit", "deno task audit --static-only --json"],
  codes: ["E_USAGE", "E_FINDINGS"],
};
