/**
 * Renders threat-model/permissions.md from the permission table in
 * deno.json, so the document and the table cannot disagree (a test
 * compares them; `deno task docs:permissions` rewrites the file).
 *
 * @module
 */
import { permissionTable } from "../cli/mod.ts";
import { DEV_SETS, permissionMarkdown, TMPFS_ONLY_WRITE, UNSCOPED_GRANTS } from "../audit/mod.ts";

/** The whole permissions.md text. */
export function renderPermissionsDoc(): string {
  const table = permissionTable();
  const reasons: string[] = [];
  for (const [set, kinds] of Object.entries(UNSCOPED_GRANTS)) {
    for (const [kind, why] of Object.entries(kinds)) reasons.push(`- \`${set}\` ${kind}: ${why}.`);
  }
  return `# Phase permission model

<!-- Generated from deno.json by 'deno task docs:permissions'. Do not edit by hand:
     threat-model/permissions_test.ts fails when this file and deno.json disagree. -->

Every Phase entrypoint runs with exactly one named permission set from
\`deno.json\` \`"permissions"\`. That one table is the source of truth for:

- \`deno task <name>\`: \`deno run -q --no-prompt --no-remote -P=<set> <entry>\`;
- \`deno task build\`: \`deno compile --no-prompt --no-remote -P=<set>\` into \`dist/phase-<name>\`;
- the start-up guard: every entrypoint queries its permissions and refuses to
  run (exit 13) when it holds anything outside its set, e.g. when started with \`-A\`;
- \`deno task audit\`: static rules below, a probe preloaded into each
  entrypoint's own process, and the permissions embedded in compiled binaries;
- this document.

A set confines a compromised component (TM-12): a parser bug in the verifier
cannot open a socket, a bug in the provider cannot start a program, the
private-mode fetcher cannot write outside tmpfs (TM-13).

## The table

\`ALL\` is an unscoped grant, \`-\` none. Relative paths are relative to the
repository (where \`deno.json\` is); compiled binaries carry them resolved to
absolute paths. Every set denies code imports from Deno's default hosts, and
tasks pass \`--no-remote\`, so no entrypoint loads code at run time.

${permissionMarkdown(table)}

## Rules the audit enforces

1. No set holds \`ffi\`; no set holds every permission.
2. In shipped sets, \`read\`, \`write\` and \`run\` are scoped to paths or programs.
3. An unscoped \`net\`, \`env\` or \`sys\` grant carries a written reason:
${reasons.join("\n")}
4. \`verify\` and \`receipt\` hold no net, no write, no run, no env, no sys.
5. ${
    Object.entries(TMPFS_ONLY_WRITE).map(([s, r]) =>
      `\`${s}\` writes only under ${
        r.map((x) => `\`${x}\``).join(" or ")
      } (tmpfs; checked in /proc/mounts at start)`
    ).join("; ")
  }.
6. No set holds both \`net\` and \`run\`: a networked component cannot start
   programs, and one that starts programs cannot reach the network.
7. No scope contains \`..\`; no set may write \`/\` or the repository root.
   No scope lies under \`/proc\`, \`/sys\` or \`/dev\`: Deno 2.9.6 grants those
   only with \`--allow-all\`, so such a grant would be dead. The boot init copies
   what Phase needs from them (\`/proc/cmdline\`, \`/sys/firmware/fdt\`) into
   \`/run/phase\` before any entrypoint starts.
8. Every entrypoint task names a set with \`-P=\`, passes \`--no-prompt\` and
   \`--no-remote\`, adds no \`--allow-*\` flag, and starts through the guard.
9. Components (top-level folders with a \`mod.ts\`; not \`testing/\` or \`bench/\`)
   import each other only through \`mod.ts\`; no file imports another folder's
   private \`_x.ts\` module (only \`verify/\` creates a \`Verified\` value); only
   \`cli/\` imports \`deno.json\`.
10. \`./.phase\` is scoped per purpose: \`./.phase/keys\` (signing keys),
    \`./.phase/trust\` (trust files), \`./.phase/provider\`, \`./.phase/wasm\`. No set
    that holds \`net\` may read a keys folder or write a trust folder (\`./.phase/trust\`,
    \`/etc/phase\`) (TM-12).
11. \`deno\` in a \`run\` grant is every permission: such a set holds no \`net\`, is
    used only by development tasks (never compiled or in a seed launcher), and each
    place code starts \`deno\` passes the child \`-P=<set>\` or scoped \`--allow-*\`
    flags, never \`-A\`.
12. The table equals the reviewed baseline \`threat-model/permissions.baseline.json\`,
    whose review note names the table's digest: a widened set is a finding until
    both are updated together.
13. The paths each command uses by default (\`cli/layout.ts\`) lie inside its set.

Development-only sets, never compiled or shipped: ${
    Object.entries(DEV_SETS).map(([s, why]) => `\`${s}\` (${why})`).join(", ")
  }.
`;
}
