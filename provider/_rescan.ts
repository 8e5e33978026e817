/**
 * Keeping the catalog current: serialised rescans (a request during one
 * runs another after it), a debounce for bursts of changes, a periodic
 * rescan, and a watch on the root. Private to provider/.
 *
 * @module
 */
import type { Logger } from "../core/mod.ts";
import type { Catalog, CatalogLoader } from "./catalog.ts";

/** Debounce between a change on disk and the rescan, in ms. */
export const WATCH_DEBOUNCE_MS = 200;
/** Periodic rescan (new root, re-signing before expiry), in ms. */
export const RESCAN_INTERVAL_MS = 60_000;
/**
 * While the root does not exist (a fresh clone has no ./artifacts), how
 * often it is looked for, in ms: a watch needs an existing directory, and
 * waiting for the periodic rescan made a new release take up to a minute.
 */
export const ROOT_POLL_INTERVAL_MS = 1_000;

/** Something told about every new catalog (an advertiser). */
export interface CatalogListener {
  readonly kind: string;
  update(catalog: Catalog): Promise<void>;
}

/** The rescanning machinery of a running provider. */
export interface Rescanner {
  /** Rescans now and waits for it (joins a running rescan, then runs again). */
  rescan(): Promise<Catalog>;
  /** Rescans after {@link WATCH_DEBOUNCE_MS} unless another change comes first. */
  schedule(): void;
  /** Stops the timer, the debounce and the watch; waits for a running rescan. */
  stop(): Promise<void>;
}

/** Starts periodic rescans of `root` (and a watch unless `watch` is false). */
export function startRescanner(opts: {
  readonly loader: Pick<CatalogLoader, "current" | "load">;
  readonly root: string;
  readonly watch: boolean;
  readonly logger: Logger;
  readonly listeners: readonly CatalogListener[];
}): Rescanner {
  const { loader, logger } = opts;
  let stopped = false;
  let running: Promise<Catalog> | undefined;
  let again = false;
  let debounce: ReturnType<typeof setTimeout> | undefined;

  const rescan = (): Promise<Catalog> => {
    if (running) {
      again = true;
      return running;
    }
    running = (async () => {
      let c = loader.current;
      do {
        again = false;
        try {
          c = await loader.load();
        } catch (err) {
          logger.error("rescan_failed", { error: (err as Error).message });
        }
      } while (again && !stopped);
      for (const a of opts.listeners) {
        await a.update(c).catch((err) =>
          logger.warn("advert_update_failed", { kind: a.kind, error: String(err) })
        );
      }
      return c;
    })().finally(() => {
      running = undefined;
    });
    return running;
  };
  const schedule = () => {
    if (stopped) return;
    clearTimeout(debounce);
    debounce = setTimeout(() => void rescan(), WATCH_DEBOUNCE_MS);
  };
  const interval = setInterval(() => void rescan(), RESCAN_INTERVAL_MS);

  let watcher: Deno.FsWatcher | undefined;
  let poll: ReturnType<typeof setInterval> | undefined;
  const watch = () => {
    try {
      watcher = Deno.watchFs(opts.root, { recursive: true });
      const w = watcher;
      (async () => {
        try {
          for await (const _ of w) schedule();
        } catch { /* closed */ }
      })();
    } catch (err) {
      logger.warn("watch_unavailable", {
        root: opts.root,
        error: (err as Error).message,
        fallback_ms: RESCAN_INTERVAL_MS,
      });
    }
  };
  const rootExists = () => {
    try {
      return Deno.statSync(opts.root).isDirectory;
    } catch {
      return false;
    }
  };
  if (opts.watch) {
    if (rootExists()) watch();
    else {
      // Issue 11 §3: no directory to watch yet; look for it every second,
      // then watch it and scan at once.
      logger.info("root_missing", { root: opts.root, poll_ms: ROOT_POLL_INTERVAL_MS });
      poll = setInterval(() => {
        if (stopped || !rootExists()) return;
        clearInterval(poll);
        poll = undefined;
        watch();
        logger.info("root_appeared", { root: opts.root });
        void rescan();
      }, ROOT_POLL_INTERVAL_MS);
    }
  }
  return {
    rescan,
    schedule,
    async stop() {
      stopped = true;
      clearTimeout(debounce);
      clearInterval(interval);
      clearInterval(poll);
      watcher?.close();
      if (running) await running.catch(() => {});
    },
  };
}
