/**
 * (In testing/, not cli/: it reads each component's CLI module for its
 * flag spec, which only a non-component folder may import; the audit's
 * mod-import rule.)
 *
 * Every entrypoint explains itself (issue 11 §4): `deno task <name> --help`
 * prints a summary, every flag its parseFlags spec accepts, two examples
 * and its exit statuses, and exits 0; `--version` prints the version.
 * The task list comes from deno.json, so a new task without help fails here.
 */
import { assert, assertEquals, assertMatch } from "./mod.ts";
import { type OptionSpec, phaseVersion, rawTasks } from "../cli/mod.ts";
import { VERIFY_FLAGS } from "../verify/cli.ts";
import { KEYGEN_FLAGS, SIGN_FLAGS } from "../sign/cli.ts";
import { DISCOVER_FLAGS } from "../client/discover/main.ts";
import { FETCH_FLAGS } from "../client/fetch/main.ts";
import { BOOT_FLAGS } from "../boot/main.ts";
import { EXEC_FLAGS, FALLBACK_FLAGS, LOAD_FLAGS } from "../kexec/cli.ts";
import { POSTBOOT_FLAGS, RECEIPT_FLAGS, RUN_FLAGS } from "../wasm/cli.ts";
import { WASM_BUILD_FLAGS } from "../wasm/build.ts";
import { IMAGES_FLAGS } from "../images/cli.ts";
import { DEMO_FLAGS } from "../images/demo.ts";
import { AUDIT_FLAGS } from "../audit/main.ts";
import { BUILD_FLAGS } from "../build/main.ts";
import { DOCS_FLAGS } from "../threat-model/gen_permissions.ts";
import { PROVIDER_FLAGS, SERVE_FLAGS } from "../provider/cli.ts";
import { FLOOR_RESET_FLAGS, FLOOR_SHOW_FLAGS } from "../verify/floor_cli.ts";
import { TRUST_FLAGS } from "../sign/trust_cli.ts";
import { JOB_FLAGS, NODE_FLAGS } from "../node/cli.ts";
import { DEB_FLAGS } from "../deb/main.ts";
import { FUZZ_FLAGS } from "../fuzz/main.ts";

const REPO = new URL("..", import.meta.url).pathname;

/** One `--help` to check: the binary name it prints and the specs whose flags it must list. */
interface Case {
  readonly name: string;
  readonly specs: readonly OptionSpec[];
  /** Arguments before `--help` (a subcommand). */
  readonly args?: readonly string[];
}

/** Every task that runs an entrypoint, by task name. */
const CASES: Readonly<Record<string, Case>> = {
  verify: { name: "verify", specs: [VERIFY_FLAGS] },
  keygen: { name: "keygen", specs: [KEYGEN_FLAGS] },
  sign: { name: "sign", specs: [SIGN_FLAGS] },
  discover: { name: "discover", specs: [DISCOVER_FLAGS] },
  fetch: { name: "fetch", specs: [FETCH_FLAGS] },
  "fetch-private": { name: "fetch", specs: [FETCH_FLAGS] },
  boot: { name: "boot", specs: [BOOT_FLAGS] },
  kexec: { name: "kexec", specs: [LOAD_FLAGS, EXEC_FLAGS, FALLBACK_FLAGS] },
  wasm: { name: "wasm", specs: [RUN_FLAGS, POSTBOOT_FLAGS] },
  receipt: { name: "wasm", specs: [RECEIPT_FLAGS] },
  "wasm:build": { name: "wasm-build", specs: [WASM_BUILD_FLAGS] },
  images: { name: "images", specs: [IMAGES_FLAGS] },
  audit: { name: "audit", specs: [AUDIT_FLAGS] },
  build: { name: "build", specs: [BUILD_FLAGS] },
  demo: { name: "demo", specs: [DEMO_FLAGS] },
  "docs:permissions": { name: "docs", specs: [DOCS_FLAGS] },
  // `help` is how these two spell --help in their parseFlags spec, not a flag of their own.
  serve: { name: "serve", specs: [omit(SERVE_FLAGS, "help")] },
  provider: { name: "provider", specs: [omit(PROVIDER_FLAGS, "help")] },
  trust: { name: "trust", specs: [TRUST_FLAGS] },
  floor: { name: "floor", specs: [FLOOR_SHOW_FLAGS, FLOOR_RESET_FLAGS] },
  node: { name: "node", specs: [NODE_FLAGS] },
  job: { name: "job", specs: [JOB_FLAGS] },
  deb: { name: "deb", specs: [DEB_FLAGS] },
  fuzz: { name: "fuzz", specs: [FUZZ_FLAGS] },
};

/** Subcommands with their own help: `deno task <task> <sub> --help`. */
const SUBCOMMANDS: Readonly<Record<string, Case & { task: string }>> = {
  "kexec load": { task: "kexec", args: ["load"], name: "kexec", specs: [LOAD_FLAGS] },
  "kexec exec": { task: "kexec", args: ["exec"], name: "kexec", specs: [EXEC_FLAGS] },
  "kexec fallback": { task: "kexec", args: ["fallback"], name: "kexec", specs: [FALLBACK_FLAGS] },
  "wasm run": { task: "wasm", args: ["run"], name: "wasm", specs: [RUN_FLAGS] },
  "wasm postboot": { task: "wasm", args: ["postboot"], name: "wasm", specs: [POSTBOOT_FLAGS] },
};

/** A spec without one flag. */
function omit(spec: OptionSpec, flag: string): OptionSpec {
  return Object.fromEntries(Object.entries(spec).filter(([k]) => k !== flag));
}

