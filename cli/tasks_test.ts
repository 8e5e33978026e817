/**
 * `deno task` explains each task (issue 11 §4): every task in deno.json is
 * an object with a one-line description, and everything that reads the
 * task table gets the command line.
 */
import { deepStrictEqual as assertEquals, match as assertMatch, ok } from "node:assert/strict";
import config from "../deno.json" with { type: "json" };
import { configDir, rawTasks } from "./mod.ts";

/** Longest description, in characters: one line of `deno task`'s listing. */
const MAX_DESCRIPTION_CHARS = 100;

type TaskEntry = string | { command: string; description?: string };

Deno.test("tasks: every deno.json task has a one-line description, and rawTasks() gives its command", () => {
  const tasks = (config as unknown as { tasks: Record<string, TaskEntry> }).tasks;
  const raw = rawTasks();
  for (const [name, t] of Object.entries(tasks)) {
    ok(typeof t === "object", `${name}: write it as { "description": ..., "command": ... }`);
    const d = t.description ?? "";
    ok(d.length > 0 && d.length <= MAX_DESCRIPTION_CHARS && !d.includes("\n"), `${name}: '${d}'`);
    assertEquals(raw[name], t.command, name);
    assertMatch(raw[name], /^deno /, name);
  }
});

Deno.test("tasks: 'deno task' without a name lists each task with its description", async () => {
  const out = await new Deno.Command("deno", {
    args: ["task"],
    cwd: configDir(),
    env: { NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  const tasks = (config as unknown as { tasks: Record<string, TaskEntry> }).tasks;
  for (const [name, t] of Object.entries(tasks)) {
    const d = typeof t === "string" ? "" : t.description ?? "";
    ok(text.includes(`- ${name}\n    // ${d}\n`), `${name} listed with its description`);
  }
});
