/**
 * `deno task fetch --help` and `deno task fetch-private --help` (one
 * entrypoint: `--private` picks the help).
 *
 * @module
 */
import type { FlagHelp, HelpSpec } from "../../cli/mod.ts";
import { DEFAULT_LIMITS } from "../../net/mod.ts";

const SOURCE_FLAGS: readonly FlagHelp[] = [
  { flag: "--manifest URL", text: "the manifest to fetch (http:// or https://)" },
  { flag: "--trust FILE", text: "trust file: the keys and threshold that must sign (required)" },
  {
    flag: "--mirror URL",
    text: "another manifest URL of the same release, tried in turn (repeatable)",
    default: "none",
  },
  { flag: "--provider URL", text: "a provider base URL, for --cid (repeatable)", default: "none" },
  {
    flag: "--gateway URL",
    text: "an IPFS gateway base URL, for --cid (repeatable)",
    default: "none",
  },
  {
    flag: "--cid CID",
    text: "fetch the manifest by content ID from --provider/--gateway",
    default: "none",
  },
  {
    flag: "--candidates FILE|-",
    text:
      "the output of 'deno task discover' (a file, or - for stdin): try its candidates in rank order",
    default: "none",
  },
  { flag: "--channel C", text: "refuse a manifest for another channel", default: "any" },
  { flag: "--arch A", text: "refuse a manifest for another arch", default: "any" },
  { flag: "--min-version V", text: "refuse a version below V", default: "none" },
  {
    flag: "--artifact NAME",
    text: "fetch only these artifacts (repeatable)",
    default: "all of the manifest's",
  },
  {
    flag: "--have sha256:HEX",
    text:
      "bytes this machine holds outside the cache (a USB seed's partition is the release's rootfs): an artifact with this signed digest is not downloaded nor reported; its user hashes it first (repeatable)",
    default: "none",
  },
  {
    flag: "--stall-timeout DUR",
    text: "give up on a source that sends nothing for this long",
    default: `${DEFAULT_LIMITS.stallTimeoutMs / 1000}s (longer with --socks)`,
  },
  {
    flag: "--headers-timeout DUR",
    text:
      "give up on a request whose response headers take longer (phase-boot passes discover's probe deadline for a provider named on the kernel command line)",
    default: `${DEFAULT_LIMITS.headersTimeoutMs / 1000}s (longer with --socks)`,
  },
  { flag: "--no-parallel", text: "fetch one artifact at a time", default: "parallel" },
  {
    flag: "--socks HOST:PORT",
    text: "every request through this SOCKS5 proxy (Tor), never directly (TM-13)",
    default: "direct",
  },
  {
    flag: "--json",
    text: "print the result as one JSON line even on a terminal",
    default: "JSON when stdout is not a terminal",
  },
];

const CODES: HelpSpec["codes"] = [
  "E_USAGE",
  "E_TRUST",
  "E_IO",
  "E_FETCH",
  "E_TOO_LARGE",
  "E_STALL",
  "E_REDIRECT",
  "E_CACHE",
  "E_TOR",
  "E_SCHEMA",
  "E_SIGNATURE",
  "E_MISMATCH",
  "E_EXPIRED",
  "E_ROLLBACK",
  "E_SIZE",
  "E_DIGEST",
];

/** What `deno task fetch --help` prints. */
export const FETCH_HELP: HelpSpec = {
  summary: "downloads a release, verifies the manifest and every artifact, and keeps them in a " +
    "content-addressed cache. Exits 0 only when every artifact is cached and verified.",
  usage:
    "deno task fetch --manifest URL --trust FILE --cache DIR [--mirror URL]... [--provider URL]... [--gateway URL]... [--cid CID] [--candidates FILE|-] [--channel C] [--arch A] [--min-version V] [--artifact NAME]... [--have sha256:HEX]... [--stall-timeout DUR] [--headers-timeout DUR] [--no-parallel] [--socks HOST:PORT] [--rediscover] [--json]",
  flags: [
    ...SOURCE_FLAGS.slice(0, 2),
    { flag: "--cache DIR", text: "the cache directory (required), e.g. ./.cache" },
    ...SOURCE_FLAGS.slice(2),
    {
      flag: "--private",
      text: "private mode: everything under --root on a tmpfs (what fetch-private runs)",
      default: "off",
    },
    { flag: "--root DIR", text: "with --private: the tmpfs directory", default: "none" },
    {
      flag: "--rediscover",
      text:
        "while artifacts download, ask the LAN (mDNS) again every second for peers re-serving the same release (same manifest CID) and move the rest of a long download to them; hints, every byte still checked by digest (TM-07). Not with --private or --socks (TM-13)",
      default: "off",
    },
  ],
  examples: [
    "deno task fetch --manifest http://127.0.0.1:8080/stable/amd64/manifest.json --trust ./.phase/trust/trust.json --cache ./.cache",
    "deno task discover --trust ./.phase/trust/trust.json | deno task fetch --candidates - --trust ./.phase/trust/trust.json --cache ./.cache",
  ],
  codes: CODES,
};

/** What `deno task fetch-private --help` prints. */
export const FETCH_PRIVATE_HELP: HelpSpec = {
  summary:
    "private mode of fetch: downloads and verifies a release into a tmpfs root and writes nothing " +
    "persistent; refuses a root that is not a plain tmpfs (TM-13).",
  usage:
    "deno task fetch-private --root TMPFS_DIR --manifest URL --trust FILE [--socks HOST:PORT] [fetch's other flags]",
  flags: [
    {
      flag: "--root DIR",
      text: "the tmpfs directory everything goes under (required), e.g. /run/phase",
    },
    { flag: "--private", text: "private mode (the task passes it)", default: "on" },
    ...SOURCE_FLAGS,
    { flag: "--cache DIR", text: "not used in private mode (refused)", default: "none" },
    {
      flag: "--rediscover",
      text: "refused in private mode: an mDNS query announces this machine to the LAN (TM-13)",
      default: "off",
    },
  ],
  examples: [
    "deno task fetch-private --manifest http://127.0.0.1:8080/stable/amd64/manifest.json --trust /etc/phase/trust.json --root /run/phase",
    "deno task fetch-private --manifest http://127.0.0.1:8080/stable/amd64/manifest.json --trust /etc/phase/trust.json --root /run/phase --socks 127.0.0.1:9050",
  ],
  codes: ["E_PRIVATE_ROOT", ...CODES],
};

/** The help for `args` (`--private`: fetch-private's). */
export function fetchHelp(args: readonly string[]): HelpSpec {
  return args.includes("--private") ? FETCH_PRIVATE_HELP : FETCH_HELP;
}
