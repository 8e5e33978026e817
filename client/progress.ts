/**
 * Progress of long transfers (house style 11): a single updating line per
 * artifact on a TTY (bytes, rate, ETA), JSON lines otherwise, throttled.
 *
 * @module
 */

/** Least time between two progress reports of one artifact, in milliseconds. */
export const PROGRESS_INTERVAL_MS = 1_000;

/** A progress sink: told when each artifact starts, advances and is done. */
export interface Progress {
  /** An artifact of `size` bytes starts (or is looked up in the cache). */
  start(name: string, size: number): void;
  /** `done` bytes of the artifact are written and hashed so far. */
  update(name: string, done: number): void;
  /** The artifact is in the cache and verified; `sources` are the origins it came from. */
  finish(name: string, info: { cached: boolean; sources: readonly string[] }): void;
}

/** Where and how {@link progressReporter} reports. */
export interface ProgressReporterOptions {
  /**
   * One updating line per artifact (true) or JSON lines (false); default:
   * whether stderr is a terminal.
   */
  tty?: boolean;
  /** Where the text goes; default: stderr. */
  write?: (s: string) => void;
  /** Monotonic clock in milliseconds; default `performance.now`. */
  now?: () => number;
}

function human(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${n.toFixed(i === 0 ? 0 : 1)} ${units[i]}`;
}

/**
 * A progress reporter writing to `write` (stderr by default): bytes, rate
 * and ETA, at most once a second per artifact.
 */
export function progressReporter(opts: ProgressReporterOptions = {}): Progress {
  const enc = new TextEncoder();
  const write = opts.write ?? ((s: string) => Deno.stderr.writeSync(enc.encode(s)));
  const tty = opts.tty ?? Deno.stderr.isTerminal();
  const now = opts.now ?? (() => performance.now());
  const state = new Map<string, { size: number; t0: number; last: number; done: number }>();
  const line = (name: string, final: boolean) => {
    const s = state.get(name)!;
    const secs = Math.max((now() - s.t0) / 1000, 1e-3);
    const rate = s.done / secs;
    const eta = rate > 0 ? (s.size - s.done) / rate : Infinity;
    if (tty) {
      const pct = s.size > 0 ? Math.floor((s.done / s.size) * 100) : 100;
      write(
        `\r\x1b[K${name}: ${human(s.done)} / ${human(s.size)} (${pct}%) ${human(rate)}/s ETA ${
          Number.isFinite(eta) ? `${Math.ceil(eta)} s` : "?"
        }${final ? "\n" : ""}`,
      );
    } else {
      write(
        JSON.stringify({
          ts: new Date().toISOString(),
          level: "info",
          component: "fetch",
          event: "progress",
          artifact: name,
          bytes: s.done,
          size: s.size,
          rate_bps: Math.round(rate),
          eta_s: Number.isFinite(eta) ? Math.ceil(eta) : null,
        }) + "\n",
      );
    }
  };
  return {
    start(name, size) {
      state.set(name, { size, t0: now(), last: 0, done: 0 });
    },
    update(name, done) {
      const s = state.get(name);
      if (!s) return;
      s.done = done;
      const t = now();
      if (t - s.last >= PROGRESS_INTERVAL_MS) {
        s.last = t;
        line(name, false);
      }
    },
    finish(name) {
      const s = state.get(name);
      if (!s) return;
      s.done = s.size;
      line(name, true);
    },
  };
}

/** A progress sink that reports nothing. */
export const silentProgress: Progress = { start() {}, update() {}, finish() {} };
