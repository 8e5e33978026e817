/**
 * Entrypoint `phase-build` (`deno task build`): compiles each entrypoint
 * under its own permission set into dist/.
 *
 * @module
 */
import { UsageError } from "../core/mod.ts";
import { configDir, main, parseFlags } from "../cli/mod.ts";
import { build } from "./build.ts";
import { BUILD_HELP } from "./_help.ts";

/** The flags of `deno task build` (its `--help` lists each one; testing/help_test.ts checks). */
export const BUILD_FLAGS = {
  out: { type: "string" },
  only: { type: "string", multiple: true },
} as const;

const USAGE = "deno task build [--out DIR] [--only phase-NAME]...";

if (import.meta.main) {
  await main({
    name: "build",
    permissionSet: "build",
    help: BUILD_HELP,
    run: async (args) => {
      const { values } = parseFlags(args, BUILD_FLAGS, USAGE);
      const repo = configDir();
      const dist = values.out ?? `${repo}/dist`;
      if (!dist.startsWith("/")) throw new UsageError("--out must be an absolute path", USAGE);
      const denortBin = Deno.env.get("DENORT_BIN");
      if (denortBin) console.error(`phase-build: using DENORT_BIN=${denortBin}`);
      const written = await build({
        repo,
        dist,
        only: values.only,
        denortBin,
        log: (l) => console.log(l),
      });
      console.log(
        `phase-build: ${written.length} binaries in ${dist}; check them with 'deno task audit --dist ${dist}'`,
      );
      return 0;
    },
  });
}
