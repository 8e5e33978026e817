/**
 * Entrypoint `deno task docs:permissions`: rewrites threat-model/permissions.md
 * from deno.json.
 *
 * @module
 */
import { main } from "../cli/mod.ts";
import { renderPermissionsDoc } from "./permissions.ts";

if (import.meta.main) {
  await main({
    name: "docs",
    permissionSet: "docs",
    run: async () => {
      const path = new URL("./permissions.md", import.meta.url).pathname;
      await Deno.writeTextFile(path, renderPermissionsDoc());
      console.log(`phase-docs: wrote ${path}`);
      return 0;
    },
  });
}
