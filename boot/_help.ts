/**
 * `phase-boot --help`.
 *
 * @module
 */
import type { HelpSpec } from "../cli/mod.ts";
import { SEED_PATHS } from "./boot.ts";

/** What `deno task boot --help` prints. */
export const BOOT_HELP: HelpSpec = {
  summary:
    "the seed's boot chain: network, then discover, fetch, verify and kexec, each step its own " +
    "binary under its own permission set; in internet, local or private mode (policy.toml).",
  usage:
    "deno task boot [--bin DIR] [--trust FILE] [--policy FILE] [--cmdline FILE] [--cache DIR] [--private-root DIR] [--run DIR] [--dry-run]",
  flags: [
    {
      flag: "--bin DIR",
      text: "where the step binaries (phase-discover, ...) are",
      default: SEED_PATHS.bin,
    },
    { flag: "--trust FILE", text: "trust file the steps verify with", default: SEED_PATHS.trust },
    { flag: "--policy FILE", text: "policy.toml (docs/policy.md)", default: SEED_PATHS.policy },
    {
      flag: "--cmdline FILE",
      text: "copy of the kernel command line",
      default: SEED_PATHS.cmdline,
    },
    {
      flag: "--cache DIR",
      text: "the content-addressed cache (internet, local)",
      default: SEED_PATHS.cache,
    },
    {
      flag: "--private-root DIR",
      text: "the tmpfs root of private mode",
      default: SEED_PATHS.privateRoot,
    },
    {
      flag: "--run DIR",
      text: "runtime directory (last-error, interfaces)",
      default: SEED_PATHS.run,
    },
    {
      flag: "--dry-run",
      text: "run the chain with a kexec dry run: nothing is loaded or executed",
      default: "off",
    },
  ],
  examples: [
    "deno task boot --dry-run",
    "deno task boot --bin ./dist --trust /etc/phase/trust.json --policy /etc/phase/policy.toml --dry-run",
  ],
  codes: [
    "E_USAGE",
    "E_POLICY",
    "E_IO",
    "E_NETWORK",
    "E_TOR",
    "E_STEP",
    "E_NO_RELEASE",
    "E_KEXEC",
  ],
};
