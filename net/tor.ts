/**
 * Starts a private `tor` client for a private-mode boot and waits until it
 * has bootstrapped: its data directory lives under the private (tmpfs)
 * root, it listens for SOCKS on a loopback port it picks itself, and it
 * dies with the process that started it. The fetch steps then reach the
 * provider only through that port (client/socks.ts), so neither the
 * provider nor the local network learns where the machine is, and the
 * provider's name is resolved by Tor, not by local DNS (TM-13).
 *
 * Extra configuration (bridges, pluggable transports, or the test suite's
 * own private Tor network) comes from an optional torrc fragment; options
 * that would move Tor's state out of RAM or open a control port are
 * refused.
 *
 * @module
 */
import { NetError } from "./errors.ts";
import type { SocksProxy } from "./socks.ts";

/** Longest wait for Tor to report "Bootstrapped 100%", in ms. */
export const TOR_BOOTSTRAP_TIMEOUT_MS = 180_000;
/** Longest wait for Tor to exit after SIGTERM before SIGKILL, in ms. */
export const TOR_STOP_TIMEOUT_MS = 5_000;
/** Largest torrc fragment accepted, in bytes. */
export const MAX_TORRC_BYTES = 64 * 1024;
/** Longest Tor log line kept, in characters (longer lines are cut). */
const MAX_TOR_LINE_CHARS = 2048;
/** Log lines kept for an error message. */
const TOR_TAIL_LINES = 8;
/** Where a seed looks for the tor binary, in order. */
export const DEFAULT_TOR_PATHS: readonly string[] = ["/usr/sbin/tor", "/usr/bin/tor"];

/**
 * torrc options a fragment may not set: they are Phase's to choose (state
 * in RAM under the private root, one loopback SOCKS port, logs to the
 * console) or would open a way in (control port, listeners). TM-13.
 */
const RESERVED_OPTIONS: ReadonlySet<string> = new Set([
  "datadirectory",
  "cachedirectory",
  "keydirectory",
  "controlsocket",
  "hashedcontrolpassword",
  "cookieauthentication",
  "log",
  "runasdaemon",
  "pidfile",
  "user",
  "__owningcontrollerprocess",
  "%include",
]);

/**
 * Checks a torrc fragment and returns its lines, or throws E_TOR naming the
 * first reserved option.
 */
export function checkTorrcFragment(text: string): string[] {
  if (new TextEncoder().encode(text).length > MAX_TORRC_BYTES) {
    throw new NetError("E_TOR", `torrc fragment above ${MAX_TORRC_BYTES} bytes`);
  }
  const out: string[] = [];
  for (const [i, raw] of text.split("\n").entries()) {
    const line = raw.trim();
    if (!line || line.startsWith("#")) continue;
    const key = line.split(/\s+/, 1)[0].replace(/^[+\/]/, "").toLowerCase();
    // Every `*Port` option opens a listener (SocksPort, ControlPort, ORPort, ...).
    if (RESERVED_OPTIONS.has(key) || key.endsWith("port")) {
      throw new NetError(
        "E_TOR",
        `torrc fragment line ${i + 1}: '${key}' is set by Phase and may not be overridden`,
        { hint: "keep only options such as UseBridges, Bridge, ClientTransportPlugin" },
      );
    }
    out.push(line);
  }
  return out;
}

/** Options of `startTor`. */
export interface TorOptions {
  /** Candidate paths of the tor binary, tried in order. */
  readonly torPaths?: readonly string[];
  /** Tor's state directory (created 0700); under the private tmpfs root. */
  readonly dataDir: string;
  /** Lines added to the generated torrc (already checked). */
  readonly extraTorrc?: readonly string[];
  /** Longest wait for Tor to bootstrap, in milliseconds (default 180 000). */
  readonly bootstrapTimeoutMs?: number;
  /** Progress lines for the console. */
  readonly say?: (line: string) => void;
}

/** A running, bootstrapped Tor client. */
export interface TorHandle {
  /** Tor's SOCKS listener on loopback: pass it to `socksFetch`. */
  readonly socks: SocksProxy;
  /** Process id of tor. */
  readonly pid: number;
  /** The tor binary that runs. */
  readonly torPath: string;
  /** Stops tor: SIGTERM, then SIGKILL after 5 s. */
  stop(): Promise<void>;
}

/** Thrown by `startTor` when no candidate path holds a tor binary. */
export class TorMissing extends Error {
  /** The candidate paths that were looked at. */
  readonly paths: readonly string[];
  /** An error naming the candidate `paths` that hold no tor binary. */
  constructor(paths: readonly string[]) {
    super(`no tor binary (looked at ${paths.join(", ")})`);
    this.paths = paths;
  }
}

