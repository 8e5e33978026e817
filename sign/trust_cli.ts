/**
 * `deno task trust`: create, edit and print trust files, offline under the
 * `sign` set (the only set that may write `./.phase/trust`, TM-12). The
 * subcommands are one table, so later ones (issue 14: `rotate` with signed
 * trust versions) are one entry each.
 *
 * @module
 */
import { UsageError } from "../core/mod.ts";
import { type HelpSpec, parseDurationMs, parseFlags, required, TRUST_FILE } from "../cli/mod.ts";
import {
  describeRotation,
  describeTrust,
  type RotationSummary,
  trustAdd,
  trustInit,
  trustRemove,
  trustRotate,
  trustShow,
  trustSign,
  type TrustSummary,
  trustThreshold,
} from "./trust.ts";

/** Permission set of the trust entrypoint (the offline signer's). */
export const TRUST_PERMISSION_SET = "sign";

const USAGE = `deno task trust show FILE [--json]
       deno task trust init --out FILE --key PUB.pem... --threshold K [--json]
       deno task trust add FILE --key PUB.pem [--name NAME] [--json]
       deno task trust remove FILE --keyid ed25519:HEX [--json]
       deno task trust threshold FILE K [--json]
       deno task trust rotate --from FILE --out NEXT [--add-key PUB.pem]... [--remove-key KEYID]...
              [--threshold K] --expires 365d [--sign-with KEY.pem]... [--json]
       deno task trust sign NEXT --prev FILE --key KEY.pem [--json]`;

/** One subcommand of `deno task trust`. */
interface TrustCommand {
  /** Its usage line. */
  readonly usage: string;
  /** Runs it on the arguments after its name; returns the resulting file. */
  readonly run: (args: string[]) => Promise<TrustSummary | RotationSummary>;
}

function onePositional(positionals: string[], what: string, usage: string): string {
  if (positionals.length !== 1) {
    throw new UsageError(
      positionals.length === 0 ? `missing ${what}` : `unexpected argument '${positionals[1]}'`,
      usage,
    );
  }
  return positionals[0];
}

function parseThreshold(text: string, usage: string): number {
  if (!/^[0-9]{1,4}$/.test(text)) {
    throw new UsageError(`a threshold is a whole number >= 1, got '${text}'`, usage);
  }
  return Number(text);
}

const JSON_FLAG = { json: { type: "boolean" } } as const;

/** Every flag of `deno task trust`'s subcommands (its `--help` lists each one). */
export const TRUST_FLAGS = {
  ...JSON_FLAG,
  out: { type: "string" },
  key: { type: "string", multiple: true },
  threshold: { type: "string" },
  name: { type: "string" },
  keyid: { type: "string" },
  from: { type: "string" },
  "add-key": { type: "string", multiple: true },
  "remove-key": { type: "string", multiple: true },
  expires: { type: "string" },
  "sign-with": { type: "string", multiple: true },
  prev: { type: "string" },
} as const;

/** The subcommands, by name. */
const COMMANDS: Readonly<Record<string, TrustCommand>> = {
  show: {
    usage: "deno task trust show FILE [--json]",
    run: (args) => {
      const usage = COMMANDS.show.usage;
      const { positionals } = parseFlags(args, JSON_FLAG, usage, true);
      return trustShow(onePositional(positionals, "the trust file", usage));
    },
  },
  init: {
    usage: "deno task trust init --out FILE --key PUB.pem... --threshold K [--json]",
    run: (args) => {
      const usage = COMMANDS.init.usage;
      const { values } = parseFlags(args, {
        ...JSON_FLAG,
        out: { type: "string" },
        key: { type: "string", multiple: true },
        threshold: { type: "string" },
      }, usage);
      const out = required(values.out, "out", usage);
      const threshold = parseThreshold(required(values.threshold, "threshold", usage), usage);
      return trustInit(out, (values.key ?? []).map((path) => ({ path })), threshold);
    },
  },
  add: {
    usage: "deno task trust add FILE --key PUB.pem [--name NAME] [--json]",
    run: (args) => {
      const usage = COMMANDS.add.usage;
      const { values, positionals } = parseFlags(
        args,
        {
          ...JSON_FLAG,
          key: { type: "string" },
          name: { type: "string" },
        },
        usage,
        true,
      );
      const file = onePositional(positionals, "the trust file", usage);
      return trustAdd(file, required(values.key, "key", usage), values.name);
    },
  },
  remove: {
    usage: "deno task trust remove FILE --keyid ed25519:HEX [--json]",
    run: (args) => {
      const usage = COMMANDS.remove.usage;
      const { values, positionals } = parseFlags(
        args,
        {
          ...JSON_FLAG,
          keyid: { type: "string" },
        },
        usage,
        true,
      );
      const file = onePositional(positionals, "the trust file", usage);
      return trustRemove(file, required(values.keyid, "keyid", usage));
    },
  },
  rotate: {
    usage: "deno task trust rotate --from FILE --out NEXT [--add-key PUB.pem]... " +
      "[--remove-key KEYID]... [--threshold K] --expires 365d [--sign-with KEY.pem]... [--json]",
    run: (args) => {
      const usage = COMMANDS.rotate.usage;
      const { values } = parseFlags(args, {
        ...JSON_FLAG,
        from: { type: "string" },
        out: { type: "string" },
        "add-key": { type: "string", multiple: true },
        "remove-key": { type: "string", multiple: true },
        threshold: { type: "string" },
        expires: { type: "string" },
        "sign-with": { type: "string", multiple: true },
      }, usage);
      return trustRotate({
        from: required(values.from, "from", usage),
        out: required(values.out, "out", usage),
        addKeys: values["add-key"],
        removeKeys: values["remove-key"],
        threshold: values.threshold === undefined
          ? undefined
          : parseThreshold(values.threshold, usage),
        expiresInMs: parseDurationMs(required(values.expires, "expires", usage), "expires"),
        signWith: values["sign-with"],
      });
    },
  },
  sign: {
    usage: "deno task trust sign NEXT --prev FILE --key KEY.pem [--json]",
    run: (args) => {
      const usage = COMMANDS.sign.usage;
      const { values, positionals } = parseFlags(
        args,
        { ...JSON_FLAG, prev: { type: "string" }, key: { type: "string" } },
        usage,
        true,
      );
      const file = onePositional(positionals, "the next trust version's file", usage);
      return trustSign(
        file,
        required(values.prev, "prev", usage),
        required(values.key, "key", usage),
      );
    },
  },
  threshold: {
    usage: "deno task trust threshold FILE K [--json]",
    run: (args) => {
      const usage = COMMANDS.threshold.usage;
      const { positionals } = parseFlags(args, JSON_FLAG, usage, true);
      if (positionals.length !== 2) throw new UsageError("give the trust file and K", usage);
      return trustThreshold(positionals[0], parseThreshold(positionals[1], usage));
    },
  },
};

