import { deepStrictEqual as assertEquals, match as assertMatch } from "node:assert/strict";
import { EXIT_STATUS, exitStatusOf, PhaseError, UsageError } from "../core/mod.ts";
import { formatError, namedPaths, renderHelp, wantsHelp, wantsVersion } from "./run.ts";
import { nearestFlag, parseFlags } from "./flags.ts";

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
    // A HelpSpec prints "phase-<name> <version>: <summary>" first, then the usage.
    assertMatch(
      new TextDecoder().decode(out.stdout),
      /^(phase-[a-z-]+ \S+: .*\n\n)?usage: (deno task|phase-)/,
      task,
    );
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

Deno.test("cli: an unknown flag suggests the nearest known one, and only a near one", () => {
  const spec = { channel: { type: "string" as const }, arch: { type: "string" as const } };
  for (
    const [typed, hint] of [["--chanel", "--channel"], ["--arc", "--arch"], [
      "--channle",
      "--channel",
    ]]
  ) {
    try {
      parseFlags([typed, "x"], spec, "usage: x");
      throw new Error(`${typed} was accepted`);
    } catch (err) {
      assertEquals((err as UsageError).code, "E_USAGE");
      assertMatch((err as Error).message, new RegExp(`did you mean ${hint}\\?$`));
    }
  }
  assertEquals(nearestFlag("--zzz", ["channel", "arch"]), undefined);
  assertEquals(nearestFlag("--trust=x", ["trust", "state"]), "trust");
});

Deno.test("cli: --help lists what the command does, each flag's default, examples and the registry's statuses", () => {
  const text = renderHelp("verify", {
    summary: "checks a manifest",
    usage: "deno task verify --manifest FILE",
    flags: [{ flag: "--manifest FILE", text: "the manifest" }, {
      flag: "--channel NAME",
      text: "expected channel",
      default: "the manifest's",
    }],
    examples: ["deno task verify --manifest a", "deno task verify --manifest b --json"],
    codes: ["E_SCHEMA", "E_DIGEST"],
  });
  assertMatch(text, /^phase-verify \d+\.\d+\.\d+: checks a manifest\n/);
  assertMatch(text, /--channel NAME\s+expected channel \(default: the manifest's\)/);
  assertMatch(
    text,
    /examples:\n {2}deno task verify --manifest a\n {2}deno task verify --manifest b --json/,
  );
  for (const code of ["E_USAGE", "E_PERMISSIONS", "E_SCHEMA", "E_DIGEST", "E_INTERNAL"] as const) {
    assertMatch(text, new RegExp(`\\n  ${EXIT_STATUS[code]}\\s+${code}\\n`));
  }
  assertEquals(wantsVersion(["--version"]), true);
  assertEquals(wantsVersion(["run", "--", "--version"]), false);
  // A command's own --version V (sign's release version) is not a version request.
  assertEquals(
    wantsVersion(["sign", "--root", "r", "--version", "2026.11.20", "--key", "k"]),
    false,
  );
  assertEquals(wantsVersion(["sign", "--version", "--json"]), true);
});

Deno.test("cli: --version asks for the version only without a value; namedPaths finds every path a user typed", () => {
  assertEquals(wantsVersion(["--version"]), true);
  assertEquals(wantsVersion(["--json", "--version", "--x"]), true);
  // sign's --version V is the release's version, not a request for Phase's.
  assertEquals(wantsVersion(["--root", "./a", "--version", "2026.11.20"]), false);
  assertEquals(wantsVersion(["--", "--version"]), false);
  assertEquals(
    namedPaths([
      "run",
      "x.wasm",
      "--cache",
      "./c",
      "--state=/s",
      "--artifact",
      "kernel=/k",
      "--json",
    ]),
    [
      { flag: "argument", path: "run" },
      { flag: "argument", path: "x.wasm" },
      { flag: "--cache", path: "./c" },
      { flag: "--state", path: "/s" },
      { flag: "--artifact", path: "kernel=/k" },
      { flag: "--artifact", path: "/k" },
    ],
  );
});
