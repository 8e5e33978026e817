/**
 * The one rule for how an entrypoint prints its result (issue 11 §4): on a
 * terminal, human-readable lines; JSON with `--json` or whenever stdout is
 * not a terminal (a pipe, a file, the boot orchestrator reading a step).
 * Machines never have to ask for JSON, people never have to read it.
 *
 * @module
 */

/** How {@link printResult} decides and where it writes. */
export interface OutputOptions {
  /** The user passed `--json`: JSON even on a terminal. */
  readonly json?: boolean;
  /** Whether stdout is a terminal (injected by tests); default `Deno.stdout.isTerminal()`. */
  readonly isTerminal?: () => boolean;
  /** Where one line goes (without its newline); default `console.log`. */
  readonly out?: (line: string) => void;
}

/** True when the result should be printed as JSON: `--json`, or stdout is not a terminal. */
export function wantsJson(opts: Pick<OutputOptions, "json" | "isTerminal"> = {}): boolean {
  if (opts.json) return true;
  return !(opts.isTerminal ?? (() => Deno.stdout.isTerminal()))();
}

/**
 * Prints a result: `value` as one JSON line, or the `human` lines on a
 * terminal without `--json`. `human` is a function so that the text is
 * built only when it is shown.
 */
export function printResult(
  value: unknown,
  human: () => string | readonly string[],
  opts: OutputOptions = {},
): void {
  const out = opts.out ?? ((line: string) => console.log(line));
  if (wantsJson(opts)) {
    out(JSON.stringify(value));
    return;
  }
  const text = human();
  for (const line of typeof text === "string" ? [text] : text) out(line);
}
