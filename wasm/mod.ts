/**
 * wasm/: sandboxed WebAssembly jobs with signed receipts (issue #6).
 *
 * @module
 */
export {};
