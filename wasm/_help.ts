/**
 * `deno task wasm --help` (and `wasm run|postboot --help`) and
 * `deno task receipt --help`: the first argument picks the help.
 *
 * @module
 */
import type { FlagHelp, HelpSpec } from "../cli/mod.ts";
import { DEFAULT_STATE_DIR } from "./cli.ts";
import { DEFAULT_LIMITS } from "./runner.ts";

const STATE: FlagHelp = {
  flag: "--state DIR",
  text: "where the node key (node-key/) and receipts (receipts/) live",
  default: DEFAULT_STATE_DIR,
};
const PRIVATE: FlagHelp = {
  flag: "--private",
  text: "sign with an ephemeral key and write nothing (takes no --state)",
  default: "off",
};

const RUN_CODES: HelpSpec["codes"] = [
  "E_USAGE",
  "E_IO",
  "E_KEY",
  "E_RUNTIME",
  "E_MODULE",
  "E_IMPORT",
  "E_TRAP",
  "E_TIMEOUT",
  "E_MEMORY",
  "E_OUTPUT",
  "E_EXIT",
];

/** `deno task wasm run --help`. */
export const WASM_RUN_HELP: HelpSpec = {
  summary:
    "runs a WASI preview1 module (or a listed component) in a sandboxed worker with no permissions, " +
    "prints its output, and stores a signed receipt of what ran (TM-16, TM-17).",
  usage:
    "deno task wasm run MODULE.wasm [--input STR | --input-file F] [--arg A]... [--dir HOST[::GUEST]] [--timeout-ms N] [--memory-mb N] [--output-kb N] [--state DIR] [--private]",
  flags: [
    { flag: "--input STR", text: "the job's stdin", default: "empty" },
    { flag: "--input-file F", text: "the job's stdin, from a file", default: "none" },
    { flag: "--arg A", text: "an argument for the job's argv (repeatable)", default: "none" },
    {
      flag: "--dir HOST[::GUEST]",
      text: "grant one directory read-only to a core module",
      default: "none; GUEST defaults to /data",
    },
    { flag: "--timeout-ms N", text: "wall-clock limit", default: String(DEFAULT_LIMITS.timeoutMs) },
    {
      flag: "--memory-mb N",
      text: "memory cap",
      default: String(DEFAULT_LIMITS.memoryBytes / 1024 / 1024),
    },
    {
      flag: "--output-kb N",
      text: "output cap",
      default: String(DEFAULT_LIMITS.outputBytes / 1024),
    },
    STATE,
    PRIVATE,
  ],
  examples: [
    'deno task wasm run wasm/examples/hello.wasm --input "Hello, World"',
    'deno task wasm run wasm/examples/hello.wasm --input "Hello, World" --private --timeout-ms 1000',
  ],
  codes: RUN_CODES,
};

/** `deno task wasm postboot --help`. */
export const WASM_POSTBOOT_HELP: HelpSpec = {
  summary:
    "the target image's post-boot service: runs the shipped hello job (only if its digest matches) " +
    "and prints its output and receipt in three lines.",
  usage: "deno task wasm postboot [--state DIR] [--private]",
  flags: [STATE, PRIVATE],
  examples: [
    "deno task wasm postboot --state /var/lib/phase/wasm",
    "deno task wasm postboot --private",
  ],
  codes: RUN_CODES,
};

/** `deno task wasm --help`: both commands, every flag. */
export const WASM_HELP: HelpSpec = {
  summary:
    "sandboxed WASM jobs with signed receipts. Commands: run (a module), postboot (the shipped " +
    "hello job); 'deno task wasm COMMAND --help' shows one; receipts are checked by 'deno task receipt'.",
  usage: "deno task wasm run|postboot [flags]",
  flags: WASM_RUN_HELP.flags,
  examples: [WASM_RUN_HELP.examples[0], WASM_POSTBOOT_HELP.examples[1]],
  codes: RUN_CODES,
};

/** `deno task receipt --help`. */
export const RECEIPT_HELP: HelpSpec = {
  summary:
    "checks a WASM job receipt: its schema, its signature, and that the node key that signed it is " +
    "in a trust file (without --trust an intact receipt still fails, E_TRUST: any key can sign one).",
  usage: "deno task receipt verify RECEIPT.json (--trust FILE | --self-consistent-only) [--json]",
  flags: [
    {
      flag: "--trust FILE",
      text: "the node's trust file, <state>/node-key/trust.json",
      default: "none (then E_TRUST)",
    },
    {
      flag: "--self-consistent-only",
      text: "check only that the receipt is intact and signed by the key it names",
      default: "off",
    },
    {
      flag: "--json",
      text: "print the result as one JSON line even on a terminal",
      default: "JSON when stdout is not a terminal",
    },
  ],
  examples: [
    "deno task receipt verify ./.phase/wasm/receipts/FILE.json --trust ./.phase/wasm/node-key/trust.json",
    "deno task receipt verify ./.phase/wasm/receipts/FILE.json --self-consistent-only --json",
  ],
  codes: ["E_USAGE", "E_IO", "E_RECEIPT", "E_SIGNATURE", "E_TRUST"],
};

/** The help for the command `args` names. */
export function wasmHelp(args: readonly string[]): HelpSpec {
  switch (args[0]) {
    case "receipt":
      return RECEIPT_HELP;
    case "run":
      return WASM_RUN_HELP;
    case "postboot":
      return WASM_POSTBOOT_HELP;
    default:
      return WASM_HELP;
  }
}

/** What `deno task wasm:build --help` prints. */
export const WASM_BUILD_HELP: HelpSpec = {
  summary:
    "rebuilds the example jobs in wasm/examples from their WAT/WIT source, deterministically " +
    "(hello.wasm with wabt, the component and its glue with jco 1.17.9).",
  usage: "deno task wasm:build [--check]",
  flags: [
    {
      flag: "--check",
      text:
        "rebuild in memory and exit 1 (E_FINDINGS) when a committed file differs; write nothing",
      default: "off: write what differs",
    },
  ],
  examples: ["deno task wasm:build", "deno task wasm:build --check"],
  codes: ["E_USAGE", "E_FINDINGS"],
};
