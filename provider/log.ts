/**
 * A buffered JSON-lines logger for the provider's access log: one
 * `write` per batch instead of one per request (a synchronous write per
 * request halves the requests served per second). Flushed every
 * {@link LOG_FLUSH_MS}, when {@link LOG_BUFFER_BYTES} are pending, and on
 * close; warnings and errors are written at once.
 *
 * @module
 */
import type { Logger } from "../cli/log.ts";

/** Longest a log line waits before it is written, in ms. */
export const LOG_FLUSH_MS = 100;
/** Pending log bytes that trigger a write. */
export const LOG_BUFFER_BYTES = 64 * 1024;

/** A logger with an explicit flush. */
export interface BufferedLogger extends Logger {
  /** Appends a preformatted line (ending in a newline) to the batch. */
  raw(line: string): void;
  flush(): void;
  close(): void;
}

function writeAll(b: Uint8Array): void {
  let off = 0;
  while (off < b.length) off += Deno.stderr.writeSync(b.subarray(off));
}

/** JSON lines on `write` (default stderr), info lines batched. */
export function bufferedJsonLogger(
  component: string,
  write: (bytes: Uint8Array) => void = writeAll,
): BufferedLogger {
  const enc = new TextEncoder();
  let pending = "";
  let timer: ReturnType<typeof setTimeout> | undefined;
  const flush = () => {
    clearTimeout(timer);
    timer = undefined;
    if (!pending) return;
    const out = pending;
    pending = "";
    write(enc.encode(out));
  };
  const append = (line: string, now: boolean) => {
    pending += line;
    if (now || pending.length >= LOG_BUFFER_BYTES) flush();
    else if (!timer) {
      timer = setTimeout(flush, LOG_FLUSH_MS);
      Deno.unrefTimer(timer as unknown as number);
    }
  };
  const emit = (level: string, event: string, fields: Record<string, unknown> = {}, now = false) =>
    append(
      JSON.stringify({ ts: new Date().toISOString(), level, component, event, ...fields }) + "\n",
      now,
    );
  return {
    raw: (line) => append(line, false),
    info: (e, f) => emit("info", e, f),
    warn: (e, f) => emit("warn", e, f, true),
    error: (e, f) => emit("error", e, f, true),
    flush,
    close: flush,
  };
}
