/**
 * `deno task images --help`.
 *
 * @module
 */
import { type HelpSpec, KEYS_DIR, TRUST_FILE } from "../cli/mod.ts";

/** What `deno task images --help` prints. */
export const IMAGES_HELP: HelpSpec = {
  summary:
    "builds the reproducible seed images (initramfs, squashfs seed, USB .img, QCOW2, Parallels, " +
    "SHA256SUMS) and a signed release of the target into --artifacts.",
  usage:
    "deno task images --arch amd64|arm64 --out DIR [--artifacts DIR] [--channel C] [--version V] [--keys DIR] [--provider URL] [--cmdline STR] [--kernel FILE] [--sysroot DIR --deno FILE (arm64)] [--no-release] [--with-tor] [--allow-tor] [--torrc FILE] [--secure-boot --db-key KEY --db-cert CERT [--unsafe-test-key]]",
  flags: [
    { flag: "--arch A", text: "amd64 or arm64", default: "amd64" },
    { flag: "--out DIR", text: "where the images go (required), e.g. ./images/out" },
    {
      flag: "--artifacts DIR",
      text: "where the signed release of the target goes",
      default: "./artifacts",
    },
    { flag: "--channel C", text: "channel of that release", default: "stable" },
    {
      flag: "--version V",
      text: "version of that release",
      default: "today's date, YYYY.MM.DD.HHMM (UTC)",
    },
    {
      flag: "--keys DIR",
      text: "the release key folder (made when missing)",
      default: `${KEYS_DIR}, trust file ${TRUST_FILE}`,
    },
    {
      flag: "--provider URL",
      text: "manifest URL put on the seed's command line (phase.provider=)",
      default: "none",
    },
    {
      flag: "--cmdline STR",
      text: "more words for the seed's kernel command line",
      default: "none",
    },
    {
      flag: "--kernel FILE",
      text: "the kernel to boot",
      default: "newest /boot/vmlinuz-* (arm64: of --sysroot)",
    },
    {
      flag: "--sysroot DIR",
      text: "(arm64) a directory of extracted arm64 Debian packages",
      default: "none",
    },
    { flag: "--deno FILE", text: "(arm64) the arm64 deno binary for the seed", default: "none" },
    { flag: "--no-release", text: "build the images only, no signed release", default: "off" },
    {
      flag: "--with-tor",
      text: "put the tor client into the seed (private mode over Tor)",
      default: "off",
    },
    {
      flag: "--allow-tor",
      text: "write allow_tor = true into the seed's policy.toml",
      default: "off",
    },
    {
      flag: "--torrc FILE",
      text: "a torrc fragment (bridges) for the seed; checked first",
      default: "none",
    },
    {
      flag: "--secure-boot",
      text: "(amd64) signed UKIs and systemd-boot, a dm-verity seed, a db-signed target kernel; " +
        "no GRUB fallback (docs/secure-boot.md)",
      default: "off",
    },
    { flag: "--db-key KEY", text: "the Secure Boot db key (PEM) that signs", default: "none" },
    { flag: "--db-cert CERT", text: "its certificate (PEM)", default: "none" },
    {
      flag: "--unsafe-test-key",
      text: "accept OVMF's snakeoil test key (tests only; logged loudly; never ship it)",
      default: "off",
    },
    {
      flag: "--node-allow KEYID",
      text:
        "write node_accept_jobs into the seed's policy: the booted target starts a Plasm node accepting jobs from this submitter (repeatable; 'deno task job key' prints one)",
      default: "none: the target starts no node",
    },
    {
      flag: "--target-bootstrap MULTIADDR",
      text:
        "sign phase.bootstrap= into the release's command line: the booted target's provider joins the DHT through these peers and announces itself as a provider of the release (repeatable)",
      default: "none: the target's provider uses mDNS only",
    },
    {
      flag: "--unsafe-node-open",
      text:
        "write unsafe_node_open = true: the target's node accepts jobs from ANY peer, rate-limited (logged loudly)",
      default: "off",
    },
  ],
  examples: [
    "deno task images --arch amd64 --out ./images/out",
    "deno task images --arch amd64 --out ./images/out --with-tor --allow-tor --torrc bridges.torrc",
    "deno task images --arch amd64 --out ./images/out --secure-boot --db-key db.key --db-cert db.crt",
  ],
  codes: ["E_USAGE", "E_IO", "E_TOOL", "E_INPUT", "E_BUILD", "E_KEY", "E_EXISTS"],
};

/** What `deno task demo --help` prints. */
export const DEMO_HELP: HelpSpec = {
  summary:
    "the whole loop with one command: builds the amd64 USB image and a signed release when missing, " +
    "serves the release on loopback and boots the image in QEMU on this terminal (quit: Ctrl-A X).",
  usage: "deno task demo [--rebuild]",
  flags: [
    {
      flag: "--rebuild",
      text: "rebuild the image and release in ./images/out/demo* even when present",
      default: "off",
    },
  ],
  examples: ["deno task demo", "deno task demo --rebuild"],
  codes: ["E_USAGE", "E_BUILD"],
};
