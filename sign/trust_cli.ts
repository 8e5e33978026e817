/**
 * `deno task trust`: create, edit and print trust files, offline under the
 * `sign` set (the only set that may write `./.phase/trust`, TM-12). The
 * subcommands are one table, so later ones (issue 14: `rotate` with signed
 * trust versions) are one entry each.
 *
 * @module
 */
import { UsageError } from "../core/mod.ts";
import { type HelpSpec, parseFlags, required, TRUST_FILE } from "../cli/mod.ts";
import {
  describeTrust,
  trustAdd,
  trustInit,
  trustRemove,
  trustShow,
  type TrustSummary,
  trustThreshold,
} from "./trust.ts";

/** Permission set of the trust entrypoint (the offline signer's). */
export const TRUST_PERMISSION_SET = "sign";

const USAGE = `deno task trust show FILE [--json]
       deno task trust init --out FILE --key PUB.pem... --threshold K [--json]
       deno task trust add FILE --key PUB.pem [--name NAME] [--json]
       deno task trust remove FILE --keyid ed25519:HEX [--json]
       deno task trust threshold FILE K [--json]`;

/** One subcommand of `deno task trust`. */
interface TrustCommand {
  /** Its usage line. */
  readonly usage: string;
  /** Runs it on the arguments after its name; returns the resulting file. */
  readonly run: (args: string[]) => Promise<TrustSummary>;
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
} as const;

/** The subcommands, by name (issue 14 adds `rotate` here). */
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
    { flag: "--threshold K", text: "init: how many keys must sign, 1..number of keys" },
    { flag: "--name NAME", text: "add: a label for the key", default: "its file name" },
    { flag: "--keyid ID", text: "remove: the key to remove (ed25519:<hex>)" },
    { flag: "K", text: "threshold: the new number of keys that must sign" },
    { flag: "--json", text: "print the resulting file as JSON", default: "human-readable lines" },
  ],
  examples: [
    `deno task trust add ${TRUST_FILE} --key ./.phase/keys/other.pub.pem`,
    `deno task trust threshold ${TRUST_FILE} 2`,
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
  else for (const line of describeTrust(summary)) out(line);
  return 0;
}
