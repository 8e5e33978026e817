/**
 * build/: compiles every entrypoint with `deno compile -P=<set>` from the
 * one permission table.
 *
 * @module
 */
export { build, BuildError, COMPILE_TIMEOUT_MS, compileArgs } from "./build.ts";
