/**
 * `deno task keygen` and `deno task sign`.
 *
 * @module
 */
import { UsageError } from "../core/mod.ts";
import {
  KEYS_DIR,
  parseDurationMs,
  parseFlags,
  printResult,
  required,
  resolveScope,
  TRUST_FILE,
} from "../cli/mod.ts";
import { parseUtcTime } from "../verify/mod.ts";
import { keygen, loadSigningKey } from "./keys.ts";
import { addRecordSignature, addSignature, releaseDir, signRelease } from "./sign.ts";

/** Permission set of the sign entrypoint. */
export const SIGN_PERMISSION_SET = "sign";

/** The flags of `deno task keygen` (its `--help` lists each one; testing/help_test.ts checks). */
export const KEYGEN_FLAGS = {
  out: { type: "string" },
  trust: { type: "string" },
  name: { type: "string" },
} as const;

/** The flags of `deno task sign` (its `--help` lists each one; testing/help_test.ts checks). */
export const SIGN_FLAGS = {
  root: { type: "string" },
  channel: { type: "string" },
  arch: { type: "string" },
  version: { type: "string" },
  key: { type: "string" },
  "expires-in": { type: "string" },
  cmdline: { type: "string" },
  artifact: { type: "string", multiple: true },
  mirror: { type: "string", multiple: true },
  provider: { type: "string", multiple: true },
  now: { type: "string" },
  "add-signature": { type: "boolean" },
  record: { type: "boolean" },
} as const;

const KEYGEN_USAGE = `deno task keygen [--out DIR] [--trust FILE] [--name NAME]
      (default: the key in ${KEYS_DIR}, read only by 'sign'; the trust file at ${TRUST_FILE},
      which verifiers read and no networked set writes; with another --out, beside the key)`;
const SIGN_USAGE =
  "deno task sign --root DIR --channel C --arch A --version V --key PEM [--expires-in 30d] [--cmdline STR] [--artifact NAME]... [--mirror URL]... [--provider MULTIADDR]... [--now RFC3339]\n" +
  "      deno task sign --add-signature [--record] --root DIR --channel C --arch A --key PEM";

/** Runs `keygen` or `sign`; returns the exit status. */
export async function runSign(
  args: string[],
  out: (s: string) => void = console.log,
  isTerminal: () => boolean = () => Deno.stdout.isTerminal(),
): Promise<number> {
  // One rule (cli/output.ts): lines on a terminal, JSON with --json or on a pipe.
  const result = (value: Record<string, unknown>, human: () => string[]) =>
    printResult({ ok: true, ...value }, human, { isTerminal, out });
  const [cmd, ...rest] = args;
  if (cmd === "keygen") {
    const { values } = parseFlags(rest, KEYGEN_FLAGS, KEYGEN_USAGE);
    const dir = values.out ?? KEYS_DIR;
    // TM-12: in the layout, the trust file lives apart from the keys, where
    // networked sets may read it but never the private key beside it.
    const inLayout = resolveScope(dir, "/") === resolveScope(KEYS_DIR, "/");
    const trustPath = values.trust ?? (inLayout ? TRUST_FILE : undefined);
    const { keyid, paths } = await keygen(dir, values.name ?? "release", { trustPath });
    result({
      private_key: paths.privateKey,
      public_key: paths.publicKey,
      trust: paths.trust,
      keyid,
    }, () => [
      `phase-keygen: wrote ${paths.privateKey} (0600), ${paths.publicKey}, ${paths.trust}`,
      `keyid ${keyid}`,
    ]);
    return 0;
  }
  if (cmd !== "sign") {
    throw new UsageError(`unknown command '${cmd ?? ""}'`, `${KEYGEN_USAGE}\n      ${SIGN_USAGE}`);
  }
  const { values } = parseFlags(rest, SIGN_FLAGS, SIGN_USAGE);
  const root = required(values.root, "root", SIGN_USAGE);
  const channel = required(values.channel, "channel", SIGN_USAGE);
  const arch = required(values.arch, "arch", SIGN_USAGE);
  const keyPath = required(values.key, "key", SIGN_USAGE);
  const key = await loadSigningKey(keyPath);
  if (values["add-signature"]) {
    if (values.record) {
      const path = `${releaseDir(root, channel, arch)}/record.json`;
      await addRecordSignature(path, key);
      result({ path, keyid: key.keyid }, () => [`phase-sign: added ${key.keyid} to ${path}`]);
      return 0;
    }
    const { path, signatures } = await addSignature(root, channel, arch, key);
    result(
      { path, keyid: key.keyid, signatures },
      () => [`phase-sign: added ${key.keyid} to ${path} (${signatures} signatures)`],
    );
    return 0;
  }
  const version = required(values.version, "version", SIGN_USAGE);
  let now = new Date();
  if (values.now !== undefined) {
    const t = parseUtcTime(values.now);
    if (!t) throw new UsageError(`--now must be RFC 3339 UTC, got '${values.now}'`, SIGN_USAGE);
    now = t;
  }
  const { path, cid } = await signRelease({
    root,
    channel,
    arch,
    version,
    now,
    expiresInMs: parseDurationMs(values["expires-in"] ?? "30d", "expires-in"),
    cmdline: values.cmdline,
    extraArtifacts: values.artifact,
    mirrors: values.mirror,
    providers: values.provider,
  }, key);
  result(
    { path, cid, keyid: key.keyid },
    () => [`phase-sign: wrote ${path} (${cid}), signed by ${key.keyid}`],
  );
  return 0;
}
