/**
 * The boot chain's step protocol: each step (discover, fetch, kexec) ends
 * its stdout with ONE JSON object line, its result. The component that
 * produces a result owns its type and its strict decoder; this module holds
 * what those decoders share: the error (`E_STEP`), taking the result line
 * off stdout, and field readers that refuse unknown members and wrong types.
 *
 * @module
 */
import { PhaseError } from "./errors.ts";

/** A step printed no result line, or one that does not decode. */
export class StepOutputError extends PhaseError<"E_STEP"> {}

/** A decoded JSON object whose members are read with the helpers below. */
export type StepObject = Readonly<Record<string, unknown>>;

/**
 * The result line of a step: the last non-empty line of its stdout. Lines
 * before it are the step's own (dry-run notes); the result is always last.
 */
export function resultLine(stdout: string, step: string): string {
  const lines = stdout.split("\n").map((l) => l.trim()).filter((l) => l !== "");
  const last = lines.at(-1);
  if (last === undefined) throw new StepOutputError("E_STEP", `${step}: printed no result line`);
  return last;
}

/** Fails with E_STEP naming the step and the member. */
export function stepFail(step: string, where: string, message: string): never {
  throw new StepOutputError("E_STEP", `${step}: result ${where}: ${message}`, {
    hint:
      "the step and the orchestrator come from the same build; a mismatch is a bug or tampering",
  });
}

/** `v` as an object with exactly the `required` members and optionally the `optional` ones. */
export function objectWith(
  v: unknown,
  step: string,
  where: string,
  required: readonly string[],
  optional: readonly string[] = [],
): StepObject {
  if (v === null || typeof v !== "object" || Array.isArray(v)) {
    stepFail(step, where, "is not an object");
  }
  const o = v as StepObject;
  for (const k of Object.keys(o)) {
    if (!required.includes(k) && !optional.includes(k)) {
      stepFail(step, where, `unknown member '${k}'`);
    }
  }
  for (const k of required) {
    if (!Object.hasOwn(o, k)) stepFail(step, where, `missing member '${k}'`);
  }
  return o;
}

/** A string member (`optional`: may be absent). */
export function str(o: StepObject, k: string, step: string, where: string): string {
  const v = o[k];
  if (typeof v !== "string") stepFail(step, `${where}.${k}`, "is not a string");
  return v;
}

/** An optional string member. */
export function optStr(o: StepObject, k: string, step: string, where: string): string | undefined {
  return Object.hasOwn(o, k) ? str(o, k, step, where) : undefined;
}

/** A boolean member. */
export function bool(o: StepObject, k: string, step: string, where: string): boolean {
  const v = o[k];
  if (typeof v !== "boolean") stepFail(step, `${where}.${k}`, "is not true or false");
  return v;
}

/** A non-negative safe integer member. */
export function count(o: StepObject, k: string, step: string, where: string): number {
  const v = o[k];
  if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 0) {
    stepFail(step, `${where}.${k}`, "is not a non-negative integer");
  }
  return v;
}

/** An array member, each item decoded by `item`. */
export function arrayOf<T>(
  o: StepObject,
  k: string,
  step: string,
  where: string,
  item: (v: unknown, where: string) => T,
): T[] {
  const v = o[k];
  if (!Array.isArray(v)) stepFail(step, `${where}.${k}`, "is not an array");
  return v.map((x, i) => item(x, `${where}.${k}[${i}]`));
}

/** An array of strings member. */
export function strings(o: StepObject, k: string, step: string, where: string): string[] {
  return arrayOf(o, k, step, where, (x, w) => {
    if (typeof x !== "string") stepFail(step, w, "is not a string");
    return x;
  });
}

/** One of `allowed` string values. */
export function oneOf<T extends string>(
  o: StepObject,
  k: string,
  allowed: readonly T[],
  step: string,
  where: string,
): T {
  const v = str(o, k, step, where);
  if (!(allowed as readonly string[]).includes(v)) {
    stepFail(step, `${where}.${k}`, `'${v}' is not one of ${allowed.join(", ")}`);
  }
  return v as T;
}
