/**
 * The README as a test (issue 11 §6): every `sh` block, in order, in a
 * fresh copy of the repository. A command's trailing comment says how it
 * runs:
 *
 * - `keeps running`: started in the background; the next command waits
 *   until its `/health` answers 200; it is stopped (SIGTERM to its process
 *   group) before the next background command starts and at the end;
 * - `run by CI`: not run here (it is the test suite itself, or QEMU);
 *   the test checks that `.ci/run` runs it, directly or through a task;
 * - `needs QEMU`: run by `deno task test:vm` (images/vm_readme_test.ts);
 * - `needs root and systemd (run by CI: TASK)`: not run here (it installs
 *   into the machine); the test checks that `.ci/run` runs TASK, which
 *   does the same in a container.
 *
 * Every other command must exit 0 and print no `error:` line.
 *
 * @module
 */

/** One command line of the README. */
export interface ReadmeCommand {
  /** The shell line without its trailing comment. */
  readonly line: string;
  /** Its trailing comment, if any. */
  readonly comment: string;
  /** Index of its `sh` block, counting from 0. */
  readonly block: number;
  /** How it runs. */
  readonly kind: "run" | "background" | "ci" | "qemu" | "system";
}

/** Longest wait for a background provider's `/health` 200, in milliseconds. */
export const README_HEALTH_TIMEOUT_MS = 90_000;
/** Longest one `/health` probe may take, in milliseconds. */
const HEALTH_PROBE_TIMEOUT_MS = 2_000;
/** Longest one README command may run, in milliseconds. */
export const README_COMMAND_TIMEOUT_MS = 300_000;
/** What a fresh clone does not have (and the copy must not carry). */
const NOT_IN_A_CLONE = [".phase", ".cache", "artifacts", "dist", "images/out"];

/** Splits a line into command and trailing comment (a `#` after whitespace, outside quotes). */
function splitComment(line: string): { line: string; comment: string } {
  let quote: string | undefined;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (quote) {
      if (c === quote) quote = undefined;
    } else if (c === "'" || c === '"') quote = c;
    else if (c === "#" && (i === 0 || /\s/.test(line[i - 1]))) {
      return { line: line.slice(0, i).trim(), comment: line.slice(i + 1).trim() };
    }
  }
  return { line: line.trim(), comment: "" };
}

/** The commands of every `sh` block of `markdown`, in order. */
export function readmeCommands(markdown: string): ReadmeCommand[] {
  const out: ReadmeCommand[] = [];
  const fence = /^```sh\n([\s\S]*?)^```$/gm;
  let block = 0;
  for (const m of markdown.matchAll(fence)) {
    const joined = m[1].replace(/\\\n\s*/g, " ");
    for (const raw of joined.split("\n")) {
      const { line, comment } = splitComment(raw);
      if (line === "") continue;
      const kind = /keeps running/.test(comment)
        ? "background"
        : /needs root and systemd/.test(comment)
        ? "system"
        : /run by CI/.test(comment)
        ? "ci"
        : /needs QEMU/.test(comment)
        ? "qemu"
        : "run";
      out.push({ line, comment, block, kind });
    }
    block++;
  }
  return out;
}

/**
 * The lines `.ci/run` runs, with the commands of the `deno task`s it runs
 * (one level), so `deno task test` inside `deno task check` counts.
 */
export function ciCommands(ciRun: string, tasks: Readonly<Record<string, string>>): string[] {
  const lines = ciRun.split("\n").map((l) => l.trim()).filter((l) => l && !l.startsWith("#"));
  const out = [...lines];
  for (const l of lines) {
    const m = /^deno task (\S+)/.exec(l);
    if (m && tasks[m[1]]) out.push(...tasks[m[1]].split("&&").map((c) => c.trim()));
  }
  return out;
}

