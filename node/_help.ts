/**
 * `--help` of `deno task node` and `deno task job`. Private to node/.
 *
 * @module
 */
import type { HelpSpec } from "../cli/mod.ts";
import {
  DEFAULT_MAX_CONCURRENT_JOBS,
  DEFAULT_MAX_INPUT_BYTES,
  DEFAULT_MAX_JOB_MEMORY_BYTES,
  DEFAULT_MAX_JOB_TIMEOUT_MS,
  DEFAULT_MAX_MODULE_BYTES,
  DEFAULT_MAX_OUTPUT_BYTES,
  DEFAULT_OPEN_OFFERS_PER_MINUTE,
  DEFAULT_QUEUE_LENGTH,
} from "./limits.ts";
import { DEFAULT_JOB_MEMORY_MB, DEFAULT_JOB_TIMEOUT_MS } from "./plasm.ts";
import { MAX_JOBS_PER_WORKER } from "../wasm/mod.ts";

/** State directory of `deno task node`. */
export const NODE_STATE_DIR = "./.phase/node";
/** State directory of `deno task job` (submitter key, receipts). */
export const JOB_STATE_DIR = "./.phase/job";

/** Usage of `deno task node` (also the hint of its usage errors). */
export const NODE_USAGE =
  `usage: deno task node [--state DIR] [--listen MULTIADDR]... [--bootstrap MULTIADDR]...
  [--config FILE] [--allow KEYID]... [--open] [--no-mdns] [--max-concurrent N] [--queue N] [--max-memory-mb N]
  [--max-timeout-ms N] [--max-output-bytes N] [--max-module-bytes N] [--max-input-bytes N]
  [--offers-per-minute N] [--fresh-worker-per-job]
       deno task node id [--state DIR]
       deno task node status [--state DIR] [--json]`;

/** Usage of `deno task job` (also the hint of its usage errors). */
export const JOB_USAGE =
  `usage: deno task job submit MODULE --peer MULTIADDR [--input S] [--timeout-ms N] [--memory-mb N]
  [--reexecute-on MULTIADDR|local] [--state DIR] [--json]
       deno task job key [--state DIR]`;

/** `deno task node --help`. */
export const NODE_HELP: HelpSpec = {
  summary:
    "run a Plasm job node: a libp2p node that accepts WASM jobs from allowed submitters over /phase/job/1.0.0, runs them in the sandbox and returns receipts signed by its node key; " +
    "'id' prints its peer id (creating the key), 'status' prints peers, jobs and refusals from <state>/status.json.",
  usage: NODE_USAGE,
  flags: [
    {
      flag: "--state DIR",
      text: "node key (node-key/node.pem, 0600), module store, status file",
      default: NODE_STATE_DIR,
    },
    {
      flag: "--listen MULTIADDR",
      text: "listen address (repeatable)",
      default: "/ip4/127.0.0.1/tcp/0 (loopback)",
    },
    { flag: "--bootstrap MULTIADDR", text: "peer to dial at start (repeatable)" },
    {
      flag: "--config FILE",
      text: "JSON config: listen, bootstrap, allow, open, limits (flags win)",
      default: "<state>/config.json if present",
    },
    {
      flag: "--allow KEYID",
      text: "submitter key allowed to submit (repeatable; 'deno task job key' prints one)",
    },
    {
      flag: "--open",
      text: "UNSAFE: accept jobs from any peer, rate-limited per peer (logged loudly)",
    },
    {
      flag: "--fresh-worker-per-job",
      text:
        `run every job in a worker that never ran another job; by default a worker runs up to ${MAX_JOBS_PER_WORKER} jobs of ONE submitter, ONE module and ONE set of limits, each in a fresh instance (THREAT-MODEL.md TM-16); several times the CPU per small job`,
    },
    {
      flag: "--no-mdns",
      text: "do not find or announce Plasm peers on the LAN over mDNS (on by default)",
    },
    {
      flag: "--max-concurrent N",
      text: "jobs running at once",
      default: String(DEFAULT_MAX_CONCURRENT_JOBS),
    },
    {
      flag: "--queue N",
      text: "accepted jobs waiting for a slot; more are rejected 'busy'",
      default: String(DEFAULT_QUEUE_LENGTH),
    },
    {
      flag: "--max-memory-mb N",
      text: "ceiling on a job's memory",
      default: String(DEFAULT_MAX_JOB_MEMORY_BYTES / 1048576),
    },
    {
      flag: "--max-timeout-ms N",
      text: "ceiling on a job's timeout",
      default: String(DEFAULT_MAX_JOB_TIMEOUT_MS),
    },
    {
      flag: "--max-output-bytes N",
      text: "ceiling on a job's output",
      default: String(DEFAULT_MAX_OUTPUT_BYTES),
    },
    {
      flag: "--max-module-bytes N",
      text: "largest module",
      default: String(DEFAULT_MAX_MODULE_BYTES),
    },
    {
      flag: "--max-input-bytes N",
      text: "largest input",
      default: String(DEFAULT_MAX_INPUT_BYTES),
    },
    {
      flag: "--offers-per-minute N",
      text: "per-peer rate limit of an --open node",
      default: String(DEFAULT_OPEN_OFFERS_PER_MINUTE),
    },
    { flag: "--json", text: "status: print the status document as JSON" },
  ],
  examples: [
    "deno task node --state ./.phase/node --listen /ip4/127.0.0.1/tcp/4101 --allow ed25519:<64 hex>",
    "deno task node id --state ./.phase/node",
    "deno task node status --state ./.phase/node",
  ],
  codes: ["E_USAGE", "E_CONFIG", "E_KEY", "E_IO"],
};

