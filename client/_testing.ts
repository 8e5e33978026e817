/**
 * Left only for client/raw_http_test.ts, which another change rewrites and
 * moves to net/: delete this file then. Tests import testing/mod.ts.
 *
 * @module
 */
export { assert, assertEquals } from "../testing/mod.ts";
