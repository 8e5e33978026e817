/**
 * Small assertions for tests (JSR's @std/assert is unreachable here).
 *
 * @module
 */
import { deepStrictEqual, ok } from "node:assert/strict";

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

/** Awaits `p` and returns what it threw; fails if it resolved. */
export async function assertRejects(
  p: Promise<unknown> | (() => Promise<unknown>),
  message?: string,
): Promise<unknown> {
  try {
    await (typeof p === "function" ? p() : p);
  } catch (err) {
    return err;
  }
  throw new Error(message ?? "expected a rejection");
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
