/**
 * Entrypoint `phase-audit`: reviews every entrypoint against the permission
 * table; exits 1 on any finding.
 *
 * @module
 */
import { PhaseError } from "../core/mod.ts";
import { configDir, main, parseFlags, wantsJson } from "../cli/mod.ts";
import { runAudit } from "./audit.ts";
import { AUDIT_HELP } from "./_help.ts";

/** The flags of `deno task audit` (its `--help` lists each one; testing/help_test.ts checks). */
export const AUDIT_FLAGS = {
  dist: { type: "string" },
  "deb-root": { type: "string" },
  "static-only": { type: "boolean" },
  json: { type: "boolean" },
} as const;

const USAGE = "deno task audit [--dist DIR] [--deb-root DIR] [--static-only] [--json]";

if (import.meta.main) {
  await main({
    name: "audit",
    permissionSet: "audit",
    help: AUDIT_HELP,
    run: async (args) => {
      const { values } = parseFlags(args, AUDIT_FLAGS, USAGE);
      const repo = configDir();
      // One rule (cli/output.ts): on a terminal the report is the result; with
      // --json or on a pipe the report goes to stderr and stdout gets one JSON line.
      const json = wantsJson({ json: values.json });
      const findings = await runAudit({
        repo,
        dist: values.dist ?? `${repo}/dist`,
        dynamic: !values["static-only"],
        debRoot: values["deb-root"],
        out: json ? (l) => console.error(l) : (l) => console.log(l),
      });
      if (json) console.log(JSON.stringify({ ok: findings.length === 0, findings }));
      if (findings.length > 0) {
        throw new PhaseError("E_FINDINGS", `${findings.length} finding(s); see the list above`, {
          hint:
            'fix deno.json "permissions" or the entrypoint; threat-model/permissions.md states the rules',
        });
      }
      if (!json) console.log("audit: clean");
      return 0;
    },
  });
}
