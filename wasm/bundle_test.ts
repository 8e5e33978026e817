import { assertEquals } from "../testing/mod.ts";
import { workerUrl } from "./runner.ts";

Deno.test("job worker: a bundled (.js) loader loads the bundled _worker.js, source loads _worker.ts", () => {
  // Source (tests, `deno task wasm`, `deno compile`, which keeps .ts specifiers).
  assertEquals(
    workerUrl("file:///repo/wasm/runner.ts").href,
    "file:///repo/wasm/_worker.ts",
  );
  // Seed bundles: phase-wasm and phase-node both load the one worker in wasm/.
  assertEquals(
    workerUrl("file:///usr/lib/phase/wasm/wasm.js").href,
    "file:///usr/lib/phase/wasm/_worker.js",
  );
  assertEquals(
    workerUrl("file:///usr/lib/phase/node/node.js").href,
    "file:///usr/lib/phase/wasm/_worker.js",
  );
  // Only the path decides, not a query or fragment.
  assertEquals(
    workerUrl("file:///repo/wasm/runner.ts?x=.js").href,
    "file:///repo/wasm/_worker.ts",
  );
});
