/**
 * A bounded graceful stop (TM-18): stop accepting, let in-flight
 * responses finish within the grace, then cut the streams left. Private
 * to provider/.
 *
 * @module
 */
import type { Logger } from "../core/mod.ts";
import type { HttpListener } from "./listen.ts";

/** How long a stop waits for in-flight responses before cutting them, in ms. */
export const SHUTDOWN_GRACE_MS = 10_000;
/** How long a stop waits after cutting the streams left, in ms. */
export const SHUTDOWN_CUT_WAIT_MS = 1_000;

/** Stops `server`; `streams` are the kill switches of open checked streams. */
export async function drainServer(opts: {
  readonly server: HttpListener;
  readonly streams: Set<() => void>;
  readonly graceMs: number;
  readonly logger: Logger;
  readonly inflight: () => number;
}): Promise<void> {
  const { server, streams } = opts;
  server.shutdown();
  const finished = server.finished();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timedOut = await Promise.race([
    finished.then(() => false),
    new Promise<boolean>((r) => timer = setTimeout(() => r(true), opts.graceMs)),
  ]);
  clearTimeout(timer);
  if (timedOut) {
    opts.logger.warn("shutdown_grace_expired", {
      grace_ms: opts.graceMs,
      inflight: opts.inflight(),
    });
    for (const kill of [...streams]) kill();
    let cut: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([finished, new Promise((r) => cut = setTimeout(r, SHUTDOWN_CUT_WAIT_MS))]);
    clearTimeout(cut);
  }
  // Deadline timers of completed checked streams; cut anything left.
  for (const kill of [...streams]) kill();
}
