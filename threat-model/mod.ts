/**
 * threat-model/: the threat model (THREAT-MODEL.md) and the permission
 * model (permissions.md, generated from deno.json).
 *
 * @module
 */
export { renderPermissionsDoc } from "./permissions.ts";
