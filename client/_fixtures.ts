/**
 * Left only for client/raw_http_test.ts, which another change rewrites and
 * moves to net/: delete this file then. The fixtures live in
 * testing/release.ts (re-exported by testing/mod.ts).
 *
 * @module
 */
export { pseudoRandom } from "../testing/mod.ts";