/** Copies the repository's files as a fresh clone would have them (tracked and untracked, not ignored). */
export async function freshCopy(repo: string, dest: string): Promise<void> {
  const ls = await new Deno.Command("git", {
    args: ["ls-files", "-z", "--cached", "--others", "--exclude-standard"],
    cwd: repo,
    stdout: "piped",
  }).output();
  if (!ls.success) throw new Error("git ls-files failed");
  const files = new TextDecoder().decode(ls.stdout).split("\0").filter((f) =>
    f && !NOT_IN_A_CLONE.some((d) => f === d || f.startsWith(`${d}/`))
  );
  for (const f of files) {
    const from = `${repo}/${f}`;
    let info: Deno.FileInfo;
    try {
      info = await Deno.lstat(from);
    } catch {
      continue; // deleted in the working tree
    }
    if (!info.isFile) continue;
    const to = `${dest}/${f}`;
    await Deno.mkdir(to.slice(0, to.lastIndexOf("/")), { recursive: true });
    await Deno.copyFile(from, to);
    if (info.mode !== null) await Deno.chmod(to, info.mode & 0o777);
  }
}

/** What one command did. */
export interface CommandResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs one README line with bash in `cwd`, under a deadline. */
export async function runLine(cwd: string, line: string): Promise<CommandResult> {
  const child = new Deno.Command("bash", {
    args: ["-o", "pipefail", "-c", line],
    cwd,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const timer = setTimeout(() => {
    try {
      child.kill("SIGKILL");
    } catch { /* gone */ }
  }, README_COMMAND_TIMEOUT_MS);
  const out = await child.output();
  clearTimeout(timer);
  return {
    code: out.code,
    stdout: new TextDecoder().decode(out.stdout),
    stderr: new TextDecoder().decode(out.stderr),
  };
}

/** A command started in the background in its own process group. */
export interface Background {
  readonly line: string;
  readonly pid: number;
  readonly log: string;
  stop(): Promise<void>;
}

/** Starts `line` in its own session (setsid), output to `log`; waits for the provider's health. */
export async function startBackground(cwd: string, line: string, log: string): Promise<Background> {
  const child = new Deno.Command("setsid", {
    args: ["bash", "-c", `exec ${line} > '${log}' 2>&1`],
    cwd,
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  // A libp2p node (--listen /ip4/A/tcp/P) is ready when it accepts TCP; a
  // provider when its /health answers 200.
  const listen = /--listen \/ip4\/([\d.]+)\/tcp\/(\d+)/.exec(line);
  const port = Number(listen?.[2] ?? /--port[ =](\d+)/.exec(line)?.[1] ?? 8080);
  const deadline = Date.now() + README_HEALTH_TIMEOUT_MS;
  let healthy = false;
  while (listen && Date.now() < deadline) {
    try {
      (await Deno.connect({ hostname: listen[1], port })).close();
      healthy = true;
      break;
    } catch {
      await new Promise((r) => setTimeout(r, 250));
    }
  }
  while (!listen && Date.now() < deadline) {
    try {
      const r = await fetch(`http://127.0.0.1:${port}/health`, {
        signal: AbortSignal.timeout(HEALTH_PROBE_TIMEOUT_MS),
      });
      await r.body?.cancel();
      if (r.status === 200) {
        healthy = true;
        break;
      }
    } catch { /* not up yet */ }
    await new Promise((r) => setTimeout(r, 250));
  }
  const stop = async () => {
    // The whole session: deno task and the deno it started.
    await new Deno.Command("kill", { args: ["-TERM", "--", `-${child.pid}`] }).output();
    await child.status;
  };
  if (!healthy) {
    await stop();
    throw new Error(
      `'${line}' was not ready (/health 200 or a listening TCP port) on port ${port} within ${README_HEALTH_TIMEOUT_MS} ms:\n${await Deno
        .readTextFile(log).catch(() => "")}`,
    );
  }
  return { line, pid: child.pid, log, stop };
}

/** True when a command's output reports an error the way Phase or Deno print one. */
export function printsError(text: string): boolean {
  return /(^|\n)(phase-[\w:-]+: )?error: /i.test(text);
}
