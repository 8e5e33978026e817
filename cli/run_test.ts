import { deepStrictEqual as assertEquals, match as assertMatch } from "node:assert/strict";
import { EXIT_STATUS, exitStatusOf, PhaseError, UsageError } from "../core/mod.ts";
import { formatError, wantsHelp } from "./run.ts";

Deno.test("cli: errors print 'phase-<name>: error:' and a hint; codes map to distinct statuses", () => {
  const e = new PhaseError("E_EXPIRED", "manifest expired", { hint: "re-sign it" });
  assertEquals(
    formatError("verify", e),
    "phase-verify: error: manifest expired\nhint: re-sign it\n",
  );
  assertEquals(exitStatusOf(e), EXIT_STATUS.E_EXPIRED);
  assertEquals(exitStatusOf(new UsageError("bad")), 2);
  assertEquals(exitStatusOf(new PhaseError("E_PERMISSIONS", "x")), 13);
  assertEquals(exitStatusOf(new Error("boom")), 70);
  assertMatch(formatError("x", new Error("boom")), /hint: this is a bug in Phase/);
});

Deno.test("cli: --help prints the usage and exits 0 for every entrypoint", async () => {
  assertEquals(wantsHelp(["--help"]), true);
  assertEquals(wantsHelp(["--helpful"]), false);
  const repo = new URL("..", import.meta.url).pathname;
  for (const task of ["verify", "sign", "fetch", "serve", "wasm", "audit"]) {
    const out = await new Deno.Command("deno", {
      args: ["task", "-q", task, "--help"],
      cwd: repo,
      stdout: "piped",
      stderr: "piped",
    }).output();
    assertEquals(out.code, 0, task);
    assertMatch(new TextDecoder().decode(out.stdout), /^usage: (deno task|phase-)/, task);
  }
});

Deno.test("core: one registry, each exit status names one code, the spec's statuses unchanged", () => {
  const byStatus = new Map<number, string>();
  for (const [code, status] of Object.entries(EXIT_STATUS)) {
    const other = byStatus.get(status);
    if (other !== undefined) throw new Error(`${code} and ${other} share exit status ${status}`);
    byStatus.set(status, code);
    if (!(status > 0 && status < 126)) throw new Error(`${code}: status ${status} out of range`);
  }
  // formats.md §1: the conformance statuses are part of the wire contract.
  assertEquals(
    [
      EXIT_STATUS.E_SCHEMA,
      EXIT_STATUS.E_SIGNATURE,
      EXIT_STATUS.E_MISMATCH,
      EXIT_STATUS.E_EXPIRED,
      EXIT_STATUS.E_ROLLBACK,
      EXIT_STATUS.E_SIZE,
      EXIT_STATUS.E_DIGEST,
    ],
    [3, 4, 5, 6, 7, 8, 9],
  );
});

Deno.test("core: the README's exit-status table is the registry, row for row", async () => {
  const readme = await Deno.readTextFile(new URL("../README.md", import.meta.url));
  const begin = readme.indexOf("<!-- exit-statuses:begin -->");
  const end = readme.indexOf("<!-- exit-statuses:end -->");
  if (begin < 0 || end < begin) throw new Error("README.md: exit-status table markers missing");
  const rows = readme.slice(begin, end).split("\n")
    .map((l) => /^\|\s*(\d+)\s*\|\s*`(E_[A-Z_]+)`\s*\|/.exec(l))
    .filter((m) => m !== null)
    .map((m) => [m[2], Number(m[1])]);
  assertEquals(rows, Object.entries(EXIT_STATUS));
});
