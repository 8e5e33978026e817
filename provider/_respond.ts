/**
 * Responses of the provider: plain text and JSON answers, and documents
 * held in memory (manifests, records) answered by cloning a prepared
 * Response. Private to provider/.
 *
 * @module
 */
import { etagMatches } from "./range.ts";
import type { Metrics } from "./http.ts";

// Every response: never sniff a type. `referrer-policy` goes only on the
// HTML page (the one document with links); each header on every manifest
// response costs requests/s (bench/README.md, serve).
const BASE_HEADERS: Record<string, string> = {
  "x-content-type-options": "nosniff",
};

/** Headers of a response: the base ones and `extra`. */
export function headers(extra: Record<string, string>): Headers {
  return new Headers({ ...BASE_HEADERS, ...extra });
}

/** A short plain-text answer. */
export function text(status: number, body: string, extra: Record<string, string> = {}): Response {
  return sized(status, body + "\n", {
    "content-type": "text/plain; charset=utf-8",
    "cache-control": "no-store",
    ...extra,
  });
}

const ENCODER = new TextEncoder();

/**
 * A response from a string with its `content-length` set, so the access log
 * reports the bytes sent (it read 0 for every body Deno sized itself).
 */
export function sized(status: number, body: string, extra: Record<string, string>): Response {
  const bytes = ENCODER.encode(body);
  return new Response(bytes, {
    status,
    headers: headers({ ...extra, "content-length": String(bytes.length) }),
  });
}

/** A JSON answer (not cached). */
export function json(status: number, value: unknown, extra: Record<string, string> = {}): Response {
  return sized(status, JSON.stringify(value, null, 2) + "\n", {
    "content-type": "application/json",
    "cache-control": "no-store",
    ...extra,
  });
}

/** What a route tells the access log about its answer without a header read. */
export interface BodyNote {
  /** Body length when the route knows it, else -1. */
  length: number;
  /** The request method (GET or HEAD by the time a route runs). */
  readonly method: string;
}

/** One document version's prepared answers. */
interface Prepared {
  /** The quoted ETag, `"sha256:<digest>"`, built once per version. */
  readonly etag: string;
  readonly get: Response;
  readonly head: Response;
}

/**
 * Documents from memory. Building headers per request costs more than
 * the rest of the request, so each (bytes, type) gets its ETag and a
 * prepared GET and HEAD Response once (a new manifest version is a new
 * `bytes`, so it gets its own; the old one goes with its bytes), and each
 * request gets a clone of it.
 */
export class MemoryDocuments {
  readonly #templates = new WeakMap<Uint8Array, Map<string, Prepared>>();
  readonly #metrics: Metrics;

  constructor(metrics: Metrics) {
    this.#metrics = metrics;
  }

  /** Answers `bytes` (ETag `sha256:<digest>`); notes the body length in `note`. */
  serve(req: Request, note: BodyNote, bytes: Uint8Array, digest: string, type: string): Response {
    let byType = this.#templates.get(bytes);
    if (!byType) this.#templates.set(bytes, byType = new Map());
    let t = byType.get(type);
    if (!t) {
      const etag = `"sha256:${digest}"`;
      const full = headers({
        etag,
        "cache-control": "no-cache",
        "content-type": type,
        "content-length": String(bytes.length),
      });
      t = {
        etag,
        get: new Response(bytes.slice() as Uint8Array<ArrayBuffer>, { status: 200, headers: full }),
        head: new Response(null, { status: 200, headers: full }),
      };
      byType.set(type, t);
    }
    const inm = req.headers.get("if-none-match");
    if (inm !== null && etagMatches(inm, t.etag)) {
      this.#metrics.notModified++;
      return new Response(null, {
        status: 304,
        headers: headers({ etag: t.etag, "cache-control": "no-cache", "content-type": type }),
      });
    }
    if (note.method === "HEAD") return t.head.clone();
    this.#metrics.bytes += bytes.length;
    note.length = bytes.length;
    return t.get.clone();
  }
}
