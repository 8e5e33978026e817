/**
 * `deno task keygen --help` and `deno task sign --help` (one entrypoint,
 * two commands: the first argument picks the help).
 *
 * @module
 */
import { type HelpSpec, KEYS_DIR, TRUST_FILE } from "../cli/mod.ts";

/** What `deno task keygen --help` prints. */
export const KEYGEN_HELP: HelpSpec = {
  summary:
    "makes an Ed25519 release key (0600) and a trust file naming it. The key stays in a folder only " +
    "'sign' reads; the trust file goes where verifiers read it.",
  usage: "deno task keygen [--out DIR] [--trust FILE] [--name NAME] [--add-to-trust]",
  flags: [
    { flag: "--out DIR", text: "where the private and public key are written", default: KEYS_DIR },
    {
      flag: "--trust FILE",
      text: "the trust file to write",
      default: `${TRUST_FILE} (with another --out: trust.json beside the key)`,
    },
    {
      flag: "--name NAME",
      text: "file name of the key: NAME.pem, NAME.pub.pem",
      default: "release",
    },
    {
      flag: "--add-to-trust",
      text: "when the trust file exists, add the new key to it (threshold unchanged); " +
        "without it an existing trust file is left as it is",
      default: "off",
    },
  ],
  examples: [
    "deno task keygen",
    "deno task keygen --name other --add-to-trust",
    "deno task keygen --out /etc/phase --name other --trust /etc/phase/other-trust.json",
  ],
  codes: ["E_USAGE", "E_EXISTS", "E_KEY", "E_IO"],
};

/** What `deno task sign --help` prints. */
export const SIGN_HELP: HelpSpec = {
  summary:
    "signs a release: hashes the artifacts under ROOT/CHANNEL/ARCH and writes a signed manifest.json " +
    "and DHT record.json; --add-signature adds another key's signature to an existing one.",
  usage:
    "deno task sign --root DIR --channel C --arch A --version V --key PEM [--expires-in 30d] [--cmdline STR] [--artifact NAME]... [--mirror URL]... [--provider MULTIADDR]... [--now RFC3339]\n" +
    "       deno task sign --add-signature [--record] --root DIR --channel C --arch A --key PEM",
  flags: [
    {
      flag: "--root DIR",
      text: "the release tree: DIR/CHANNEL/ARCH/{kernel,initramfs,...} (required)",
    },
    { flag: "--channel C", text: "release channel (required)" },
    { flag: "--arch A", text: "amd64 or arm64 (required)" },
    { flag: "--version V", text: "release version, e.g. 2026.11.20 (required to sign)" },
    {
      flag: "--key PEM",
      text: "the private key (0600), e.g. ./.phase/keys/release.pem (required)",
    },
    {
      flag: "--expires-in DUR",
      text: "how long the manifest is valid (30d, 12h, 90m, 45s)",
      default: "30d",
    },
    {
      flag: "--cmdline STR",
      text: "kernel command line carried in the manifest",
      default: "the release's cmdline file, or empty",
    },
    {
      flag: "--artifact NAME",
      text: "sign this extra file of the release tree too (repeatable)",
      default: "kernel, initramfs and rootfs when present",
    },
    {
      flag: "--mirror URL",
      text: "a mirror URL listed in the manifest (repeatable)",
      default: "none",
    },
    {
      flag: "--provider MULTIADDR",
      text: "a provider address listed in the record (repeatable)",
      default: "none",
    },
    { flag: "--now RFC3339", text: "the signing time", default: "the clock" },
    {
      flag: "--add-signature",
      text: "add --key's signature to the existing manifest instead of signing anew",
      default: "off",
    },
    { flag: "--record", text: "with --add-signature: sign record.json instead", default: "off" },
  ],
  examples: [
    "deno task sign --root ./artifacts --channel stable --arch amd64 --version 2026.11.20 --key ./.phase/keys/release.pem",
    "deno task sign --add-signature --root ./artifacts --channel stable --arch amd64 --key ./.phase/keys/other.pem",
  ],
  codes: [
    "E_USAGE",
    "E_KEY",
    "E_KEY_MODE",
    "E_ARTIFACT",
    "E_MANIFEST",
    "E_EXISTS",
    "E_SIGNATURE",
    "E_IO",
  ],
};

/** The help for the command `args` names (`keygen` or `sign`). */
export function signHelp(args: readonly string[]): HelpSpec {
  return args[0] === "keygen" ? KEYGEN_HELP : SIGN_HELP;
}
