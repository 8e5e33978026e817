/**
 * What `phase-kexec load` prints as its last stdout line once the kernel is
 * loaded (or, with `--dry-run`, would be): one type and one strict decoder,
 * used by the producer (`kexec/cli.ts`) and the boot orchestrator. After a
 * real `load --exec` the line is printed before exec, which does not return.
 *
 * @module
 */
import { stepResult } from "../core/mod.ts";
import { isJsonObject, type JsonValue, parseStrictJson } from "../verify/mod.ts";
import type { KexecMethod } from "./kexec.ts";

/** The result of `phase-kexec load`. */
export interface KexecLoadResult {
  /** Always true: a failed load prints an error and no result line. */
  readonly ok: true;
  /** Channel of the verified manifest. */
  readonly channel: string;
  /** Architecture of the verified manifest. */
  readonly arch: string;
  /** Release version of the verified manifest. */
  readonly version: string;
  /** `file` (kexec_file_load, `kexec -s`) or `classic` (`kexec -l`). */
  readonly method: KexecMethod;
  /** The kexec command line that loaded (or would load) the staged copies. */
  readonly argv: readonly string[];
  /** True when nothing was loaded (`--dry-run`). */
  readonly dryRun: boolean;
}

const METHODS: readonly KexecMethod[] = ["file", "classic"];

/**
 * Decodes `phase-kexec load`'s result (its stdout, or just the line);
 * `step` names the step in error messages. Throws the core's
 * `stepResult.StepOutputError` (E_STEP) on anything else.
 */
export function decodeKexecLoadResult(stdout: string, step: string = "kexec"): KexecLoadResult {
  let doc: JsonValue;
  try {
    doc = parseStrictJson(stepResult.resultLine(stdout, step));
  } catch (err) {
    if (err instanceof stepResult.StepOutputError) throw err;
    throw new stepResult.StepOutputError(
      "E_STEP",
      `${step}: result line is not strict JSON: ${err}`,
      {
        cause: err,
      },
    );
  }
  if (!isJsonObject(doc)) stepResult.stepFail(step, "line", "is not a JSON object");
  const o = stepResult.objectWith(doc as stepResult.StepObject, step, "line", [
    "ok",
    "channel",
    "arch",
    "version",
    "method",
    "argv",
    "dryRun",
  ]);
  if (o.ok !== true) stepResult.stepFail(step, "line.ok", "is not true");
  return {
    ok: true,
    channel: stepResult.str(o, "channel", step, "line"),
    arch: stepResult.str(o, "arch", step, "line"),
    version: stepResult.str(o, "version", step, "line"),
    method: stepResult.oneOf(o, "method", METHODS, step, "line"),
    argv: stepResult.strings(o, "argv", step, "line"),
    dryRun: stepResult.bool(o, "dryRun", step, "line"),
  };
}
