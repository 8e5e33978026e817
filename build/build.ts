/**
 * `deno task build`: compiles each entrypoint with `deno compile` under
 * exactly its permission set (`-P=<set> --no-prompt --no-remote`) into
 * `dist/<name>`. `deno compile` needs its runtime (denort): downloaded when
 * online, or taken from `DENORT_BIN`. Offline without it, the build stops
 * and says so.
 *
 * @module
 */
import { PhaseError } from "../core/mod.ts";
import { binaries, type BinarySpec } from "../audit/mod.ts";

/** Longest one `deno compile` may take. */
export const COMPILE_TIMEOUT_MS = 10 * 60_000;

/** Errors of the build. */
export class BuildError extends PhaseError<"E_RUNTIME" | "E_COMPILE"> {}

/** Exit statuses of the build. */

/**
 * Files a binary loads at run time that its static import graph does not
 * show (a Worker script, example modules), embedded with `--include`.
 */
export const COMPILE_INCLUDES: Readonly<Record<string, readonly string[]>> = {
  "wasm/main.ts": ["wasm/_worker.ts", "wasm/examples"],
};

/** The `deno compile` argv for one binary. */
export function compileArgs(b: BinarySpec, dist: string): string[] {
  return [
    "compile",
    "-q",
    "--no-prompt",
    "--no-remote",
    `-P=${b.set}`,
    ...(COMPILE_INCLUDES[b.entry] ?? []).flatMap((p) => ["--include", p]),
    "--output",
    `${dist}/${b.name}`,
    b.entry,
    ...b.args,
  ];
}

const RUNTIME_FAILURE =
  /denort|dl\.deno\.land|error sending request|Writing deno compile executable/i;

/** Compiles every binary; returns the paths written. */
export async function build(opts: {
  repo: string;
  dist: string;
  only?: readonly string[];
  denortBin?: string;
  log: (line: string) => void;
}): Promise<string[]> {
  await Deno.mkdir(opts.dist, { recursive: true });
  const specs = binaries().filter((b) => !opts.only?.length || opts.only.includes(b.name));
  const written: string[] = [];
  for (const b of specs) {
    const started = performance.now();
    const out = await new Deno.Command("deno", {
      args: compileArgs(b, opts.dist),
      cwd: opts.repo,
      env: opts.denortBin ? { DENORT_BIN: opts.denortBin } : {},
      stdout: "piped",
      stderr: "piped",
      signal: AbortSignal.timeout(COMPILE_TIMEOUT_MS),
    }).output();
    const err = new TextDecoder().decode(out.stderr);
    if (out.code !== 0) {
      if (RUNTIME_FAILURE.test(err)) {
        throw new BuildError(
          "E_RUNTIME",
          "deno compile could not obtain its runtime (denort): this machine cannot download it",
          {
            hint:
              "run the build once online, or set DENORT_BIN=/path/to/denort-2.9.6 (from the denort-x86_64-unknown-linux-gnu release zip); everything else runs without it through 'deno task <name>'",
          },
        );
      }
      throw new BuildError(
        "E_COMPILE",
        `deno compile failed for ${b.name}: ${err.split("\n")[0]}`,
        {
          hint: `run: deno ${compileArgs(b, opts.dist).join(" ")}`,
        },
      );
    }
    const ms = Math.round(performance.now() - started);
    opts.log(
      JSON.stringify({ event: "compiled", binary: `${opts.dist}/${b.name}`, set: b.set, ms }),
    );
    written.push(`${opts.dist}/${b.name}`);
  }
  return written;
}
