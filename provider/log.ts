/**
 * A buffered JSON-lines logger for the provider's access log: one
 * `write` per batch instead of one per request (a synchronous write per
 * request halves the requests served per second). Warnings and errors are
 * written at once (with everything before them, in order); info lines are
 * written in batches.
 *
 * Bounded: lines wait as one string of at most {@link LOG_PENDING_CHARS}
 * characters (plus the line that crossed it), which is then encoded into
 * one {@link LOG_BUFFER_BYTES} buffer; the buffer is written once half of
 * it is used, and in any case {@link LOG_FLUSH_MS} after the first line
 * still waiting. Nothing is lost at a stop: `flush`/`close`, and the
 * runtime's `unload` event (a normal end of the program, `Deno.exit`)
 * write what is waiting.
 *
 * @module
 */
import type { Logger } from "../core/mod.ts";

/** Longest a log line waits before it is written, in ms. */
export const LOG_FLUSH_MS = 100;
/** Size of the batch buffer; a batch is written once half of it is used, in bytes. */
export const LOG_BUFFER_BYTES = 128 * 1024;
/**
 * Most characters of lines waiting as a string before they are encoded
 * into the batch buffer (one encode per this many characters, not one per
 * line), in UTF-16 code units.
 */
export const LOG_PENDING_CHARS = 16 * 1024;

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
  // Lines are joined into one string (cheap: V8 concatenates lazily) and
  // encoded into one buffer per LOG_PENDING_CHARS (encodeInto): no encode
  // call and no buffer view per line, no long string per batch.
  const buf = new Uint8Array(LOG_BUFFER_BYTES);
  let len = 0;
  let pending = "";
  let timer: ReturnType<typeof setTimeout> | undefined;
  const writeBuf = () => {
    if (len === 0) return;
    const out = buf.slice(0, len);
    len = 0;
    write(out);
  };
  // Moves the pending string into the buffer, writing the buffer each time
  // it fills (encodeInto never splits a character: `read` is a boundary).
  const encodePending = () => {
    while (pending.length > 0) {
      const r = enc.encodeInto(pending, buf.subarray(len));
      len += r.written;
      pending = r.read === pending.length ? "" : pending.slice(r.read);
      if (pending.length > 0) writeBuf();
    }
  };
  const flush = () => {
    clearTimeout(timer);
    timer = undefined;
    encodePending();
    writeBuf();
  };
  const append = (line: string, now: boolean) => {
    pending += line;
    if (now) return flush();
    if (pending.length >= LOG_PENDING_CHARS) {
      encodePending();
      if (len >= buf.length / 2) writeBuf();
    }
    if (!timer && (pending.length > 0 || len > 0)) {
      timer = setTimeout(flush, LOG_FLUSH_MS);
      Deno.unrefTimer(timer as unknown as number);
    }
  };
  // The end of the program writes what waits (the timer is unref'd, so it
  // would not keep the process alive to do it).
  const onUnload = () => flush();
  globalThis.addEventListener("unload", onUnload);
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
    close: () => {
      globalThis.removeEventListener("unload", onUnload);
      flush();
    },
  };
}
