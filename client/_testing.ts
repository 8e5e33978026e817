/**
 * Small assertion helpers for the client's tests (no @std: JSR is not
 * reachable here). Private to client/.
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

/** `fn` throws an instance of `cls` (message containing `includes`); returns it. */
export function assertThrows<E extends Error>(
  fn: () => unknown,
  cls: Ctor<E>,
  includes?: string,
): E {
  try {
    fn();
  } catch (err) {
    if (!(err instanceof cls)) throw err;
    if (includes && !err.message.includes(includes)) {
      throw new Error(`error '${err.message}' does not include '${includes}'`);
    }
    return err;
  }
  throw new Error(`expected ${cls.name} to be thrown`);
}

/** `p` rejects with an instance of `cls` whose `code` (if given) matches; returns it. */
export async function assertRejects<E extends Error>(
  p: Promise<unknown> | (() => Promise<unknown>),
  cls: Ctor<E>,
  code?: string,
): Promise<E> {
  try {
    await (typeof p === "function" ? p() : p);
  } catch (err) {
    if (!(err instanceof cls)) throw err;
    const got = (err as unknown as { code?: string }).code;
    if (code !== undefined && got !== code) {
      throw new Error(`expected code ${code}, got ${got}: ${err.message}`);
    }
    return err;
  }
  throw new Error(`expected ${cls.name}${code ? ` (${code})` : ""}`);
}
