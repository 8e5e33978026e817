/**
 * Reading a child process's output until it says something (a banner, a
 * listening address, a log event), with a real deadline.
 *
 * @module
 */

/** What {@link readUntil} saw. */
export interface ReadUntil<T> {
  /** What `match` found; `undefined` when the stream ended or the time ran out first. */
  readonly found: T | undefined;
  /** All the text read. */
  readonly seen: string;
}

/** What {@link readUntil} does with the stream once it returns. */
export interface ReadUntilOptions {
  /**
   * `"drain"` (default): keep reading it in the background, so that the
   * writer never blocks on a full pipe. `"release"`: unlock it, for the
   * caller to read on.
   */
  readonly then?: "drain" | "release";
}

/**
 * Reads `stream` as text until `match(seen)` returns something other than
 * `undefined`, the stream ends, or `timeoutMs` passes; a read still pending
 * at the deadline is abandoned, never awaited (a silent child cannot hold a
 * test past it).
 *
 * @example
 * ```ts ignore
 * const { found } = await readUntil(child.stdout, (s) => /listening (\S+)/.exec(s)?.[1], 30_000);
 * ```
 */
export async function readUntil<T>(
  stream: ReadableStream<Uint8Array>,
  match: (seen: string) => T | undefined,
  timeoutMs: number,
  opts: ReadUntilOptions = {},
): Promise<ReadUntil<T>> {
  const reader = stream.getReader();
  const dec = new TextDecoder();
  let seen = "";
  let found: T | undefined;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const expired = new Promise<"expired">((ok) => {
    timer = setTimeout(() => ok("expired"), timeoutMs);
  });
  try {
    while (found === undefined) {
      const r = await Promise.race([reader.read(), expired]);
      if (r === "expired" || r.done) break;
      seen += dec.decode(r.value, { stream: true });
      found = match(seen);
    }
  } finally {
    clearTimeout(timer);
  }
  if (opts.then === "release") {
    reader.releaseLock();
  } else {
    (async () => {
      try {
        while (!(await reader.read()).done) { /* drain */ }
      } catch { /* cancelled or closed */ }
    })();
  }
  return { found, seen };
}
