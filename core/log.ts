/**
 * Structured logging: JSON lines on stderr when not a TTY, short readable
 * lines on a TTY. Injected wherever a component logs (house style 8).
 *
 * @module
 */

/** A log sink. */
export interface Logger {
  /** A normal event: `event` is a short snake_case name, `fields` its data. */
  info(event: string, fields?: Record<string, unknown>): void;
  /** Something the operator should look at; work goes on. */
  warn(event: string, fields?: Record<string, unknown>): void;
  /** A failure. */
  error(event: string, fields?: Record<string, unknown>): void;
}

/** A logger that writes JSON lines (or readable lines on a TTY). */
export function consoleLogger(
  component: string,
  opts: { json?: boolean; write?: (line: string) => void } = {},
): Logger {
  const write = opts.write ??
    ((line: string) => Deno.stderr.writeSync(new TextEncoder().encode(line)));
  const json = opts.json ?? !Deno.stderr.isTerminal();
  const emit = (level: string, event: string, fields = {}) => {
    if (json) {
      write(
        JSON.stringify({
          ts: new Date().toISOString(),
          level,
          component,
          event,
          ...fields,
        }) + "\n",
      );
    } else {
      const rest = Object.entries(fields).map(([k, v]) =>
        `${k}=${typeof v === "string" ? v : JSON.stringify(v)}`
      ).join(" ");
      write(`phase-${component}: ${level}: ${event}${rest ? " " + rest : ""}\n`);
    }
  };
  return {
    info: (e, f) => emit("info", e, f),
    warn: (e, f) => emit("warn", e, f),
    error: (e, f) => emit("error", e, f),
  };
}

/** A logger that records entries in memory, for tests. */
export function memoryLogger(): Logger & {
  entries: { level: string; event: string; fields: Record<string, unknown> }[];
} {
  const entries: {
    level: string;
    event: string;
    fields: Record<string, unknown>;
  }[] = [];
  return {
    entries,
    info: (event, fields = {}) => entries.push({ level: "info", event, fields }),
    warn: (event, fields = {}) => entries.push({ level: "warn", event, fields }),
    error: (event, fields = {}) => entries.push({ level: "error", event, fields }),
  };
}
