/**
 * Entrypoints as the task table declares them: every `deno run` task
 * names its permission set with `-P=<set>` and its module.
 *
 * @module
 */
import { rawTasks } from "../cli/mod.ts";

/** One entrypoint, as a task runs it. */
export interface EntrypointTask {
  readonly task: string;
  readonly set: string;
  readonly entry: string;
  readonly args: readonly string[];
  readonly flags: readonly string[];
}

/** Tasks that are not entrypoints (they run tests, checks, generators). */
export const NON_ENTRYPOINT_TASKS: ReadonlySet<string> = new Set(["test", "check"]);

/** Parses `deno run [flags] -P=<set> <entry> [args]` task commands. */
export function entrypointTasks(
  tasks: Record<string, string | { command: string }> = rawTasks(),
): EntrypointTask[] {
  const out: EntrypointTask[] = [];
  for (const [task, raw] of Object.entries(tasks)) {
    const cmd = typeof raw === "string" ? raw : raw.command;
    const words = cmd.trim().split(/\s+/);
    if (words[0] !== "deno" || words[1] !== "run") continue;
    const flags: string[] = [];
    let i = 2;
    while (i < words.length && words[i].startsWith("-")) flags.push(words[i++]);
    const entry = words[i];
    const set = flags.find((f) => f.startsWith("-P=") || f.startsWith("--permission-set="))?.split(
      "=",
    )[1];
    out.push({ task, set: set ?? "", entry, args: words.slice(i + 1), flags });
  }
  return out;
}

/**
 * Sets of development tools: never compiled or shipped. Every set that may
 * start `deno` is one (TM-12: such a set holds every permission in effect).
 * `fuzz` is one too (loopback only, no files): the fuzzer is not shipped.
 */
export const DEV_TASK_SETS: ReadonlySet<string> = new Set([
  "test",
  "fuzz",
  "audit",
  "build",
  "images",
  "deb",
  "wasm-build",
  "docs",
]);

/** Development tools: tasks with a `:` or run under a development set. */
export function isDevTask(t: EntrypointTask): boolean {
  return t.task.includes(":") || DEV_TASK_SETS.has(t.set);
}

/** A compiled binary: its file name, set, module and baked-in arguments. */
export interface BinarySpec {
  readonly name: string;
  readonly set: string;
  readonly entry: string;
  readonly args: readonly string[];
}

/**
 * One binary per distinct (entry, set). Tasks that share one (`keygen` and
 * `sign`) make one binary named after the set, taking the subcommand as an
 * argument; a task alone bakes its arguments in (`phase-fetch-private`
 * carries `--private`). Tasks with a `:` are development tools, not shipped.
 */
export function binaries(tasks = entrypointTasks()): BinarySpec[] {
  const groups = new Map<string, EntrypointTask[]>();
  for (const t of tasks) {
    if (isDevTask(t)) continue;
    const key = `${t.entry}|${t.set}`;
    groups.set(key, [...(groups.get(key) ?? []), t]);
  }
  return [...groups.values()].map((g) =>
    g.length === 1
      ? { name: `phase-${g[0].task}`, set: g[0].set, entry: g[0].entry, args: g[0].args }
      : { name: `phase-${g[0].set}`, set: g[0].set, entry: g[0].entry, args: [] }
  );
}
