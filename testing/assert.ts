/**
 * The assertions every test uses (JSR's @std/assert is unreachable here).
 * One module, one meaning per argument: `assertThrows` / `assertRejects`
 * take `(fn, ErrorClass?, msgIncludes?)` like @std/assert; an error's
 * literal `code` is checked with `assertRejectsCode`.
 *
 * @module
 */
import { AssertionError, deepStrictEqual, ok } from "node:assert/strict";

/** Any error constructor (`PhaseError`, `TypeError`, `Deno.errors.NotFound`, ...). */
// deno-lint-ignore no-explicit-any
export type ErrorClass<E extends Error = Error> = new (...args: any[]) => E;

/** Fails unless `cond` is truthy. */
export function assert(cond: unknown, message?: string): asserts cond {
  if (message === undefined) ok(cond);
  else ok(cond, message);
}

/** Deep strict equality. */
export function assertEquals<T>(actual: T, expected: T, message?: string): void {
  if (message === undefined) deepStrictEqual(actual, expected);
  else deepStrictEqual(actual, expected, message);
}

/** Fails unless `text` matches `re`. */
export function assertMatch(text: string, re: RegExp, message?: string): void {
  ok(re.test(text), message ?? `${JSON.stringify(text.slice(0, 500))} does not match ${re}`);
}

/** Checks a thrown value against the class and message fragment; returns it typed. */
function expectError<E extends Error>(err: unknown, cls?: ErrorClass<E>, msgIncludes?: string): E {
  if (cls !== undefined && !(err instanceof cls)) {
    throw new AssertionError({
      message: `expected ${cls.name}, got ${err instanceof Error ? err.name : typeof err}: ${
        err instanceof Error ? err.message : String(err)
      }`,
    });
  }
  if (msgIncludes !== undefined) {
    const text = err instanceof Error ? err.message : String(err);
    if (!text.includes(msgIncludes)) {
      throw new AssertionError({
        message: `expected a message including ${JSON.stringify(msgIncludes)}, got ${
          JSON.stringify(text)
        }`,
      });
    }
  }
  return err as E;
}

/**
 * `fn()` throws (an instance of `cls`, whose message includes `msgIncludes`,
 * when given); returns what it threw.
 */
export function assertThrows<E extends Error = Error>(
  fn: () => unknown,
  cls?: ErrorClass<E>,
  msgIncludes?: string,
): E {
  try {
    fn();
  } catch (err) {
    return expectError(err, cls, msgIncludes);
  }
  throw new AssertionError({ message: `expected ${cls?.name ?? "an error"} to be thrown` });
}

/**
 * `p` (a promise, or a function returning one) rejects (with an instance of
 * `cls`, whose message includes `msgIncludes`, when given); returns the error.
 */
export async function assertRejects<E extends Error = Error>(
  p: Promise<unknown> | (() => Promise<unknown>),
  cls?: ErrorClass<E>,
  msgIncludes?: string,
): Promise<E> {
  try {
    await (typeof p === "function" ? p() : p);
  } catch (err) {
    return expectError(err, cls, msgIncludes);
  }
  throw new AssertionError({ message: `expected a rejection${cls ? ` with ${cls.name}` : ""}` });
}

/** `p` rejects with an instance of `cls` whose literal `code` is `code`; returns the error. */
export async function assertRejectsCode<E extends Error>(
  p: Promise<unknown> | (() => Promise<unknown>),
  cls: ErrorClass<E>,
  code: string,
): Promise<E> {
  const err = await assertRejects(p, cls);
  const got = (err as { code?: unknown }).code;
  if (got !== code) {
    throw new AssertionError({ message: `expected code ${code}, got ${got}: ${err.message}` });
  }
  return err;
}

/** Polls `cond` every 20 ms until true or `timeoutMs` passes. */
export async function waitFor(
  cond: () => boolean | Promise<boolean>,
  timeoutMs: number,
  what = "condition",
): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (await cond()) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}
