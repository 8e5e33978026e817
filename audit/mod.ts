/**
 * audit/: the permission audit. Static rules over the table in deno.json,
 * a probe preloaded into each entrypoint's own process, and the
 * permissions embedded in compiled binaries.
 *
 * @module
 */
export { permissionMarkdown, runAudit } from "./audit.ts";
export type { AuditOptions } from "./audit.ts";
export { compareEmbedded, readEmbeddedPermissions } from "./compiled.ts";
export type { EmbeddedPermissions } from "./compiled.ts";
export { auditDynamic, dynamicFindings, grants, probe } from "./dynamic.ts";
export type { Attempt } from "./dynamic.ts";
export { binaries, DEV_TASK_SETS, entrypointTasks, isDevTask } from "./entrypoints.ts";
export type { BinarySpec, EntrypointTask } from "./entrypoints.ts";
export {
  auditPrivateImports,
  auditTable,
  auditTasks,
  DEV_SETS,
  TMPFS_ONLY_WRITE,
  UNSCOPED_GRANTS,
} from "./static.ts";
export type { Finding } from "./static.ts";
