/**
 * Every error a user can cause prints `phase-<name>: error: ...`, a
 * `hint:` line and a non-zero status from the registry (issue 11 §4): a
 * table of bad command lines, at least one per entrypoint, run as a user
 * runs them (`deno task ...`).
 */
import { deepStrictEqual as assertEquals, match as assertMatch, ok } from "node:assert/strict";
import { type ErrorCode, EXIT_STATUS, PhaseError } from "../core/mod.ts";
import { configDir, rawTasks } from "./mod.ts";
import { DEFAULT_HINTS, formatError } from "./run.ts";

const REPO = configDir();

interface BadLine {
  /** `deno task` arguments. */
  readonly argv: readonly string[];
  /** The `phase-<name>` that prints the error. */
  readonly name: string;
  /** The code whose status it must exit with. */
  readonly code: ErrorCode;
  /** What the hint must say, when a specific hint is the point. */
  readonly hint?: RegExp;
}

async function task(argv: readonly string[]) {
  const out = await new Deno.Command("deno", {
    args: ["task", "-q", ...argv],
    cwd: REPO,
    stdout: "piped",
    stderr: "piped",
  }).output();
  return { code: out.code, stderr: new TextDecoder().decode(out.stderr) };
}

/** A loopback port nothing listens on: bound, then closed. */
function closedPort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

