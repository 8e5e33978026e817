/**
 * `phase-kexec --help`, and the help of each command (`load`, `exec`,
 * `fallback`): the first argument picks it.
 *
 * @module
 */
import type { FlagHelp, HelpSpec } from "../cli/mod.ts";
import { DEFAULT_EFIVARS, DEFAULT_ESP } from "./chainload.ts";
import { DEFAULT_STAGE_PARENT, FDT_SOURCE } from "./kexec.ts";

const STAGE: readonly FlagHelp[] = [
  { flag: "--manifest FILE", text: "the fetched manifest.json (required)" },
  { flag: "--trust FILE", text: "trust file; kexec verifies the manifest itself (required)" },
  {
    flag: "--artifact NAME=PATH",
    text: "a fetched artifact: kernel=PATH and initramfs=PATH (required, repeatable)",
  },
  {
    flag: "--mode M",
    text: "boot mode passed to the target: internet, local, private",
    default: "internet",
  },
  { flag: "--channel C", text: "refuse a manifest for another channel", default: "any" },
  { flag: "--arch A", text: "refuse a manifest for another arch", default: "any" },
  { flag: "--min-version V", text: "refuse a version below V", default: "none" },
  {
    flag: "--state DIR",
    text: "directory whose floor.json holds the rollback floor",
    default: "none",
  },
  { flag: "--now RFC3339", text: "the time expiry is checked against", default: "the clock" },
  {
    flag: "--dir DIR",
    text: "where the re-checked copies are staged",
    default: DEFAULT_STAGE_PARENT,
  },
];

const VERIFY_CODES: HelpSpec["codes"] = [
  "E_TRUST",
  "E_IO",
  "E_SCHEMA",
  "E_SIGNATURE",
  "E_MISMATCH",
  "E_EXPIRED",
  "E_ROLLBACK",
  "E_SIZE",
  "E_DIGEST",
  "E_STAGE",
];

const LOAD_ONLY: readonly FlagHelp[] = [
  {
    flag: "--method M",
    text: "auto (kexec_file_load, then classic kexec_load), file or classic",
    default: "auto",
  },
  { flag: "--fdt FILE", text: "(arm64) the device tree to pass on", default: FDT_SOURCE },
  {
    flag: "--seed-verity H:S:N",
    text:
      "a Secure Boot seed's dm-verity root hash, salt and data blocks (its phase.verity words), passed to the target as phase.seed_verity* so that it opens the seed partition through dm-verity too (TM-14; phase-boot passes it)",
  },
  { flag: "--exec", text: "execute the loaded kernel at once", default: "off" },
  {
    flag: "--json",
    text: "print the result as one JSON line even on a terminal",
    default: "JSON when stdout is not a terminal",
  },
];

const FALLBACK_ONLY: readonly FlagHelp[] = [
  { flag: "--esp DIR", text: "the mounted EFI system partition", default: DEFAULT_ESP },
  {
    flag: "--entry ID",
    text: "loader entry file written and selected once",
    default: "phase-chainload.conf",
  },
  { flag: "--efivars DIR", text: "the mounted efivarfs", default: DEFAULT_EFIVARS },
  { flag: "--no-reboot", text: "install the entry but do not reboot", default: "reboot" },
];

const DRY_RUN: FlagHelp = {
  flag: "--dry-run",
  text: "print what would run; change nothing",
  default: "off",
};

