/**
 * Release versions: one to eight dot-separated runs of decimal digits,
 * compared segment by segment as integers (formats.md §1).
 *
 * @module
 */

const VERSION_RE = /^[0-9]+(\.[0-9]+){0,7}$/;

/** True for a valid version string. */
export function isVersion(v: string): boolean {
  return VERSION_RE.test(v);
}

/** Compares two valid versions: negative, zero or positive. */
export function compareVersions(a: string, b: string): number {
  const pa = a.split(".").map(BigInt);
  const pb = b.split(".").map(BigInt);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const x = pa[i] ?? 0n;
    const y = pb[i] ?? 0n;
    if (x !== y) return x < y ? -1 : 1;
  }
  return 0;
}
