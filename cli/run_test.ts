import { deepStrictEqual as assertEquals, match as assertMatch } from "node:assert/strict";
import { PhaseError, UsageError } from "./errors.ts";
import { exitStatusFor, formatError, wantsHelp } from "./run.ts";

Deno.test("cli: errors print 'phase-<name>: error:' and a hint; codes map to distinct statuses", () => {
  const e = new PhaseError("E_EXPIRED", "manifest expired", { hint: "re-sign it" });
  assertEquals(
    formatError("verify", e),
    "phase-verify: error: manifest expired\nhint: re-sign it\n",
  );
  assertEquals(exitStatusFor(e, { E_EXPIRED: 6 }), 6);
  assertEquals(exitStatusFor(new UsageError("bad"), { E_EXPIRED: 6 }), 2);
  assertEquals(exitStatusFor(new PhaseError("E_PERMISSIONS", "x"), {}), 13);
  assertEquals(exitStatusFor(new Error("boom"), {}), 70);
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
