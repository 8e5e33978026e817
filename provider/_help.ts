/**
 * `--help` of `deno task serve` and `deno task provider`: what each does,
 * every flag with its default, examples and exit statuses (rendered by
 * cli/run.ts). Private to provider/.
 *
 * @module
 */
import { type HelpSpec, PROVIDER_STATE_DIR, SYSTEM_TRUST_FILE, TRUST_FILE } from "../cli/mod.ts";
import { DEFAULT_EXPIRES_MS } from "./catalog.ts";
import { HEADER_TIMEOUT_MS, IDLE_TIMEOUT_MS } from "./listen.ts";
import { DEFAULT_HOST, DEFAULT_PORT } from "./server.ts";
import { DOWNLOAD_RETRY_AFTER_S, MAX_DOWNLOADS } from "./http.ts";
import { MIRROR_REFRESH_INTERVAL_MS } from "./_mirror.ts";
import { MEMORY_CACHE_BYTES } from "./memory_cache.ts";

/** The usage lines of `serve` (also the hint of its usage errors). */
export const SERVE_USAGE =
  `usage: deno task serve [--root DIR] [--state DIR] [--host ADDR] [--port N] [--key PEM | --no-sign]
  [--trust FILE] [--name NAME] [--channel NAME] [--expires 7d] [--no-mdns] [--no-dht] [--dht-port N]
  [--bootstrap MULTIADDR]... [--no-watch] [--no-snapshot] [--header-timeout 10s] [--idle-timeout 15s]
  [--unsafe-public-status]
       deno task serve --from-cache DIR [--trust FILE] [--host ADDR] [--port N] ...
       deno task serve --mirror URL [--from-cache DIR] [--mirror-interval 5m] [--trust FILE] ...`;

/** The usage lines of `provider` (also the hint of its usage errors). */
export const PROVIDER_USAGE = `usage: deno task provider status <url> [--json]
       deno task provider list <url> [--json]`;

const days = (ms: number) => `${ms / 86_400_000}d`;
const secs = (ms: number) => `${ms / 1000}s`;

