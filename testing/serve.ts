/**
 * Spawning the real `deno task serve` entrypoint (under its own permission
 * set) for end-to-end tests, optionally inside a network namespace.
 *
 * @module
 */
import { rawTasks } from "../cli/mod.ts";
import type { NetnsLab } from "./netns.ts";
import { readUntil } from "./output.ts";

/** Longest a spawned provider may take to print its banner, in ms. */
export const START_TIMEOUT_MS = 30_000;
/** Longest a stop may take before SIGKILL, in ms. */
export const STOP_TIMEOUT_MS = 15_000;
/** The repository root (deno.json's directory). */
export const REPO = new URL("..", import.meta.url).pathname.replace(/\/$/, "");

/** Most stderr kept from a spawned provider, in bytes (older output is dropped). */
export const MAX_STDERR_BYTES = 4 * 1024 * 1024;

const stderrOf = new WeakMap<Deno.ChildProcess, Promise<string>>();
const live = new Set<Deno.ChildProcess>();

/** Drains a child's stderr in the background (a full pipe would block its logging). */
function drain(child: Deno.ChildProcess): Promise<string> {
  return (async () => {
    let text = "";
    const dec = new TextDecoder();
    try {
      for await (const chunk of child.stderr) {
        text += dec.decode(chunk, { stream: true });
        if (text.length > MAX_STDERR_BYTES) text = text.slice(text.length - MAX_STDERR_BYTES / 2);
      }
    } catch { /* closed */ }
    return text;
  })();
}

/** A spawned provider. */
export interface SpawnedServe {
  readonly child: Deno.ChildProcess;
  /** Everything printed on stdout up to `phase-serve: ready`. */
  readonly out: string;
  readonly url: string | undefined;
  readonly keyid: string | undefined;
}

/**
 * A task's command line after `deno` (deno.json "tasks"), to run the
 * entrypoint directly rather than through `deno task`: a signal sent to
 * the child then reaches the entrypoint itself, not the task runner in
 * between (which answered a SIGINT with status 130 now and then).
 */
export function taskArgv(task: string): string[] {
  const line = rawTasks()[task];
  const argv = line?.split(/\s+/) ?? [];
  if (argv[0] !== "deno") throw new Error(`task '${task}' does not start with deno: ${line}`);
  return argv.slice(1);
}

/** Spawns the `serve` task with ARGS (in namespace `ns` of `lab` if given) and waits for its banner. */
export async function spawnServe(
  args: string[],
  netns?: { lab: NetnsLab; index: number },
): Promise<SpawnedServe> {
  const taskArgs = [...taskArgv("serve"), ...args];
  const opts = { cwd: REPO, stdout: "piped", stderr: "piped" } as const;
  const child = netns
    ? netns.lab.command(netns.index, "deno", taskArgs, opts).spawn()
    : new Deno.Command("deno", { args: taskArgs, ...opts }).spawn();
  stderrOf.set(child, drain(child));
  live.add(child);
  const { found, seen: out } = await readUntil(
    child.stdout,
    (s) => s.includes("phase-serve: ready\n") || undefined,
    START_TIMEOUT_MS,
    { then: "release" },
  );
  if (!found) {
    const err = await stopServe(child);
    throw new Error(`serve did not start: ${out}\n${err.err}`);
  }
  return {
    child,
    out,
    url: /on (http:\/\/\S+)/.exec(out)?.[1],
    keyid: /provider key: (ed25519:[0-9a-f]{64})/.exec(out)?.[1],
  };
}

/** SIGTERMs a spawned provider; returns its status and stderr (SIGKILL after the bound). */
export async function stopServe(child: Deno.ChildProcess, signal: Deno.Signal = "SIGTERM") {
  live.delete(child);
  try {
    child.kill(signal);
  } catch { /* already gone */ }
  const killer = setTimeout(() => {
    try {
      child.kill("SIGKILL");
    } catch { /* gone */ }
  }, STOP_TIMEOUT_MS);
  const [status, err] = await Promise.all([
    child.status,
    stderrOf.get(child) ?? new Response(child.stderr).text(),
  ]);
  await child.stdout.cancel().catch(() => {});
  clearTimeout(killer);
  return { status, err };
}

/** Stops every provider a test spawned and did not stop (call it in `finally`). */
export async function stopLeftovers(): Promise<void> {
  for (const child of [...live]) await stopServe(child);
}
