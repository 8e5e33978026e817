/**
 * The two rewriters of untrusted WebAssembly sections, for the fuzzer
 * (fuzz/targets.ts): `capMemory` (memory and table limits) and
 * `instrumentGrow` (the `memory.grow` watch). They stay private to wasm/
 * otherwise; the runner is their only other user.
 *
 * @module
 */
export { capMemory, ModuleLimitError } from "./_limits.ts";
export { instrumentGrow, MAX_GROW_REWRITE_BYTES } from "./_grow.ts";
