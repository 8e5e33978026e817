/**
 * The base of every Phase error family. Each component defines its own
 * subclass with a small set of literal `code`s; CLIs map codes to exit
 * statuses and print a `hint:` line.
 *
 * @module
 */

/** A Phase error: a literal code, a human message, a hint and a cause. */
export class PhaseError<C extends string = string> extends Error {
  readonly code: C;
  readonly hint: string | undefined;
  constructor(
    code: C,
    message: string,
    options: { cause?: unknown; hint?: string } = {},
  ) {
    super(message, { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.hint = options.hint;
  }
}

/** Exit status for a usage error, shared by every CLI (as in the spec). */
export const EXIT_USAGE = 2;
/** Exit status when a process holds a permission outside its set. */
export const EXIT_PERMISSIONS = 13;
/** Exit status for an unexpected internal error. */
export const EXIT_INTERNAL = 70;

/** A usage error: bad or missing flags. */
export class UsageError extends PhaseError<"E_USAGE"> {
  constructor(message: string, hint?: string) {
    super("E_USAGE", message, { hint });
  }
}

/** The process holds a permission its set does not grant (TM-12). */
export class PermissionSetError extends PhaseError<"E_PERMISSIONS"> {
  readonly excess: readonly string[];
  constructor(set: string, excess: readonly string[]) {
    super(
      "E_PERMISSIONS",
      `refusing to run: this process holds permissions outside its set '${set}': ${
        excess.join(", ")
      }`,
      {
        hint:
          `run it through 'deno task' or the compiled binary, which grant exactly -P=${set}; never with -A`,
      },
    );
    this.excess = excess;
  }
}

/** Turns any thrown value into a short message. */
export function describe(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}
