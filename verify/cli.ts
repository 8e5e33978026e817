/**
 * The `verify` command: the spec's conformance interface (formats.md §1).
 *
 * @module
 */
import { UsageError } from "../core/mod.ts";
import { parseFlags } from "../cli/mod.ts";
import { explainFsError, readFileCapped } from "../core/mod.ts";
import { rawCid } from "./cid.ts";
import { VerifyError } from "./errors.ts";
import { readFloor } from "./floor.ts";
import { MAX_MANIFEST_BYTES, parseUtcTime } from "./manifest.ts";
import { MAX_TRUST_BYTES, parseTrust } from "./trust.ts";
import { verifyArtifact, verifyManifest } from "./verify.ts";

/** Permission set of the verify entrypoint. */
export const VERIFY_PERMISSION_SET = "verify";

const USAGE =
  "deno task verify --manifest FILE --trust FILE [--channel C] [--arch A] [--min-version V] [--now RFC3339] [--artifact NAME=PATH]... [--state DIR] [--json]";

async function load(path: string, cap: number): Promise<Uint8Array> {
  try {
    return await readFileCapped(path, cap);
  } catch (err) {
    throw new VerifyError(
      "E_IO",
      `cannot read ${explainFsError(err, path, VERIFY_PERMISSION_SET)}`,
      {
        cause: err,
        hint: "check the path; the verifier reads only the directories its permission set lists",
      },
    );
  }
}

/** Runs the verify command; returns the exit status. */
export async function runVerify(
  args: string[],
  out: (line: string) => void = console.log,
): Promise<number> {
  const json = args.includes("--json");
  try {
    const { values } = parseFlags(args, {
      manifest: { type: "string" },
      trust: { type: "string" },
      channel: { type: "string" },
      arch: { type: "string" },
      "min-version": { type: "string" },
      now: { type: "string" },
      artifact: { type: "string", multiple: true },
      state: { type: "string" },
      json: { type: "boolean" },
    }, USAGE);
    if (!values.manifest) throw new UsageError("missing --manifest", USAGE);
    if (!values.trust) throw new UsageError("missing --trust", USAGE);
    let now: Date | undefined;
    if (values.now !== undefined) {
      now = parseUtcTime(values.now);
      if (!now) throw new UsageError(`--now must be RFC 3339 UTC (…Z), got '${values.now}'`, USAGE);
    }
    const artifacts: [string, string][] = [];
    for (const a of values.artifact ?? []) {
      const eq = a.indexOf("=");
      if (eq <= 0 || eq === a.length - 1) {
        throw new UsageError(`--artifact takes NAME=PATH, got '${a}'`, USAGE);
      }
      artifacts.push([a.slice(0, eq), a.slice(eq + 1)]);
    }
    const trust = parseTrust(await load(values.trust, MAX_TRUST_BYTES));
    const bytes = await load(values.manifest, MAX_MANIFEST_BYTES);
    let floor: string | undefined;
    if (values.state !== undefined && values.channel && values.arch) {
      floor = await readFloor(values.state, values.channel, values.arch);
    }
    const verified = verifyManifest(bytes, trust, {
      channel: values.channel,
      arch: values.arch,
      now,
      minVersion: values["min-version"],
      floor,
    });
    for (const [name] of artifacts) {
      if (!(name in verified.value.artifacts)) {
        throw new UsageError(
          `manifest has no artifact '${name}'`,
          `it lists: ${Object.keys(verified.value.artifacts).join(", ")}`,
        );
      }
    }
    for (const [name, path] of artifacts) await verifyArtifact(verified, name, path);
    const m = verified.value;
    if (json) {
      out(JSON.stringify({
        ok: true,
        channel: m.channel,
        arch: m.arch,
        version: m.version,
        expires_at: m.expiresAt.toISOString(),
        signers: verified.signers,
        manifest_cid: rawCid(bytes),
        artifacts_checked: artifacts.map(([n]) => n),
      }));
    } else {
      out(
        `phase-verify: ok: ${m.channel}/${m.arch} ${m.version}, signed by ${
          verified.signers.join(", ")
        }` +
          (artifacts.length ? `; artifacts ok: ${artifacts.map(([n]) => n).join(", ")}` : ""),
      );
    }
    return 0;
  } catch (err) {
    if (json && (err instanceof VerifyError || err instanceof UsageError)) {
      out(JSON.stringify({ ok: false, code: err.code, message: err.message }));
    }
    throw err;
  }
}