/** `deno task serve --help`. */
export const SERVE_HELP: HelpSpec = {
  summary:
    "serve the releases under a root over HTTP (manifests, artifacts, /cas, /ipfs) and advertise them on the LAN (mDNS) and the DHT. " +
    "A folder with kernel and initramfs but no manifest.json is signed by the provider's own key; " +
    "a manifest.json signed offline ('deno task sign') is served when it verifies against the trust file. " +
    "Each artifact is copied into <state>/snapshots before it is served (TM-19): that takes as much disk again as the artifacts (--no-snapshot avoids it).",
  usage: SERVE_USAGE,
  flags: [
    {
      flag: "--root DIR",
      text: "releases as DIR/<channel>/<arch>/{kernel,initramfs,...}; only read",
      default: "./artifacts",
    },
    {
      flag: "--state DIR",
      text:
        "the provider's own folder: its key provider.pem, trust.json naming it, snapshots, the DHT peer key",
      default: PROVIDER_STATE_DIR,
    },
    {
      flag: "--host ADDR",
      text: "address to listen on; 0.0.0.0 serves the LAN",
      default: DEFAULT_HOST,
    },
    { flag: "--port N", text: "TCP port; 0 picks a free one", default: String(DEFAULT_PORT) },
    {
      flag: "--key PEM",
      text: "sign generated manifests with this key instead of <state>/provider.pem",
      default: "<state>/provider.pem, generated on first run",
    },
    {
      flag: "--no-sign",
      text:
        "serve only pre-signed manifests; no key is read or made. Needs a trust file (--trust or the default)",
    },
    {
      flag: "--trust FILE",
      text:
        "the trust file offline-signed manifests must verify against; a missing one is an error (E_TRUST). <state>/trust.json (naming the provider's key) is accepted too. A refusal names the files used and the keyids they expect",
      default:
        `${TRUST_FILE} (what 'deno task keygen' writes), else ${SYSTEM_TRUST_FILE}, when one exists`,
    },
    {
      flag: "--name NAME",
      text: "name on the status page and in mDNS (a DNS label)",
      default: "phase (mDNS: the host name)",
    },
    {
      flag: "--channel NAME",
      text: "the channel GET /manifest.json answers (with this host's arch)",
      default: "stable",
    },
    {
      flag: "--expires DURATION",
      text: "validity of the manifests the provider signs (30m, 12h, 7d)",
      default: days(DEFAULT_EXPIRES_MS),
    },
    { flag: "--no-mdns", text: "do not answer mDNS on the LAN" },
    { flag: "--no-dht", text: "do not join the DHT" },
    { flag: "--dht-port N", text: "TCP port of the DHT node; 0 picks a free one", default: "0" },
    {
      flag: "--bootstrap MULTIADDR",
      text: "a DHT peer to join through (repeatable)",
      default: "none",
    },
    {
      flag: "--no-watch",
      text:
        "do not watch the root; rescan every 60 s only (with the watch, a change is served within a second, and a root that does not exist yet is looked for every second)",
    },
    {
      flag: "--no-snapshot",
      text:
        "serve artifacts from the root, checked per chunk, instead of private copies in <state>/snapshots (no extra disk, slower)",
    },
    {
      flag: "--header-timeout DURATION",
      text: "a connection must send its request headers within this (TM-18)",
      default: secs(HEADER_TIMEOUT_MS),
    },
    {
      flag: "--idle-timeout DURATION",
      text: "an idle keep-alive connection is closed after this (TM-18)",
      default: secs(IDLE_TIMEOUT_MS),
    },
    {
      flag: "--max-downloads N",
      text:
        `most artifact downloads sent at once; one more is answered 503 with Retry-After: ${DOWNLOAD_RETRY_AFTER_S} (the client tries another provider or comes back), counted on /status and the status page, logged once per burst (TM-18). ` +
        "Manifests are never refused by it. A small N on a boot-storm origin lets the first machines finish at full rate and serve the others",
      default: String(MAX_DOWNLOADS),
    },
    {
      flag: "--memory-cache-mib N",
      text:
        "hold up to N MiB of the snapshots that are asked for in memory and answer from there (about 1.7x the rate of reading the file each time, bench/README.md). " +
        "A snapshot is read once, in the background, and kept only if its bytes hash to its digest (TM-19); room is made from the least recently used entry idle for a minute (what does not fit meanwhile is served from its file). 0 turns it off; --no-snapshot implies 0",
      default: String(MEMORY_CACHE_BYTES / (1024 * 1024)),
    },
    {
      flag: "--from-cache DIR",
      text:
        "re-serve the releases a fetch put in the cache DIR (cas/sha256/): the manifest and record bytes as signed, artifacts from cas/. " +
        "Each manifest is re-verified under the trust file (signature, expiry, the cache's rollback floor) and each artifact re-hashed; what fails is refused (logged once, listed on the status page). " +
        "Holds no signing key: --key is refused, --no-sign is implied; excludes --root",
    },
    {
      flag: "--mirror URL",
      text:
        "pull-through LAN cache: fetch the releases of the provider at URL (or one manifest URL) through the verified fetcher into the cache (--from-cache DIR, default ./.cache), then re-serve them as --from-cache does",
    },
    {
      flag: "--mirror-interval DURATION",
      text: "time between two refreshes from the --mirror upstream (at least 1s)",
      default: `${MIRROR_REFRESH_INTERVAL_MS / 60_000}m`,
    },
    {
      flag: "--unsafe-public-status",
      text:
        "answer /status, the counters and the advertisement state to every client, not only loopback",
    },
  ],
  examples: [
    "deno task serve                                    # ./artifacts on 127.0.0.1:8080, signed by the provider's key",
    `deno task serve --root ./artifacts --state ${PROVIDER_STATE_DIR} --no-sign --no-mdns --no-dht   # releases signed with 'deno task sign', trusted via ${TRUST_FILE}`,
    "deno task serve --host 0.0.0.0 --name lab --trust /etc/phase/trust.json   # on the LAN",
    "deno task serve --from-cache ./.cache --trust ./.phase/trust/trust.json --host 0.0.0.0   # re-serve what this machine fetched",
    "deno task serve --mirror http://10.0.0.1:8080 --trust /etc/phase/trust.json --host 0.0.0.0   # a site's pull-through cache",
  ],
  codes: ["E_USAGE", "E_TRUST", "E_KEY", "E_BIND", "E_ROOT", "E_STATE"],
};

/** `deno task provider --help`. */
export const PROVIDER_HELP: HelpSpec = {
  summary:
    "ask a running provider: 'status' prints its counters (answered to loopback clients only, unless it runs with --unsafe-public-status), " +
    "'list' its releases (signers, manifest URL) and artifacts. Tables, or JSON with --json.",
  usage: PROVIDER_USAGE,
  flags: [
    { flag: "--json", text: "print the JSON the provider answered instead of a table" },
  ],
  examples: [
    "deno task provider status http://127.0.0.1:8080",
    "deno task provider list http://127.0.0.1:8080 --json",
  ],
  codes: ["E_USAGE", "E_FETCH"],
};
