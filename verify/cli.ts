/**
 * The `verify` command: the spec's conformance interface (formats.md §1).
 *
 * @module
 */
import { UsageError } from "../core/mod.ts";
import { parseFlags, printResult, wantsJson } from "../cli/mod.ts";
import { VerifyError } from "./errors.ts";
import { FLOOR_FILE } from "./floor.ts";
import { parseUtcTime } from "./manifest.ts";
import { parseArtifactArgs, verifyFiles } from "./workflow.ts";

/** Permission set of the verify entrypoint. */
export const VERIFY_PERMISSION_SET = "verify";

/** The flags of `deno task verify` (its `--help` lists each one; testing/help_test.ts checks). */
export const VERIFY_FLAGS = {
  manifest: { type: "string" },
  trust: { type: "string" },
  channel: { type: "string" },
  arch: { type: "string" },
  "min-version": { type: "string" },
  now: { type: "string" },
  artifact: { type: "string", multiple: true },
  state: { type: "string" },
  json: { type: "boolean" },
} as const;

const USAGE =
  "deno task verify --manifest FILE --trust FILE [--channel C] [--arch A] [--min-version V] [--now RFC3339] [--artifact NAME=PATH]... [--state DIR] [--json]";

/** Runs the verify command; returns the exit status. */
export async function runVerify(
  args: string[],
  out: (line: string) => void = console.log,
  isTerminal: () => boolean = () => Deno.stdout.isTerminal(),
): Promise<number> {
  // One rule (cli/output.ts): JSON with --json or when stdout is not a terminal.
  const json = wantsJson({ json: args.includes("--json"), isTerminal });
  try {
    const { values } = parseFlags(args, VERIFY_FLAGS, USAGE);
    if (!values.manifest) throw new UsageError("missing --manifest", USAGE);
    if (!values.trust) throw new UsageError("missing --trust", USAGE);
    let now: Date | undefined;
    if (values.now !== undefined) {
      now = parseUtcTime(values.now);
      if (!now) throw new UsageError(`--now must be RFC 3339 UTC (…Z), got '${values.now}'`, USAGE);
    }
    const artifacts = parseArtifactArgs(values.artifact ?? [], USAGE);
    const { verified, manifestCid, artifactsChecked, floor } = await verifyFiles({
      manifest: values.manifest,
      trust: values.trust,
      channel: values.channel,
      arch: values.arch,
      now,
      minVersion: values["min-version"],
      stateDir: values.state,
      artifacts,
      permissionSet: VERIFY_PERMISSION_SET,
    });
    const m = verified.value;
    // The floor that applied is part of the answer (issue 11): a user who
    // meets E_ROLLBACK later must be able to see where the floor came from.
    const floorFile = values.state !== undefined ? `${values.state}/${FLOOR_FILE}` : null;
    printResult(
      {
        ok: true,
        channel: m.channel,
        arch: m.arch,
        version: m.version,
        expires_at: m.expiresAt.toISOString(),
        signers: verified.signers,
        manifest_cid: manifestCid,
        artifacts_checked: artifactsChecked,
        floor: floor ?? null,
        floor_file: floorFile,
      },
      () =>
        `phase-verify: ok: ${m.channel}/${m.arch} ${m.version}, signed by ${
          verified.signers.join(", ")
        }` +
        (artifactsChecked.length ? `; artifacts ok: ${artifactsChecked.join(", ")}` : "") +
        (floorFile === null
          ? "; rollback floor: not checked (no --state)"
          : floor === undefined
          ? `; rollback floor: none recorded in ${floorFile}`
          : `; rollback floor: ${floor} (${floorFile})`),
      { json, isTerminal, out },
    );
    return 0;
  } catch (err) {
    if (json && (err instanceof VerifyError || err instanceof UsageError)) {
      out(JSON.stringify({
        ok: false,
        code: err.code,
        message: err.message,
        ...(err.hint ? { hint: err.hint } : {}),
      }));
    }
    throw err;
  }
}