/** `phase-kexec load --help`. */
export const KEXEC_LOAD_HELP: HelpSpec = {
  summary:
    "verifies the manifest, stages and re-checks the kernel and initramfs, then loads them with " +
    "kexec (--exec: and executes). Loads exactly the verified bytes (TM-01).",
  usage:
    "deno task kexec load --manifest FILE --trust FILE --artifact kernel=PATH --artifact initramfs=PATH [--mode M] [--channel C] [--arch A] [--min-version V] [--state DIR] [--now RFC3339] [--dir DIR] [--method auto|file|classic] [--fdt FILE] [--seed-verity H:S:N] [--dry-run] [--exec] [--json]",
  flags: [...STAGE, ...LOAD_ONLY, DRY_RUN],
  examples: [
    "deno task kexec load --manifest /run/phase/manifest.json --trust /etc/phase/trust.json --artifact kernel=/run/phase/kernel --artifact initramfs=/run/phase/initramfs --dry-run",
    "deno task kexec load --manifest /run/phase/manifest.json --trust /etc/phase/trust.json --artifact kernel=/run/phase/kernel --artifact initramfs=/run/phase/initramfs --exec",
  ],
  codes: ["E_USAGE", ...VERIFY_CODES, "E_FDT", "E_LOAD", "E_EXEC"],
};

/** `phase-kexec exec --help`. */
export const KEXEC_EXEC_HELP: HelpSpec = {
  summary: "executes the kernel a previous 'kexec load' loaded.",
  usage: "deno task kexec exec [--dry-run]",
  flags: [DRY_RUN],
  examples: ["deno task kexec exec --dry-run", "deno task kexec exec"],
  codes: ["E_USAGE", "E_NOT_LOADED", "E_EXEC"],
};

/** `phase-kexec fallback --help`. */
export const KEXEC_FALLBACK_HELP: HelpSpec = {
  summary:
    "the chainload fallback when kexec is refused: verifies and copies the target to the ESP, writes " +
    "a loader entry, selects it for the next boot only, and reboots.",
  usage:
    "deno task kexec fallback --manifest FILE --trust FILE --artifact kernel=PATH --artifact initramfs=PATH [--mode M] [--esp DIR] [--entry ID] [--efivars DIR] [--no-reboot] [--dry-run]",
  flags: [...STAGE, ...FALLBACK_ONLY, DRY_RUN],
  examples: [
    "deno task kexec fallback --manifest /run/phase/manifest.json --trust /etc/phase/trust.json --artifact kernel=/run/phase/kernel --artifact initramfs=/run/phase/initramfs --dry-run",
    "deno task kexec fallback --manifest /run/phase/manifest.json --trust /etc/phase/trust.json --artifact kernel=/run/phase/kernel --artifact initramfs=/run/phase/initramfs --no-reboot",
  ],
  codes: ["E_USAGE", ...VERIFY_CODES, "E_IO", "E_FALLBACK"],
};

/** `phase-kexec --help`: the three commands, every flag. */
export const KEXEC_HELP: HelpSpec = {
  summary:
    "hands over to exactly the verified kernel. Commands: load (verify, stage, re-check, load), " +
    "exec (execute the loaded kernel), fallback (chainload through the ESP). " +
    "'deno task kexec COMMAND --help' shows one command.",
  usage: "deno task kexec load|exec|fallback [flags]",
  flags: [
    ...STAGE.map((f) => ({ ...f, text: `(load, fallback) ${f.text}` })),
    ...LOAD_ONLY.map((f) => ({ ...f, text: `(load) ${f.text}` })),
    ...FALLBACK_ONLY.map((f) => ({ ...f, text: `(fallback) ${f.text}` })),
    { ...DRY_RUN, text: `(every command) ${DRY_RUN.text}` },
  ],
  examples: [...KEXEC_LOAD_HELP.examples, KEXEC_EXEC_HELP.examples[0]],
  codes: [
    ...new Set([...KEXEC_LOAD_HELP.codes, ...KEXEC_EXEC_HELP.codes, ...KEXEC_FALLBACK_HELP.codes]),
  ],
};

/** The help for the command `args` names, or the overview. */
export function kexecHelp(args: readonly string[]): HelpSpec {
  switch (args[0]) {
    case "load":
      return KEXEC_LOAD_HELP;
    case "exec":
      return KEXEC_EXEC_HELP;
    case "fallback":
      return KEXEC_FALLBACK_HELP;
    default:
      return KEXEC_HELP;
  }
}
