/**
 * HTTP conditional and range helpers: one `Range` (RFC 9110 §14), ETags,
 * content negotiation. Pure functions.
 *
 * @module
 */

/** A satisfiable byte range, `end` inclusive. */
export interface ByteRange {
  readonly start: number;
  readonly end: number;
}

const MAX_DIGITS = 16;

/**
 * Parses a `Range` header against a representation of `size` bytes.
 * Returns the range, `"unsatisfiable"` (416), or `undefined` when the
 * header is absent, not `bytes=`, invalid or asks for several ranges
 * (served whole, as RFC 9110 allows).
 */
export function parseRange(
  header: string | null,
  size: number,
): ByteRange | "unsatisfiable" | undefined {
  if (header === null) return undefined;
  const m = /^bytes=([0-9]*)-([0-9]*)$/.exec(header.trim());
  if (!m) return undefined;
  const [, a, b] = m;
  if (a.length > MAX_DIGITS || b.length > MAX_DIGITS) return undefined;
  if (a === "" && b === "") return undefined;
  if (a === "") {
    const n = Number(b);
    if (n === 0 || size === 0) return "unsatisfiable";
    return { start: Math.max(0, size - n), end: size - 1 };
  }
  const start = Number(a);
  if (b !== "" && Number(b) < start) return undefined;
  if (start >= size) return "unsatisfiable";
  const end = b === "" ? size - 1 : Math.min(Number(b), size - 1);
  return { start, end };
}

/** True when an `If-None-Match` list matches `etag` (weak comparison). */
export function etagMatches(header: string | null, etag: string): boolean {
  if (header === null) return false;
  const want = etag.replace(/^W\//, "");
  for (const raw of header.split(",")) {
    const t = raw.trim();
    if (t === "*") return true;
    if (t.replace(/^W\//, "") === want) return true;
  }
  return false;
}

function quality(accept: string, type: string): number {
  let best = -1;
  let bestSpecificity = -1;
  const [major] = type.split("/");
  for (const part of accept.split(",")) {
    const [media, ...params] = part.trim().toLowerCase().split(";");
    let q = 1;
    for (const p of params) {
      const [k, v] = p.trim().split("=");
      if (k === "q") q = Number(v);
    }
    if (!Number.isFinite(q)) continue;
    const specificity = media === type ? 2 : media === `${major}/*` ? 1 : media === "*/*" ? 0 : -1;
    if (specificity > bestSpecificity) {
      bestSpecificity = specificity;
      best = q;
    }
  }
  return best < 0 ? 0 : best;
}

/** True when the client prefers `text/html` over `application/json`. */
export function prefersHtml(accept: string | null): boolean {
  if (!accept || !/text\/html/i.test(accept)) return false;
  const html = quality(accept, "text/html");
  return html > 0 && html > quality(accept, "application/json");
}

/** True when `accept` explicitly lists `type` with q > 0. */
export function accepts(accept: string | null, type: string): boolean {
  if (!accept) return false;
  return accept.toLowerCase().split(",").some((p) => {
    const [media, ...params] = p.trim().split(";");
    if (media !== type) return false;
    const q = params.map((x) => x.trim().split("=")).find(([k]) => k === "q");
    return !q || Number(q[1]) > 0;
  });
}
