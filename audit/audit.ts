/**
 * The permission audit: static table rules, dynamic probes in each
 * entrypoint's process, and the permissions embedded in compiled binaries.
 *
 * @module
 */
import { readFileCapped } from "../core/mod.ts";
import {
  type Grant,
  PERMISSION_KINDS,
  type PermissionSet,
  permissionTable,
  rawTable,
} from "../cli/mod.ts";
import { compareEmbedded, MAX_BINARY_BYTES, readEmbeddedPermissions } from "./compiled.ts";
import { auditDynamic, dynamicFindings } from "./dynamic.ts";
import { binaries, entrypointTasks } from "./entrypoints.ts";
import { auditLaunchers, auditUnit, MAX_UNIT_BYTES } from "./launchers.ts";
import { auditDenoSpawns, auditImports, sourceFiles } from "./source.ts";
import { auditBaseline, auditTable, auditTasks, type Finding, readBaseline } from "./static.ts";

/** What the audit covers. */
export interface AuditOptions {
  readonly repo: string;
  readonly dist: string;
  readonly dynamic: boolean;
  readonly out: (line: string) => void;
  /** An unpacked Debian package (`dpkg-deb -x phase_*.deb DIR`): its launchers are checked. */
  readonly debRoot?: string;
}

/** The package's systemd units, relative to the repository (deb/). */
export const UNITS_DIR = "deb/units";

function cell(g: Grant): string {
  if (g === false) return "-";
  if (g === true) return "ALL";
  return g.join(" ");
}

/** Markdown table of the sets (also used by threat-model/permissions.md). */
export function permissionMarkdown(
  table: ReadonlyMap<string, PermissionSet> = permissionTable(),
): string {
  const kinds = PERMISSION_KINDS.filter((k) => k !== "import");
  const lines = [
    `| set | ${kinds.join(" | ")} | import |`,
    `|---|${kinds.map(() => "---").join("|")}|---|`,
  ];
  for (const [name, set] of table) {
    lines.push(
      `| \`${name}\` | ${kinds.map((k) => cell(set[k]).replace(/\|/g, "\\|")).join(" | ")} | ${
        set.import === false ? "none (defaults denied)" : cell(set.import)
      } |`,
    );
  }
  return lines.join("\n");
}

/** Runs the audit; returns every finding. */
export async function runAudit(opts: AuditOptions): Promise<Finding[]> {
  const { out } = opts;
  const table = permissionTable();
  const tasks = entrypointTasks();
  out("== permission table (deno.json) ==");
  out(permissionMarkdown(table));
  const files = await sourceFiles(opts.repo);
  const findings: Finding[] = [
    ...auditTable(table),
    ...auditTasks(tasks, table),
    ...auditBaseline(rawTable(), await readBaseline(opts.repo)),
    ...auditImports(files),
    ...auditDenoSpawns(files),
  ];
  out(`\n== static: ${tasks.length} entrypoint tasks, ${table.size} sets ==`);
  for (const t of tasks) {
    out(`  ${t.task.padEnd(18)} -P=${t.set.padEnd(14)} ${t.entry} ${t.args.join(" ")}`);
  }
  if (opts.dynamic) {
    out("\n== dynamic: probe in each entrypoint's process ==");
    const results = await auditDynamic(tasks, opts.repo, table);
    const kinds = results[0]?.attempts.map((a) => a.kind) ?? [];
    out(`  ${"task".padEnd(18)} ${kinds.map((k) => k.padEnd(8)).join(" ")}`);
    for (const { task, attempts } of results) {
      out(`  ${task.task.padEnd(18)} ${attempts.map((a) => a.outcome.padEnd(8)).join(" ")}`);
    }
    findings.push(...dynamicFindings(results, opts.repo, table));
  }
  out("\n== compiled binaries ==");
  let any = false;
  for (const b of binaries(tasks)) {
    const path = `${opts.dist}/${b.name}`;
    let info: Deno.FileInfo;
    try {
      info = await Deno.stat(path);
    } catch {
      continue;
    }
    any = true;
    if (info.size > MAX_BINARY_BYTES) {
      findings.push({
        where: b.name,
        rule: "compiled",
        detail: `larger than ${MAX_BINARY_BYTES} bytes`,
      });
      continue;
    }
    const embedded = readEmbeddedPermissions(await Deno.readFile(path));
    if (!embedded) {
      findings.push({ where: b.name, rule: "compiled", detail: "no embedded permissions found" });
      continue;
    }
    const fs = compareEmbedded(b.name, embedded, table.get(b.set)!, opts.repo);
    out(
      `  ${b.name.padEnd(22)} -P=${b.set.padEnd(14)} ${
        fs.length ? "MISMATCH" : "matches the table"
      }`,
    );
    findings.push(...fs);
  }
  if (!any) out(`  no binaries in ${opts.dist} (run 'deno task build' to compile them)`);
  out("\n== systemd units (deb/units) ==");
  const units: string[] = [];
  try {
    for await (const e of Deno.readDir(`${opts.repo}/${UNITS_DIR}`)) {
      if (e.isFile && e.name.endsWith(".service")) units.push(e.name);
    }
  } catch { /* no units */ }
  for (const u of units.sort()) {
    const text = new TextDecoder().decode(
      await readFileCapped(`${opts.repo}/${UNITS_DIR}/${u}`, MAX_UNIT_BYTES),
    );
    const fs = auditUnit(u, text, table);
    out(`  ${u.padEnd(26)} ${fs.length ? "DISAGREES with its set" : "agrees with its set"}`);
    findings.push(...fs);
  }
  if (opts.debRoot) {
    out(`\n== installed launchers (${opts.debRoot}) ==`);
    const fs = await auditLaunchers(opts.debRoot, table);
    out(`  ${fs.length ? `${fs.length} mismatch(es)` : "every launcher matches the table"}`);
    findings.push(...fs);
  }
  out(`\n== findings: ${findings.length} ==`);
  for (const f of findings) out(`  [${f.rule}] ${f.where}: ${f.detail}`);
  return findings;
}