/** The torrc Phase writes. */
export function torrc(dataDir: string, extra: readonly string[] = []): string {
  return [
    `DataDirectory ${dataDir}`,
    // One SOCKS listener on loopback; tor picks the port and logs it.
    "SocksPort 127.0.0.1:auto",
    "Log notice stdout",
    "RunAsDaemon 0",
    "ClientOnly 1",
    // TM-13: keep writes to the data directory (tmpfs) to a minimum.
    "AvoidDiskWrites 1",
    // Tor exits by itself if the process that started it dies.
    `__OwningControllerProcess ${Deno.pid}`,
    ...extra,
    "",
  ].join("\n");
}

/**
 * Starts tor with `o.dataDir` as its state, waits until it has bootstrapped
 * and returns its SOCKS address. Throws `TorMissing` when there is no tor
 * binary, E_TOR when it exits or does not bootstrap in time (it is then
 * stopped).
 */
export async function startTor(o: TorOptions): Promise<TorHandle> {
  const paths = o.torPaths ?? DEFAULT_TOR_PATHS;
  await Deno.mkdir(o.dataDir, { recursive: true, mode: 0o700 });
  await Deno.chmod(o.dataDir, 0o700);
  const conf = `${o.dataDir}/torrc`;
  await Deno.writeTextFile(conf, torrc(o.dataDir, o.extraTorrc), { mode: 0o600 });
  let child: Deno.ChildProcess | undefined;
  let torPath = "";
  for (const p of paths) {
    try {
      child = new Deno.Command(p, {
        args: ["-f", conf, "--ignore-missing-torrc"],
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      torPath = p;
      break;
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) continue;
      throw new NetError("E_TOR", `cannot start ${p}: ${(err as Error).message}`, {
        cause: err,
      });
    }
  }
  if (!child) throw new TorMissing(paths);
  const proc = child;
  const tail: string[] = [];
  let port = 0;
  let percent = -1;
  let resolveReady!: () => void;
  const ready = new Promise<void>((r) => (resolveReady = r));
  const onLine = (line: string) => {
    const l = line.length > MAX_TOR_LINE_CHARS ? line.slice(0, MAX_TOR_LINE_CHARS) : line;
    tail.push(l);
    if (tail.length > TOR_TAIL_LINES) tail.shift();
    const s = /Socks listener (?:connection \(ready\) )?on 127\.0\.0\.1:(\d+)/.exec(l) ??
      /Socks listener listening on port (\d+)/.exec(l);
    if (s && !port) port = Number(s[1]);
    const b = /Bootstrapped (\d+)%/.exec(l);
    if (b && Number(b[1]) > percent) {
      percent = Number(b[1]);
      o.say?.(`phase-boot: tor: bootstrapped ${percent}%`);
      if (percent === 100 && port) resolveReady();
    }
    if (/\[(warn|err)\]/.test(l)) o.say?.(`phase-boot: tor: ${l.replace(/^.*?\[/, "[")}`);
  };
  const drain = async (s: ReadableStream<Uint8Array>) => {
    let buf = "";
    for await (const chunk of s.pipeThrough(new TextDecoderStream())) {
      buf += chunk;
      let i;
      while ((i = buf.indexOf("\n")) >= 0) {
        onLine(buf.slice(0, i));
        buf = buf.slice(i + 1);
      }
      if (buf.length > MAX_TOR_LINE_CHARS) {
        onLine(buf);
        buf = "";
      }
    }
    if (buf) onLine(buf);
  };
  const drained = Promise.all([drain(proc.stdout), drain(proc.stderr)]).catch(() => {});
  const stop = async () => {
    try {
      proc.kill("SIGTERM");
    } catch { /* already gone */ }
    let timer: ReturnType<typeof setTimeout> | undefined;
    const killed = new Promise<void>((r) => {
      timer = setTimeout(() => {
        try {
          proc.kill("SIGKILL");
        } catch { /* gone */ }
        r();
      }, TOR_STOP_TIMEOUT_MS);
    });
    await Promise.race([proc.status, killed]);
    clearTimeout(timer);
    await proc.status;
    await drained;
  };
  const timeoutMs = o.bootstrapTimeoutMs ?? TOR_BOOTSTRAP_TIMEOUT_MS;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const outcome = await Promise.race([
    ready.then(() => "ready" as const),
    proc.status.then(() => "exited" as const),
    new Promise<"timeout">((r) => (timer = setTimeout(() => r("timeout"), timeoutMs))),
  ]);
  clearTimeout(timer);
  if (outcome !== "ready") {
    await stop();
    throw new NetError(
      "E_TOR",
      outcome === "exited"
        ? `tor exited before it bootstrapped: ${tail.join(" | ")}`
        : `tor did not bootstrap within ${timeoutMs} ms (reached ${Math.max(percent, 0)}%)`,
      {
        hint: outcome === "exited"
          ? "check the torrc fragment (/etc/phase/torrc)"
          : "the network may block Tor: configure bridges in /etc/phase/torrc",
      },
    );
  }
  return { socks: { hostname: "127.0.0.1", port }, pid: proc.pid, torPath, stop };
}
