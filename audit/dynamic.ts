/**
 * Dynamic audit: each entrypoint runs under its own set with a probe
 * preloaded into its process that tries a connect, a read and a write
 * outside its scopes, a subprocess, an env read, a sys query, an FFI load
 * and a code import. Every attempt the set does not grant must be denied.
 *
 * @module
 */
import { type Grant, type PermissionSet, permissionTable, resolveScope } from "../cli/mod.ts";
import type { EntrypointTask } from "./entrypoints.ts";
import type { Finding } from "./static.ts";

/** How long one probe run may take. */
export const PROBE_TIMEOUT_MS = 60_000;
const MARKER = "PHASE_PROBE_RESULT ";

/** One probe attempt as reported. */
export interface Attempt {
  readonly kind: string;
  readonly target: string;
  readonly outcome: "denied" | "allowed";
  readonly detail: string;
}

/** Whether `set` grants the probe's attempt. */
export function grants(
  set: PermissionSet,
  a: Pick<Attempt, "kind" | "target">,
  base: string,
): boolean {
  const g: Grant = set[a.kind as keyof PermissionSet] as Grant;
  if (g === true) return true;
  if (g === false || !Array.isArray(g)) return false;
  switch (a.kind) {
    case "read":
    case "write":
    case "ffi":
      return g.some((s) => {
        const abs = resolveScope(s, base);
        return a.target === abs || a.target.startsWith(abs + "/");
      });
    case "net":
    case "import": {
      const host = a.target.replace(/^https?:\/\//, "").split("/")[0];
      return g.some((s) => s === host || s === host.split(":")[0]);
    }
    case "run":
      return g.some((s) => s === a.target || a.target.endsWith("/" + s));
    default:
      return g.includes(a.target);
  }
}

/** Runs the probe in one entrypoint's process. */
export async function probe(task: EntrypointTask, repo: string): Promise<Attempt[]> {
  // TM-12: the child gets its set explicitly (the audit itself may start deno).
  const flags = task.flags.filter((f) => !/^(-P|--permission-set)=/.test(f));
  const child = new Deno.Command("deno", {
    args: [
      "run",
      `-P=${task.set}`,
      ...flags,
      "--preload",
      "audit/_probe.ts",
      task.entry,
      ...task.args,
    ],
    cwd: repo,
    env: { PHASE_PROBE_SECRET: "probe" },
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(PROBE_TIMEOUT_MS),
  });
  const out = await child.output();
  const text = new TextDecoder().decode(out.stdout);
  const line = text.split("\n").find((l) => l.startsWith(MARKER));
  if (!line) {
    throw new Error(
      `probe of ${task.task} printed no result (exit ${out.code}): ${
        new TextDecoder().decode(out.stderr).slice(0, 400)
      }`,
    );
  }
  return JSON.parse(line.slice(MARKER.length));
}

/** Probes every task; returns the attempts and the findings. */
export async function auditDynamic(
  tasks: readonly EntrypointTask[],
  repo: string,
  table: ReadonlyMap<string, PermissionSet> = permissionTable(),
): Promise<{ task: EntrypointTask; attempts: Attempt[] }[] & { findings?: Finding[] }> {
  const results: { task: EntrypointTask; attempts: Attempt[] }[] = [];
  const seen = new Set<string>();
  for (const t of tasks) {
    const key = `${t.entry}|${t.set}|${t.args.join(" ")}`;
    if (seen.has(key) || !table.has(t.set)) continue;
    seen.add(key);
    results.push({ task: t, attempts: await probe(t, repo) });
  }
  return results;
}

/** Findings from probe results: anything allowed that the set does not grant. */
export function dynamicFindings(
  results: readonly { task: EntrypointTask; attempts: readonly Attempt[] }[],
  repo: string,
  table: ReadonlyMap<string, PermissionSet> = permissionTable(),
): Finding[] {
  const f: Finding[] = [];
  for (const { task, attempts } of results) {
    const set = table.get(task.set)!;
    for (const a of attempts) {
      if (a.outcome === "allowed" && !grants(set, a, repo)) {
        f.push({
          where: `task ${task.task}`,
          rule: "dynamic",
          detail: `${a.kind} ${a.target} was allowed outside set '${task.set}' (${a.detail})`,
        });
      }
    }
    if (attempts.length < 8) {
      f.push({
        where: `task ${task.task}`,
        rule: "dynamic",
        detail: "probe did not report every attempt",
      });
    }
  }
  return f;
}