Deno.test("errors: a bad command line for every entrypoint prints 'error:', a hint and its registry status", async () => {
  await Deno.mkdir("/tmp/phase", { recursive: true });
  const dir = await Deno.makeTempDir({ dir: "/tmp/phase", prefix: "errors-" });
  try {
    const keys = `${dir}/keys`;
    const made = await task(["keygen", "--out", keys]);
    assertEquals(made.code, 0, made.stderr);
    const trust = `${keys}/trust.json`;
    const port = closedPort();
    const table: BadLine[] = [
      { argv: ["verify", "--trust", trust], name: "verify", code: "E_USAGE", hint: /--manifest/ },
      {
        argv: ["verify", "--manifest", `${dir}/none.json`, "--trust", trust],
        name: "verify",
        code: "E_IO",
      },
      { argv: ["keygen", "--out", keys], name: "keygen", code: "E_EXISTS" },
      {
        argv: [
          "sign",
          ...["--root", dir, "--channel", "stable", "--arch", "amd64", "--version", "2026.11.20"],
          ...["--key", `${dir}/none.pem`],
        ],
        name: "sign",
        code: "E_KEY",
      },
      { argv: ["discover", "--chanel", "stable"], name: "discover", code: "E_USAGE", hint: /--/ },
      {
        argv: ["fetch", "--manifest", "127.0.0.1:8080/stable/amd64/manifest.json"]
          .concat(["--trust", trust, "--cache", `${dir}/cache`]),
        name: "fetch",
        code: "E_FETCH",
        hint: /did you mean http:\/\/127\.0\.0\.1:8080\/stable\/amd64\/manifest\.json\?/,
      },
      {
        argv: ["fetch", "--manifest", `http://127.0.0.1:${port}/stable/amd64/manifest.json`]
          .concat(["--trust", trust, "--cache", `${dir}/cache`]),
        name: "fetch",
        code: "E_FETCH",
        hint: new RegExp(
          `is the provider running\\? check with 'deno task provider status http://127\\.0\\.0\\.1:${port}'`,
        ),
      },
      {
        argv: ["fetch-private", "--root", "run/phase", "--manifest", "http://127.0.0.1:1/m.json"]
          .concat(["--trust", trust]),
        name: "fetch",
        code: "E_PRIVATE_ROOT",
        hint: /absolute tmpfs directory/,
      },
      { argv: ["boot", "--dryrun"], name: "boot", code: "E_USAGE", hint: /--dry-run/ },
      { argv: ["kexec"], name: "kexec", code: "E_USAGE" },
      { argv: ["kexec", "load", "--manifest", `${dir}/m.json`], name: "kexec", code: "E_USAGE" },
      { argv: ["wasm", "run", "/etc/hostname", "--private"], name: "wasm", code: "E_IO" },
      {
        argv: ["receipt", "verify", `${dir}/none.json`, "--self-consistent-only"],
        name: "wasm",
        code: "E_IO",
      },
      {
        argv: ["images", "--arch", "sparc", "--out", `${dir}/out`],
        name: "images",
        code: "E_USAGE",
      },
      { argv: ["audit", "--dist"], name: "audit", code: "E_USAGE" },
      { argv: ["build", "--out", "dist"], name: "build", code: "E_USAGE" },
      { argv: ["wasm:build", "--chek"], name: "wasm-build", code: "E_USAGE", hint: /--check/ },
      { argv: ["docs:permissions", "--force"], name: "docs", code: "E_USAGE" },
      { argv: ["demo", "--rebuld"], name: "demo", code: "E_USAGE", hint: /--rebuild/ },
      {
        argv: ["serve", "--host", "10.255.255.254", "--port", "0", "--no-mdns", "--no-dht"]
          .concat(["--state", `${dir}/state`, "--root", dir]),
        name: "serve",
        code: "E_BIND",
        hint: /--host '10\.255\.255\.254' is not an address of this machine/,
      },
      {
        argv: ["trust", "threshold", `${dir}/none.json`, "1"],
        name: "trust",
        code: "E_TRUST",
        hint: /deno task trust init --out/,
      },
      {
        argv: [
          "floor",
          "reset",
          "--state",
          `${dir}/state`,
          "--channel",
          "stable",
          "--arch",
          "amd64",
        ],
        name: "floor",
        code: "E_USAGE",
        hint: /--yes-reset-rollback-floor/,
      },
      {
        argv: ["node", "--listne", "/ip4/127.0.0.1/tcp/0"],
        name: "node",
        code: "E_USAGE",
        hint: /--listen/,
      },
      { argv: ["job", "submit"], name: "job", code: "E_USAGE" },
      {
        argv: ["fuzz", "--target", "nope"],
        name: "fuzz",
        code: "E_USAGE",
        hint: /the targets are/,
      },
      { argv: ["deb", "--arch", "sparc", "--out", `${dir}/deb`], name: "deb", code: "E_USAGE" },
      {
        argv: ["provider", "status", `127.0.0.1:${port}`],
        name: "provider",
        code: "E_USAGE",
        hint: /did you mean http:\/\/127\.0\.0\.1:\d+\?/,
      },
    ];
    // Every entrypoint task has at least one bad line here.
    const entrypoints = Object.entries(rawTasks())
      .filter(([, cmd]) => /^deno run\s/.test(cmd))
      .map(([name]) => name);
    const covered = new Set(table.map((b) => b.argv[0]));
    assertEquals(entrypoints.filter((t) => !covered.has(t)), [], "tasks without a bad line");
    for (let i = 0; i < table.length; i += 2) {
      await Promise.all(
        table.slice(i, i + 2).map(async (b) => {
          const r = await task(b.argv);
          const label = b.argv.join(" ");
          assertEquals(r.code, EXIT_STATUS[b.code], `${label}: ${r.stderr}`);
          ok(EXIT_STATUS[b.code] > 0, label);
          assertMatch(r.stderr, new RegExp(`(^|\\n)phase-${b.name}: error: \\S`), label);
          assertMatch(r.stderr, /\nhint: \S/, `${label}: a hint line\n${r.stderr}`);
          if (b.hint) assertMatch(r.stderr.slice(r.stderr.indexOf("\nhint: ")), b.hint, label);
        }),
      );
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("errors: an error thrown without a hint still prints its code's hint", () => {
  for (const code of Object.keys(EXIT_STATUS) as ErrorCode[]) {
    ok(DEFAULT_HINTS[code]?.length > 10, code);
    assertEquals(
      formatError("x", new PhaseError(code, "it failed")),
      `phase-x: error: it failed\nhint: ${DEFAULT_HINTS[code]}\n`,
    );
  }
  // A hint given at the throw site wins.
  assertEquals(
    formatError("x", new PhaseError("E_FETCH", "m", { hint: "h" })),
    "phase-x: error: m\nhint: h\n",
  );
});
