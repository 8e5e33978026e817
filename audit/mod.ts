/**
 * audit/: the permission audit. Static rules over the table in deno.json,
 * a probe preloaded into each entrypoint's own process, and the
 * permissions embedded in compiled binaries.
 *
 * @module
 */
export { permissionMarkdown, runAudit, UNITS_DIR } from "./audit.ts";
export {
  auditLaunchers,
  auditUnit,
  INSTALLED_ROOT,
  readLauncher,
  shellWords,
  unitSettings,
} from "./launchers.ts";
export type { AuditOptions } from "./audit.ts";
export { compareEmbedded, readEmbeddedPermissions } from "./compiled.ts";
export type { EmbeddedPermissions } from "./compiled.ts";
export { auditDynamic, dynamicFindings, grants, probe } from "./dynamic.ts";
export type { Attempt } from "./dynamic.ts";
export { binaries, DEV_TASK_SETS, entrypointTasks, isDevTask } from "./entrypoints.ts";
export type { BinarySpec, EntrypointTask } from "./entrypoints.ts";
export {
  auditBaseline,
  auditTable,
  auditTasks,
  BASELINE_PATH,
  DEV_SETS,
  readBaseline,
  runsDeno,
  tableDigest,
  TMPFS_ONLY_WRITE,
  UNSCOPED_GRANTS,
} from "./static.ts";
export type { Baseline, Finding } from "./static.ts";
export {
  auditDenoSpawns,
  auditImports,
  componentsOf,
  NOT_COMPONENTS,
  sourceFiles,
} from "./source.ts";
export type { SourceFile } from "./source.ts";
