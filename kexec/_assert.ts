/**
 * Assertion helpers for kexec/ and images/ tests (no @std: JSR is not
 * reachable here). Private to kexec/.
 *
 * @module
 */
import { deepStrictEqual } from "node:assert/strict";

/** Deep equality. */
export function assertEquals<T>(actual: T, expected: T, message?: string): void {
  if (message === undefined) deepStrictEqual(actual, expected);
  else deepStrictEqual(actual, expected, message);
}

/** Truthiness with a message. */
export function assert(cond: unknown, message = "assertion failed"): asserts cond {
  if (!cond) throw new Error(message);
}

// deno-lint-ignore no-explicit-any
type Ctor<E> = new (...args: any[]) => E;

/** `fn` rejects with an instance of `cls` (message containing `includes`); returns it. */
export async function assertRejects<E extends Error>(
  fn: () => Promise<unknown>,
  cls: Ctor<E>,
  includes?: string,
): Promise<E> {
  try {
    await fn();
  } catch (err) {
    if (!(err instanceof cls)) throw new Error(`expected ${cls.name}, got ${err}`);
    if (includes && !err.message.includes(includes)) {
      throw new Error(`expected message with '${includes}', got '${err.message}'`);
    }
    return err;
  }
  throw new Error(`expected ${cls.name}, nothing was thrown`);
}
