/**
 * Progress of long transfers (house style 11). On a TTY: one drawn bar for
 * the whole release (bytes done / total across every artifact, rate, ETA),
 * redrawn in place. Otherwise: structured JSON lines, throttled.
 *
 * Rate and ETA count only the bytes transferred in this run: a prefix
 * resumed from an earlier run, or an artifact already in the cache, is
 * done but was not transferred, so counting it would promise a speed the
 * network does not have (issue 11: "133.6 MiB/s, ETA 2 s" at a real
 * 17.6 MiB/s after a resume).
 *
 * @module
 */

/** Least time between two JSON progress lines (not a TTY), in milliseconds. */
export const PROGRESS_INTERVAL_MS = 1_000;
/** Least time between two redraws of the bar on a TTY, in milliseconds. */
export const TTY_REDRAW_INTERVAL_MS = 200;
/** Terminal width assumed when the console cannot say, in columns. */
export const DEFAULT_COLUMNS = 80;
/** Widest bar drawn, in characters (a wider one says nothing more). */
export const MAX_BAR_CHARS = 40;
/** Narrowest bar worth drawing, in characters; below it only the text is shown. */
export const MIN_BAR_CHARS = 10;

/** One artifact of a release, as {@link Progress.plan} announces it. */
export interface PlannedArtifact {
  /** Its name in the manifest (`kernel`, `rootfs`, ...). */
  readonly name: string;
  /** Its size in bytes. */
  readonly size: number;
  /** Its digest (`sha256:<hex>`): names its partial file in the cache. */
  readonly digest?: string;
}

/** A progress sink: told when each artifact starts, advances and is done. */
export interface Progress {
  /** Every artifact of the release, before the first starts: the total the bar counts toward. */
  plan?(artifacts: readonly PlannedArtifact[]): void;
  /** An artifact of `size` bytes starts (or is looked up in the cache). */
  start(name: string, size: number): void;
  /**
   * `bytes` of the artifact were on disk before this run: a resumed prefix,
   * or the whole artifact on a cache hit. Done, but not transferred: rate
   * and ETA leave them out.
   */
  present?(name: string, bytes: number): void;
  /** `done` bytes of the artifact are written and hashed so far. */
  update(name: string, done: number): void;
  /** The artifact is in the cache and verified; `sources` are the origins it came from. */
  finish(name: string, info: { cached: boolean; sources: readonly string[] }): void;
}

/** What {@link progressReporter} returns: a {@link Progress} that can also end its line and say where it is. */
export interface ProgressReporter extends Progress {
  /** Ends a bar left open (before an error or interrupt message is printed below it). */
  close(): void;
  /** Prints something else (a log line) through `print`: the bar steps aside and is drawn again below it. */
  aside(print: () => void): void;
  /** Where each artifact stands now, in the order announced. */
  snapshot(): ProgressSnapshot;
}

/** Where a transfer stands, for a message (Ctrl-C: what was kept). */
export interface ProgressSnapshot {
  /** One entry per artifact announced or started. */
  readonly artifacts: readonly {
    readonly name: string;
    readonly size: number;
    readonly digest?: string;
    readonly done: number;
    readonly finished: boolean;
  }[];
  /** Bytes done across every artifact. */
  readonly done: number;
  /** Bytes of the whole release. */
  readonly total: number;
  /** Bytes transferred in this run (no resumed prefix, no cache hit). */
  readonly transferred: number;
}

/** Where and how {@link progressReporter} reports. */
export interface ProgressReporterOptions {
  /** A drawn bar (true) or JSON lines (false); default: whether stderr is a terminal. */
  tty?: boolean;
  /** Where the text goes; default: stderr. */
  write?: (s: string) => void;
  /** Monotonic clock in milliseconds; default `performance.now`. */
  now?: () => number;
  /** Width of the terminal in columns; default: the console's, else {@link DEFAULT_COLUMNS}. */
  columns?: () => number;
}

