/**
 * What a fuzz target is and how one runs: a named fast-check property over
 * one parser of untrusted bytes, checked for a number of inputs from a
 * seed. The properties share three rules (issue 14 §2): a parser throws
 * only its own typed error, answers within {@link INPUT_DEADLINE_MS}, and
 * holds what it allocates under its cap.
 *
 * @module
 */
import fc from "fast-check";

/**
 * Longest one input may take, in milliseconds. Generous (the machine is
 * shared): what it catches is a super-linear path (a regular expression
 * that backtracks, a loop over a length field), which takes seconds.
 */
export const INPUT_DEADLINE_MS = 2_000;

/** One fuzz target. */
export interface FuzzTarget {
  /** Name for `--target`, e.g. `strict-json`. */
  readonly name: string;
  /** The parser under test, as `file: function`. */
  readonly parser: string;
  /** The properties checked, one line each (docs/fuzzing.md lists them). */
  readonly properties: readonly string[];
  /** The independent implementation compared against, if any. */
  readonly partner?: string;
  /** Builds the property (seeds may need async set-up). */
  build(): Promise<fc.IRawProperty<unknown>>;
  /** Releases what `build` opened (sockets). */
  close?(): Promise<void>;
}

/** Inputs checked so far in this process, across targets (for progress). */
export let inputsChecked = 0;

/** Counts one input (called by every property). */
export function countInput(): void {
  inputsChecked++;
}

/** A property failure that is not a parser's typed error. */
export class FuzzFinding extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "FuzzFinding";
  }
}

function describe(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as { code?: unknown }).code;
    return `${err.constructor.name}${typeof code === "string" ? `(${code})` : ""}: ${
      err.message.slice(0, 200)
    }`;
  }
  return `non-Error thrown: ${String(err).slice(0, 200)}`;
}

/**
 * Runs `fn` on one input: its value, or `undefined` when it threw an error
 * `typed` accepts. Any other throw, or a run above the deadline, is a
 * {@link FuzzFinding}.
 */
export function only<T>(typed: (err: unknown) => boolean, fn: () => T): T | undefined {
  countInput();
  const t0 = performance.now();
  let out: T | undefined;
  try {
    out = fn();
  } catch (err) {
    if (!typed(err)) throw new FuzzFinding(`untyped error: ${describe(err)}`, { cause: err });
    out = undefined;
  }
  const ms = performance.now() - t0;
  if (ms > INPUT_DEADLINE_MS) throw new FuzzFinding(`took ${Math.round(ms)} ms`);
  return out;
}

/** As {@link only}, for an async parser, with the deadline enforced by a timer. */
export async function onlyAsync<T>(
  typed: (err: unknown) => boolean,
  fn: () => Promise<T>,
  deadlineMs: number = INPUT_DEADLINE_MS,
): Promise<T | undefined> {
  countInput();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new FuzzFinding(`no answer within ${deadlineMs} ms (hang)`)),
      deadlineMs,
    );
  });
  try {
    return await Promise.race([fn(), deadline]);
  } catch (err) {
    if (err instanceof FuzzFinding) throw err;
    if (!typed(err)) throw new FuzzFinding(`untyped error: ${describe(err)}`, { cause: err });
    return undefined;
  } finally {
    clearTimeout(timer);
  }
}

/** Fails the property with `message` unless `cond`. */
export function check(cond: boolean, message: string): void {
  if (!cond) throw new FuzzFinding(message);
}

/** An error with a given `code` among `codes`, of class `cls`. */
export function codeOf(
  cls: abstract new (...a: never[]) => Error,
  ...codes: string[]
): (err: unknown) => boolean {
  return (err) =>
    err instanceof cls &&
    (codes.length === 0 || codes.includes((err as unknown as { code: string }).code));
}

/** Options of {@link runTarget}. */
export interface RunOptions {
  readonly runs: number;
  readonly seed: number;
  /** fast-check's replay path from a report: reruns exactly the failing input. */
  readonly path?: string;
}

/** The outcome of one target's run. */
export interface RunResult {
  readonly target: string;
  readonly runs: number;
  readonly seed: number;
  readonly ms: number;
  readonly failed: boolean;
  /** fast-check's report: the shrunk counterexample, seed and path. */
  readonly report: string;
}

/** Runs `target` for `runs` inputs from `seed`; never throws on a finding. */
export async function runTarget(target: FuzzTarget, o: RunOptions): Promise<RunResult> {
  const prop = await target.build();
  const t0 = performance.now();
  try {
    const details = await fc.check(prop, {
      numRuns: o.runs,
      seed: o.seed,
      endOnFailure: false,
      ...(o.path !== undefined ? { path: o.path } : {}),
    });
    const ms = Math.round(performance.now() - t0);
    return {
      target: target.name,
      runs: details.numRuns,
      seed: o.seed,
      ms,
      failed: details.failed,
      report: details.failed
        ? `${fc.defaultReportMessage(details) ?? "failed"}\nerror: ${
          String(details.errorInstance).slice(0, 500)
        }`
        : "",
    };
  } finally {
    await target.close?.();
  }
}
