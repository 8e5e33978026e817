/**
 * Entrypoint `deno task docs:permissions`: rewrites threat-model/permissions.md
 * from deno.json.
 *
 * @module
 */
import { PhaseError } from "../core/mod.ts";
import { main, parseFlags } from "../cli/mod.ts";
import { renderPermissionsDoc } from "./permissions.ts";
import { DOCS_HELP } from "./_help.ts";

/** The flags of `deno task docs:permissions`: none (strict, so a typo rewrites nothing). */
export const DOCS_FLAGS = {} as const;

if (import.meta.main) {
  await main({
    name: "docs",
    permissionSet: "docs",
    help: DOCS_HELP,
    run: async (args) => {
      // Strict: an unknown flag is a usage error, never a rewrite.
      parseFlags(args, DOCS_FLAGS, DOCS_HELP.usage);
      const path = new URL("./permissions.md", import.meta.url).pathname;
      try {
        await Deno.writeTextFile(path, renderPermissionsDoc());
      } catch (err) {
        throw new PhaseError("E_IO", `cannot write ${path}: ${(err as Error).message}`, {
          cause: err,
          hint: "run it from a checkout you can write, through 'deno task docs:permissions'",
        });
      }
      console.log(`phase-docs: wrote ${path}`);
      return 0;
    },
  });
}
