/**
 * A buffered JSON-lines logger for the provider's access log: one
 * `write` per batch instead of one per request (a synchronous write per
 * request halves the requests served per second). Flushed every
 * {@link LOG_FLUSH_MS}, when {@link LOG_BUFFER_BYTES} are pending, and on
 * close; warnings and errors are written at once.
 *
 * @module
 */
import type { Logger } from "../core/mod.ts";

/** Longest a log line waits before it is written, in ms. */
export const LOG_FLUSH_MS = 100;
/** Size of the batch buffer; a batch is written once half of it is used, in bytes. */
export const LOG_BUFFER_BYTES = 128 * 1024;

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
  // Lines are encoded straight into one buffer (encodeInto): no long string
  // to flatten and encode per batch.
  const buf = new Uint8Array(LOG_BUFFER_BYTES);
  let len = 0;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const flush = () => {
    clearTimeout(timer);
    timer = undefined;
    if (len === 0) return;
    const out = buf.slice(0, len);
    len = 0;
    write(out);
  };
  const put = (line: string): boolean => {
    const r = enc.encodeInto(line, buf.subarray(len));
    if (r.read < line.length) return false; // did not fit; the bytes past len are ignored
    len += r.written;
    return true;
  };
  const append = (line: string, now: boolean) => {
    if (!put(line)) {
      flush();
      if (!put(line)) write(enc.encode(line)); // a line longer than the buffer
    }
    if (now || len >= buf.length / 2) flush();
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
