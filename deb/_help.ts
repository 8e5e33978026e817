/**
 * `deno task deb --help`.
 *
 * @module
 */
import type { HelpSpec } from "../cli/mod.ts";

/** The usage line. */
export const DEB_USAGE =
  "deno task deb --arch amd64|arm64 --out DIR   (fetch the runtime first: sh deb/fetch_runtime.sh)";

/** What `--help` prints. */
export const DEB_HELP: HelpSpec = {
  summary:
    "builds phase_<version>_<arch>.deb reproducibly: the pinned Deno runtime, every entrypoint " +
    "bundled, one launcher per permission set in /usr/bin, the hardened phase-provider.service.",
  usage: DEB_USAGE,
  flags: [
    { flag: "--arch amd64|arm64", text: "Debian architecture of the package", default: "amd64" },
    {
      flag: "--out DIR",
      text: "folder the .deb is written to (inside ./dist or /tmp/phase: the 'deb' set's writes)",
    },
  ],
  examples: [
    "deno task deb --arch amd64 --out ./dist/deb   # after sh deb/fetch_runtime.sh",
    "SOURCE_DATE_EPOCH=1767225600 deno task deb --arch arm64 --out ./dist/deb",
    "lintian ./dist/deb/phase_0.1.0_amd64.deb",
  ],
  codes: ["E_USAGE", "E_INPUT", "E_DIGEST", "E_TOOL", "E_BUILD"],
};
