/**
 * Entrypoint `phase-audit`: reviews every entrypoint against the permission
 * table; exits 1 on any finding.
 *
 * @module
 */
import { PhaseError } from "../core/mod.ts";
import { configDir, main, parseFlags } from "../cli/mod.ts";
import { runAudit } from "./audit.ts";

const USAGE = "deno task audit [--dist DIR] [--deb-root DIR] [--static-only]";

if (import.meta.main) {
  await main({
    name: "audit",
    permissionSet: "audit",
    run: async (args) => {
      const { values } = parseFlags(args, {
        dist: { type: "string" },
        "deb-root": { type: "string" },
        "static-only": { type: "boolean" },
      }, USAGE);
      const repo = configDir();
      const findings = await runAudit({
        repo,
        dist: values.dist ?? `${repo}/dist`,
        dynamic: !values["static-only"],
        debRoot: values["deb-root"],
        out: (l) => console.log(l),
      });
      if (findings.length > 0) {
        throw new PhaseError("E_FINDINGS", `${findings.length} finding(s); see the list above`, {
          hint:
            'fix deno.json "permissions" or the entrypoint; threat-model/permissions.md states the rules',
        });
      }
      console.log("audit: clean");
      return 0;
    },
  });
}