/** `deno task job --help`. */
export const JOB_HELP: HelpSpec = {
  summary:
    "submit one WASM job to a Plasm node and verify the signed receipt it returns (node key = peer id, module, input, limits, output); " +
    "prints the job's output on stdout and the stored receipt's path on stderr; exits 0 only when the receipt verifies and the job succeeded. " +
    "'key' prints the submitter keyid a node must --allow.",
  usage: JOB_USAGE,
  flags: [
    {
      flag: "--peer MULTIADDR",
      text: "the node, /ip4/.../tcp/N/p2p/<peer id> ('deno task node' prints it)",
    },
    { flag: "--input S", text: "the job's stdin", default: "empty" },
    {
      flag: "--timeout-ms N",
      text: "the job's wall-clock timeout",
      default: String(DEFAULT_JOB_TIMEOUT_MS),
    },
    { flag: "--memory-mb N", text: "the job's memory cap", default: String(DEFAULT_JOB_MEMORY_MB) },
    {
      flag: "--reexecute-on MULTIADDR|local",
      text: "also run the job there and compare the signed outputs",
    },
    {
      flag: "--state DIR",
      text: "submitter key (node-key/node.pem) and receipts/",
      default: JOB_STATE_DIR,
    },
    { flag: "--json", text: "print one JSON object instead of the raw output" },
  ],
  examples: [
    "deno task job submit wasm/examples/hello.wasm --peer /ip4/127.0.0.1/tcp/4101/p2p/12D3KooW... --input 'Hello, World'",
    "deno task job submit wasm/examples/hello.wasm --peer /ip4/127.0.0.1/tcp/4101/p2p/12D3KooW... --reexecute-on local --json",
    "deno task job key",
  ],
  codes: [
    "E_USAGE",
    "E_REJECTED",
    "E_PROTOCOL",
    "E_NO_NODE",
    "E_UNVERIFIED",
    "E_DISAGREE",
    "E_KEY",
    "E_IO",
    "E_TRAP",
    "E_TIMEOUT",
    "E_MEMORY",
    "E_OUTPUT",
    "E_EXIT",
    "E_MODULE",
    "E_IMPORT",
  ],
};
