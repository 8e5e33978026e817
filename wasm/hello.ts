/**
 * The hello job shipped with Phase: `examples/hello.wat`, built to
 * `examples/hello.wasm` by `deno task wasm:build` (byte-identical, checked
 * by a test), and its component version.
 *
 * @module
 */

/** The input the post-boot service gives the hello job. */
export const HELLO_INPUT = "Hello, World";
/** What the hello job answers to {@link HELLO_INPUT}. */
export const HELLO_OUTPUT = "dlroW ,olleH";
/** Digest of the committed `examples/hello.wasm`; postboot runs only these bytes. */
export const HELLO_WASM_DIGEST =
  "sha256:e017cf867aa8e90d6aac1a11c1a8f91136005da585b378f84e1a2ca971459c6a";

/** Path of the committed hello module (beside this file). */
export function helloWasmPath(): string {
  return new URL("./examples/hello.wasm", import.meta.url).pathname;
}
