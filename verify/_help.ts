/**
 * `deno task verify --help`.
 *
 * @module
 */
import type { HelpSpec } from "../cli/mod.ts";

/** What `deno task verify --help` prints. */
export const VERIFY_HELP: HelpSpec = {
  summary:
    "checks a signed manifest offline: Ed25519 signatures against a trust file, channel, arch, expiry, " +
    "the rollback floor, and each artifact's size and SHA-256. Never uses the network.",
  usage:
    "deno task verify --manifest FILE --trust FILE [--channel C] [--arch A] [--min-version V] [--now RFC3339] [--artifact NAME=PATH]... [--state DIR] [--json]",
  flags: [
    { flag: "--manifest FILE", text: "the manifest.json to check (required)" },
    { flag: "--trust FILE", text: "trust file: the keys and threshold that must sign (required)" },
    { flag: "--channel C", text: "refuse a manifest for another channel", default: "any" },
    { flag: "--arch A", text: "refuse a manifest for another arch (amd64, arm64)", default: "any" },
    {
      flag: "--min-version V",
      text: "refuse a version below V",
      default: "none",
    },
    { flag: "--now RFC3339", text: "the time expiry is checked against", default: "the clock" },
    {
      flag: "--artifact NAME=PATH",
      text: "also hash this file and compare it with the manifest's NAME (repeatable)",
      default: "none",
    },
    {
      flag: "--state DIR",
      text: "directory whose floor.json holds the rollback floor",
      default: "none: no floor is read",
    },
    {
      flag: "--json",
      text: "print the result as one JSON line even on a terminal",
      default: "JSON when stdout is not a terminal",
    },
  ],
  examples: [
    "deno task verify --manifest ./artifacts/stable/amd64/manifest.json --trust ./.phase/trust/trust.json",
    "deno task verify --manifest ./artifacts/stable/amd64/manifest.json --trust ./.phase/trust/trust.json " +
    "--channel stable --arch amd64 --artifact kernel=./artifacts/stable/amd64/kernel --json",
  ],
  codes: [
    "E_USAGE",
    "E_SCHEMA",
    "E_SIGNATURE",
    "E_MISMATCH",
    "E_EXPIRED",
    "E_ROLLBACK",
    "E_SIZE",
    "E_DIGEST",
    "E_TRUST",
    "E_IO",
  ],
};
