/**
 * `deno task keygen` and `deno task sign`.
 *
 * @module
 */
import { readFileCapped, UsageError } from "../core/mod.ts";
import {
  KEYS_DIR,
  parseDurationMs,
  parseFlags,
  printResult,
  required,
  resolveScope,
  TRUST_FILE,
} from "../cli/mod.ts";
import {
  canonicalArch,
  keyidOf,
  MAX_KEY_FILE_BYTES,
  parseUtcTime,
  publicRawFromPem,
} from "../verify/mod.ts";
import { keygen, loadSigningKey } from "./keys.ts";
import { addRecordSignature, addSignature, releaseDir, signRelease } from "./sign.ts";

/** Permission set of the sign entrypoint. */
export const SIGN_PERMISSION_SET = "sign";

/** The flags of `deno task keygen` (its `--help` lists each one; testing/help_test.ts checks). */
export const KEYGEN_FLAGS = {
  out: { type: "string" },
  trust: { type: "string" },
  name: { type: "string" },
  "add-to-trust": { type: "boolean" },
} as const;

/** The flags of `deno task sign` (its `--help` lists each one; testing/help_test.ts checks). */
export const SIGN_FLAGS = {
  root: { type: "string" },
  channel: { type: "string" },
  arch: { type: "string" },
  version: { type: "string" },
  key: { type: "string", multiple: true },
  "expires-in": { type: "string" },
  cmdline: { type: "string" },
  artifact: { type: "string", multiple: true },
  mirror: { type: "string", multiple: true },
  provider: { type: "string", multiple: true },
  now: { type: "string" },
  "add-signature": { type: "boolean" },
  record: { type: "boolean" },
} as const;

const KEYGEN_USAGE = `deno task keygen [--out DIR] [--trust FILE] [--name NAME] [--add-to-trust]
      (default: the key in ${KEYS_DIR}, read only by 'sign'; the trust file at ${TRUST_FILE},
      which verifiers read and no networked set writes; with another --out, beside the key;
      an existing trust file is left unchanged unless --add-to-trust adds the new key to it)`;
const SIGN_USAGE =
  "deno task sign --root DIR --channel C --arch A --version V --key PEM... [--expires-in 30d] [--cmdline STR] [--artifact NAME]... [--mirror URL]... [--provider MULTIADDR]... [--now RFC3339]\n" +
  "      deno task sign --add-signature [--record] --root DIR --channel C --arch A --key PEM...\n" +
  "      (k of n: every manifest signature first, record signatures last; see docs/signing.md)";

/**
 * The private key file of `keyid` among the `*.pub.pem` files beside the
 * given keys, for a command a user can paste; a placeholder otherwise.
 */
async function keyFileOf(keyid: string, keyPaths: readonly string[]): Promise<string> {
  const dirs = [...new Set(keyPaths.map((p) => p.slice(0, p.lastIndexOf("/") + 1) || "./"))];
  for (const dir of dirs) {
    try {
      for await (const e of Deno.readDir(dir)) {
        if (!e.isFile || !e.name.endsWith(".pub.pem")) continue;
        try {
          const pem = new TextDecoder().decode(
            await readFileCapped(`${dir}${e.name}`, MAX_KEY_FILE_BYTES),
          );
          if (keyidOf(publicRawFromPem(pem)) === keyid) {
            return `${dir}${e.name.slice(0, -".pub.pem".length)}.pem`;
          }
        } catch { /* not a public key: skip */ }
      }
    } catch { /* unreadable folder: fall back to the placeholder */ }
  }
  return `<private key of ${keyid.slice(0, 20)}…>.pem`;
}

/**
 * The loud warning after `--add-signature` re-signed the record with only
 * some of its earlier signers: who must sign again, and the exact command.
 */
export function lostRecordWarning(
  recordPath: string,
  signedBy: readonly string[],
  lost: readonly { keyid: string; command: string }[],
): string {
  return [
    `phase-sign: WARNING: ${recordPath} was re-signed by ${signedBy.join(", ")} only.`,
    `  The record names the manifest by the CID of its exact bytes, which the new manifest`,
    `  signature changed, so these earlier record signatures no longer hold:`,
    ...lost.map((l) => `    ${l.keyid}`),
    `  Until they sign again, a verifier whose threshold needs them refuses the record.`,
    `  Each must run (after every manifest signature is in):`,
    ...lost.map((l) => `    ${l.command}`),
  ].join("\n");
}

