/**
 * `deno task discover --help`.
 *
 * @module
 */
import type { HelpSpec } from "../../cli/mod.ts";
import { DHT_STEP_TIMEOUT_MS, MDNS_STEP_TIMEOUT_MS } from "../discover.ts";

/** What `deno task discover --help` prints. */
export const DISCOVER_HELP: HelpSpec = {
  summary:
    "finds providers on the LAN (mDNS), the DHT and the manual URL of the policy, probes each, and " +
    "prints them ranked. Candidates are hints: fetch verifies what it downloads.",
  usage:
    "deno task discover [--trust FILE] [--policy FILE] [--cmdline FILE] [--arch A] [--interface IPv4]... [--bootstrap MULTIADDR]... [--order lan,wan,manual] [--mdns-timeout DUR] [--dht-timeout DUR] [--mdns-port N] [--no-probe] [--socks HOST:PORT] [--state DIR] [--json]\n" +
    "       or, with a policy phase-boot loaded: --mode M --channel C [--provider URL [--provider-first]] [--bootstrap MULTIADDR]...",
  flags: [
    {
      flag: "--trust FILE",
      text:
        "the pinned trust file; DHT records are checked under the newest version its chain reaches (/trust/<N>.json from the candidate sources, read-only)",
      default: "/etc/phase/trust.json",
    },
    {
      flag: "--state DIR",
      text:
        "state directory of fetch (<cache>/state): the trust walk starts from the newest trust version accepted there, never below its floor, and writes nothing (TM-09)",
      default: "none: the trust file as given",
    },
    {
      flag: "--policy FILE",
      text: "policy.toml (docs/policy.md)",
      default: "/etc/phase/policy.toml",
    },
    {
      flag: "--cmdline FILE",
      text: "kernel command line whose phase.* words override the policy",
      default: "/proc/cmdline, else /run/phase/cmdline",
    },
    {
      flag: "--arch A",
      text: "architecture to find",
      default: "the policy's, else this machine's",
    },
    {
      flag: "--interface IPv4",
      text: "ask mDNS on this interface address (repeatable)",
      default: "every non-loopback IPv4 address",
    },
    {
      flag: "--bootstrap MULTIADDR",
      text: "a DHT bootstrap peer, added to the policy's (repeatable)",
      default: "the policy's",
    },
    { flag: "--order STEPS", text: "steps to run, comma-separated", default: "lan,wan,manual" },
    {
      flag: "--mdns-timeout DUR",
      text: "how long the LAN step waits",
      default: `${MDNS_STEP_TIMEOUT_MS / 1000}s`,
    },
    {
      flag: "--dht-timeout DUR",
      text: "how long the DHT step waits",
      default: `${DHT_STEP_TIMEOUT_MS / 1000}s`,
    },
    { flag: "--mdns-port N", text: "UDP port of mDNS queries", default: "5353" },
    {
      flag: "--no-probe",
      text: "rank candidates without asking each one for its manifest",
      default: "probe",
    },
    {
      flag: "--socks HOST:PORT",
      text: "ask only the manual URL, through this SOCKS5 proxy (Tor; TM-13)",
      default: "direct",
    },
    {
      flag: "--mode M",
      text: "(phase-boot) the loaded policy's mode: internet, local, private",
      default: "internet",
    },
    { flag: "--channel C", text: "(phase-boot) the loaded policy's channel", default: "stable" },
    { flag: "--provider URL", text: "(phase-boot) the loaded policy's manual manifest URL" },
    {
      flag: "--provider-first",
      text: "(phase-boot) ask the manual URL before the LAN",
      default: "off",
    },
    {
      flag: "--json",
      text: "print the result as one JSON line even on a terminal",
      default: "JSON when stdout is not a terminal",
    },
  ],
  examples: [
    "deno task discover --trust ./.phase/trust/trust.json --arch amd64",
    "deno task discover --trust ./.phase/trust/trust.json --order manual --policy /etc/phase/policy.toml --json",
  ],
  codes: ["E_USAGE", "E_TRUST", "E_IO", "E_POLICY", "E_TOR", "E_CAPTIVE", "E_NO_CANDIDATE"],
};