/** Tasks that run `deno run` (entrypoints); test, check and doc tasks run other deno commands. */
function entrypointTaskNames(): string[] {
  return Object.entries(rawTasks())
    .filter(([, cmd]) => /^deno run\s/.test(cmd.trim()))
    .map(([name]) => name);
}

async function task(...args: string[]) {
  const out = await new Deno.Command("deno", {
    args: ["task", "-q", ...args],
    cwd: REPO,
    stdout: "piped",
    stderr: "piped",
  }).output();
  return {
    code: out.code,
    stdout: new TextDecoder().decode(out.stdout),
    stderr: new TextDecoder().decode(out.stderr),
  };
}

/** The flags of `specs` that `help` does not name as `--flag`. */
function missingFlags(help: string, specs: readonly OptionSpec[]): string[] {
  const names = new Set(specs.flatMap((s) => Object.keys(s)));
  return [...names].filter((f) => !new RegExp(`--${f}(?![\\w-])`).test(help));
}

/** Asserts what every help text carries; returns nothing, throws on the first gap. */
function assertHelp(label: string, c: Case, help: string): void {
  const lines = help.split("\n");
  assertMatch(lines[0], new RegExp(`^phase-${c.name} \\S+: \\S.{20,}`), `${label}: summary line`);
  // Only the flags block counts: a flag named in the usage line alone has no default or text.
  const flagsBlock = help.slice(help.indexOf("\nflags:\n"), help.indexOf("\nexamples:\n"));
  assert(
    help.includes("\nflags:\n") && help.includes("\nexamples:\n"),
    `${label}: flags, examples`,
  );
  assertEquals(missingFlags(flagsBlock, c.specs), [], `${label}: flags missing from --help`);
  const examples = lines.filter((l) =>
    /^\s+deno task /.test(l) || /^\s+\S+=\S+ deno task /.test(l)
  );
  assert(examples.length >= 2, `${label}: at least two 'deno task' examples`);
  const block = help.slice(help.indexOf("\nexit statuses:\n"));
  assert(help.includes("\nexit statuses:\n"), `${label}: an exit statuses block`);
  assertMatch(block, /\n {2}0 +success\n/, `${label}: status 0`);
  assertMatch(block, /\n {2}2 +E_USAGE\n/, `${label}: the usage status`);
}

Deno.test("help: every entrypoint task has a help case (derived from deno.json's tasks)", () => {
  const names = entrypointTaskNames();
  assert(names.length >= 15, `found only ${names.length} entrypoint tasks`);
  const missing = names.filter((n) => !(n in CASES));
  assertEquals(missing, [], "tasks without a help case in testing/help_test.ts");
  const stale = Object.keys(CASES).filter((n) => !names.includes(n));
  assertEquals(stale, [], "help cases for tasks deno.json no longer has");
});

Deno.test("help: 'deno task <name> --help' prints summary, every flag, examples, exit statuses; exit 0", async () => {
  const all = [
    ...Object.entries(CASES).map(([t, c]) => ({ label: t, argv: [t, "--help"], c })),
    ...Object.entries(SUBCOMMANDS).map(([label, c]) => ({
      label,
      argv: [c.task, ...(c.args ?? []), "--help"],
      c,
    })),
  ];
  // Two at a time: the machine has two cores.
  for (let i = 0; i < all.length; i += 2) {
    await Promise.all(
      all.slice(i, i + 2).map(async ({ label, argv, c }) => {
        const r = await task(...argv);
        assertEquals(r.code, 0, `${label} --help: ${r.stderr}`);
        assertHelp(label, c, r.stdout);
      }),
    );
  }
});

Deno.test("help: '--version' prints phase-<name> <version> for every entrypoint task", async () => {
  const entries = Object.entries(CASES);
  for (let i = 0; i < entries.length; i += 2) {
    await Promise.all(
      entries.slice(i, i + 2).map(async ([t, c]) => {
        const r = await task(t, "--version");
        assertEquals(r.code, 0, `${t} --version: ${r.stderr}`);
        assertEquals(r.stdout, `phase-${c.name} ${phaseVersion()}\n`, t);
      }),
    );
  }
});

Deno.test("help: a flag missing from a help text is caught", () => {
  const spec = { manifest: { type: "string" }, "min-version": { type: "string" } } as const;
  assertEquals(missingFlags("  --manifest FILE  x\n  --min-version V  y\n", [spec]), []);
  // --min alone, or --min-version-x, does not count as --min-version.
  assertEquals(missingFlags("  --manifest FILE\n  --min-version-x V\n", [spec]), ["min-version"]);
  assertEquals(missingFlags("  --manifest FILE\n", [spec]), ["min-version"]);
});

Deno.test("help: 'deno task docs:permissions --help' prints help and rewrites nothing", async () => {
  const path = `${REPO}threat-model/permissions.md`;
  const before = await Deno.readFile(path);
  const mtime = (await Deno.stat(path)).mtime?.getTime();
  const r = await task("docs:permissions", "--help");
  assertEquals(r.code, 0, r.stderr);
  assertMatch(r.stdout, /^phase-docs \S+: rewrites threat-model\/permissions\.md/);
  assertEquals((await Deno.stat(path)).mtime?.getTime(), mtime, "permissions.md was touched");
  assertEquals(await Deno.readFile(path), before);
  // A mistyped flag is refused before anything is written, too.
  const typo = await task("docs:permissions", "--hepl");
  assertEquals(typo.code, 2, typo.stderr);
  assertEquals((await Deno.stat(path)).mtime?.getTime(), mtime, "permissions.md was touched");
});