/** Runs `keygen` or `sign`; returns the exit status. */
export async function runSign(
  args: string[],
  out: (s: string) => void = console.log,
  warn: (s: string) => void = console.error,
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
    const { keyid, paths, trust } = await keygen(dir, values.name ?? "release", {
      trustPath,
      existingTrust: values["add-to-trust"] ? "add" : "keep",
    });
    result({
      private_key: paths.privateKey,
      public_key: paths.publicKey,
      trust: paths.trust,
      trust_file: trust,
      keyid,
    }, () => [
      `phase-keygen: wrote ${paths.privateKey} (0600), ${paths.publicKey}`,
      trust === "created"
        ? `phase-keygen: wrote ${paths.trust} (threshold 1)`
        : trust === "added"
        ? `phase-keygen: added the new key to ${paths.trust} (threshold unchanged)`
        : `phase-keygen: ${paths.trust} exists and was left unchanged: it does not trust the new key.\n` +
          `  to trust it: deno task trust add ${paths.trust} --key ${paths.publicKey}\n` +
          `  (or next time: deno task keygen ... --add-to-trust)`,
      `keyid ${keyid}`,
    ]);
    if (trust === "kept") {
      // Said on stderr too, so a script reading the JSON result still sees it.
      warn(
        `phase-keygen: ${paths.trust} was left unchanged and does not trust ${keyid}; ` +
          `to trust it: deno task trust add ${paths.trust} --key ${paths.publicKey}`,
      );
    }
    return 0;
  }
  if (cmd !== "sign") {
    throw new UsageError(`unknown command '${cmd ?? ""}'`, `${KEYGEN_USAGE}\n      ${SIGN_USAGE}`);
  }
  const { values } = parseFlags(rest, SIGN_FLAGS, SIGN_USAGE);
  const root = required(values.root, "root", SIGN_USAGE);
  const channel = required(values.channel, "channel", SIGN_USAGE);
  const arch = required(values.arch, "arch", SIGN_USAGE);
  const keyPaths = values.key ?? [];
  if (keyPaths.length === 0) throw new UsageError("missing required flag --key", SIGN_USAGE);
  const keys = [];
  for (const p of keyPaths) keys.push(await loadSigningKey(p));
  if (values["add-signature"]) {
    if (values.record) {
      const canonical = canonicalArch(arch) ?? arch;
      const r = await addRecordSignature(
        `${releaseDir(root, channel, canonical)}/record.json`,
        keys,
      );
      result(
        { path: r.path, added: r.added, signatures: r.signatures },
        () => [`phase-sign: added ${r.added.join(", ")} to ${r.path} (${r.signatures} signatures)`],
      );
      return 0;
    }
    const r = await addSignature(root, channel, arch, keys);
    result(
      {
        path: r.path,
        added: r.added,
        signatures: r.signatures,
        record: r.recordPath,
        record_signers: r.recordSigners,
        lost_record_signers: r.lostRecordSigners,
      },
      () => [
        `phase-sign: added ${r.added.join(", ")} to ${r.path} (${r.signatures} signatures)`,
        `phase-sign: re-signed ${r.recordPath} by ${r.recordSigners.join(", ")}`,
      ],
    );
    if (r.lostRecordSigners.length > 0) {
      const lost = [];
      for (const keyid of r.lostRecordSigners) {
        const file = await keyFileOf(keyid, keyPaths);
        lost.push({
          keyid,
          command: `deno task sign --add-signature --record --root ${root} --channel ${channel} ` +
            `--arch ${arch} --key ${file}`,
        });
      }
      warn(lostRecordWarning(r.recordPath, r.recordSigners, lost));
    }
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
  }, keys);
  const signers = keys.map((k) => k.keyid);
  result(
    { path, cid, signers },
    () => [`phase-sign: wrote ${path} (${cid}), signed by ${signers.join(", ")}`],
  );
  return 0;
}