/** What `deno task trust --help` prints. */
export const TRUST_HELP: HelpSpec = {
  summary: "Creates, edits and prints trust files: the public keys a verifier trusts and how " +
    "many must sign (k of n). Offline; every change is checked and written atomically.",
  usage: USAGE,
  flags: [
    { flag: "FILE", text: "the trust file", default: TRUST_FILE },
    { flag: "--out FILE", text: "init: the trust file to create (never overwritten)" },
    { flag: "--key PUB.pem", text: "init, add: a public key file (.pub.pem); repeat for init" },
    {
      flag: "--threshold K",
      text: "init, rotate: how many keys must sign, 1..number of keys",
      default: "rotate: the current one",
    },
    { flag: "--name NAME", text: "add: a label for the key", default: "its file name" },
    { flag: "--keyid ID", text: "remove: the key to remove (ed25519:<hex>)" },
    { flag: "K", text: "threshold: the new number of keys that must sign" },
    { flag: "--from FILE", text: "rotate: the current trust version" },
    { flag: "--add-key PUB.pem", text: "rotate: a public key the next version adds; repeatable" },
    { flag: "--remove-key ID", text: "rotate: a keyid the next version drops; repeatable" },
    { flag: "--expires DUR", text: "rotate: validity of the next version (30d, 12h, ...)" },
    {
      flag: "--sign-with KEY.pem",
      text: "rotate: a private key (old or new) that signs now; repeatable",
      default: "none: holders sign later with 'trust sign'",
    },
    { flag: "--prev FILE", text: "sign: the version NEXT rotates from" },
    { flag: "--key KEY.pem", text: "sign: the private key that adds its signature" },
    { flag: "--json", text: "print the resulting file as JSON", default: "human-readable lines" },
  ],
  examples: [
    `deno task trust add ${TRUST_FILE} --key ./.phase/keys/other.pub.pem`,
    `deno task trust threshold ${TRUST_FILE} 2`,
    `deno task trust rotate --from ${TRUST_FILE} --out ./.phase/trust/2.json --add-key ./.phase/keys/new.pub.pem --remove-key ed25519:HEX --expires 365d --sign-with ./.phase/keys/release.pem --sign-with ./.phase/keys/new.pem`,
    "deno task trust sign ./.phase/trust/2.json --prev " + TRUST_FILE +
    " --key ./.phase/keys/other.pem",
    `deno task trust init --out ./.phase/trust/two.json --key ./.phase/keys/release.pub.pem --key ./.phase/keys/other.pub.pem --threshold 2`,
  ],
  codes: ["E_USAGE", "E_TRUST", "E_KEY", "E_EXISTS", "E_IO"],
};

/** Runs `trust <command>`; returns the exit status. */
export async function runTrust(
  args: string[],
  out: (line: string) => void = console.log,
): Promise<number> {
  const [cmd, ...rest] = args;
  const command = cmd !== undefined && Object.hasOwn(COMMANDS, cmd) ? COMMANDS[cmd] : undefined;
  if (!command) {
    throw new UsageError(
      cmd === undefined ? "missing command" : `unknown command '${cmd}'`,
      `${USAGE}\n(commands: ${Object.keys(COMMANDS).join(", ")})`,
    );
  }
  const summary = await command.run(rest);
  if (rest.includes("--json")) out(JSON.stringify({ ok: true, ...summary }));
  else {
    const lines = "rotation" in summary ? describeRotation(summary) : describeTrust(summary);
    for (const line of lines) out(line);
  }
  return 0;
}