/** Bytes in binary units: `17.6 MiB`. */
export function humanBytes(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${n.toFixed(i === 0 ? 0 : 1)} ${units[i]}`;
}

/** A duration for an ETA: `42 s`, `3 min 05 s`, `1 h 02 min`. */
export function humanSeconds(s: number): string {
  const t = Math.ceil(s);
  if (t < 60) return `${t} s`;
  if (t < 3600) return `${Math.floor(t / 60)} min ${String(t % 60).padStart(2, "0")} s`;
  return `${Math.floor(t / 3600)} h ${String(Math.floor((t % 3600) / 60)).padStart(2, "0")} min`;
}

function consoleColumns(): number {
  try {
    return Deno.consoleSize().columns || DEFAULT_COLUMNS;
  } catch {
    return DEFAULT_COLUMNS;
  }
}

interface ArtifactState {
  name: string;
  size: number;
  digest?: string;
  done: number;
  finished: boolean;
}

/**
 * A progress reporter writing to `write` (stderr by default): on a TTY a
 * bar across all artifacts with rate and ETA, redrawn at most every
 * {@link TTY_REDRAW_INTERVAL_MS}; otherwise a JSON line at most every
 * {@link PROGRESS_INTERVAL_MS} and one as each artifact finishes.
 */
export function progressReporter(opts: ProgressReporterOptions = {}): ProgressReporter {
  const enc = new TextEncoder();
  const write = opts.write ?? ((s: string) => Deno.stderr.writeSync(enc.encode(s)));
  const tty = opts.tty ?? Deno.stderr.isTerminal();
  const now = opts.now ?? (() => performance.now());
  const columns = opts.columns ?? consoleColumns;
  const arts = new Map<string, ArtifactState>();
  let planned = false;
  let transferred = 0;
  // Time spent transferring: each artifact's time from its start (or from
  // the end of its resumed prefix's re-hash) to its finish; cache hits
  // take none.
  let activeMs = 0;
  let current: { name: string; t: number; counted: boolean } | undefined;
  let last = -Infinity;
  let open = false;
  let lastLine = "";

  const elapsedMs = () => activeMs + (current?.counted ? now() - current.t : 0);
  const totals = () => {
    let done = 0;
    let total = 0;
    for (const a of arts.values()) {
      done += a.done;
      total += a.size;
    }
    return { done, total };
  };
  const rateOf = () => {
    const ms = elapsedMs();
    return ms > 0 ? transferred / (ms / 1000) : 0;
  };

  const bar = (name: string, final: boolean) => {
    const { done, total } = totals();
    const rate = rateOf();
    const left = total - done;
    const pct = total > 0 ? Math.floor((done / total) * 100) : 100;
    const eta = final && left <= 0
      ? `done in ${humanSeconds(elapsedMs() / 1000)}`
      : rate > 0
      ? `ETA ${humanSeconds(left / rate)}`
      : "ETA ?";
    const list = [...arts.values()];
    const idx = list.findIndex((a) => a.name === name) + 1;
    // Fixed-width numbers: the bar does not jump as the digits change.
    const text = `${String(pct).padStart(3)}%  ${humanBytes(done).padStart(9)} / ${
      humanBytes(total)
    }  ${humanBytes(rate).padStart(9)}/s  ${eta}  ${name} (${idx}/${list.length})`;
    const width = Math.max(columns(), 1);
    const room = width - 1 - text.length - 3; // "[", "] ", and the cursor's last column
    let line: string;
    if (room >= MIN_BAR_CHARS) {
      const n = Math.min(room, MAX_BAR_CHARS);
      const filled = total > 0 ? Math.min(n, Math.floor((done / total) * n)) : n;
      line = `[${"#".repeat(filled)}${"-".repeat(n - filled)}] ${text}`;
    } else {
      line = text.slice(0, width - 1);
    }
    write(`\r\x1b[K${line}${final ? "\n" : ""}`);
    open = !final;
    lastLine = line;
  };

  const json = (name: string) => {
    const a = arts.get(name)!;
    const { done, total } = totals();
    const rate = rateOf();
    const eta = rate > 0 ? (total - done) / rate : Infinity;
    write(
      JSON.stringify({
        ts: new Date().toISOString(),
        level: "info",
        component: "fetch",
        event: "progress",
        artifact: name,
        bytes: a.done,
        size: a.size,
        total_bytes: done,
        total_size: total,
        transferred_bytes: transferred,
        rate_bps: Math.round(rate),
        eta_s: Number.isFinite(eta) ? Math.ceil(eta) : null,
      }) + "\n",
    );
  };

  const report = (name: string, final: boolean) => {
    if (!tty) return json(name);
    // Planned: one bar for the release, ended when the last artifact is.
    const all = !planned || [...arts.values()].every((a) => a.finished);
    bar(name, final && all);
  };

  return {
    plan(artifacts) {
      planned = true;
      for (const a of artifacts) {
        if (!arts.has(a.name)) {
          arts.set(a.name, {
            name: a.name,
            size: a.size,
            digest: a.digest,
            done: 0,
            finished: false,
          });
        }
      }
    },
    start(name, size) {
      const a = arts.get(name);
      if (a) a.size = size;
      else arts.set(name, { name, size, done: 0, finished: false });
      current = { name, t: now(), counted: true };
      if (last === -Infinity) last = now();
    },
    present(name, bytes) {
      const a = arts.get(name);
      if (!a) return;
      a.done = bytes;
      if (current?.name === name) {
        if (bytes >= a.size) current.counted = false; // a cache hit: no transfer
        else current.t = now(); // the transfer starts after the prefix's re-hash
      }
    },
    update(name, done) {
      const a = arts.get(name);
      if (!a) return;
      // Only growth is transfer; a restart from 0 (digest mismatch) drops the prefix.
      if (done > a.done) transferred += done - a.done;
      a.done = done;
      const t = now();
      if (t - last >= (tty ? TTY_REDRAW_INTERVAL_MS : PROGRESS_INTERVAL_MS)) {
        last = t;
        report(name, false);
      }
    },
    finish(name) {
      const a = arts.get(name);
      if (!a) return;
      if (a.done < a.size && !(current?.name === name && !current.counted)) {
        transferred += a.size - a.done;
      }
      a.done = a.size;
      a.finished = true;
      if (current?.name === name) {
        if (current.counted) activeMs += now() - current.t;
        current = undefined;
      }
      report(name, true);
    },
    close() {
      if (open) write("\n");
      open = false;
    },
    aside(print) {
      if (!open) return print();
      write("\r\x1b[K");
      print();
      write(`\r\x1b[K${lastLine}`);
    },
    snapshot() {
      const { done, total } = totals();
      return {
        artifacts: [...arts.values()].map((a) => ({ ...a })),
        done,
        total,
        transferred,
      };
    },
  };
}

/** A progress sink that reports nothing. */
export const silentProgress: Progress = { start() {}, update() {}, finish() {} };
