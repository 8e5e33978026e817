/**
 * testing/: shared test helpers (fixtures, raw HTTP, network namespaces).
 * Used only by tests.
 *
 * @module
 */
export {
  patternBytes,
  releaseKey,
  sha256Hex,
  signFixture,
  tempDir,
  writeRelease,
} from "./fixtures.ts";
export { MAX_RAW_RESPONSE_BYTES, RAW_REQUEST_TIMEOUT_MS, rawRequest } from "./http.ts";
export type { RawResponse } from "./http.ts";
export { assert, assertEquals, assertMatch, assertRejects, waitFor } from "./assert.ts";
export { IP_COMMAND_TIMEOUT_MS, type Netns, netnsAvailable, NetnsLab } from "./netns.ts";
export {
  REPO,
  type SpawnedServe,
  spawnServe,
  START_TIMEOUT_MS,
  STOP_TIMEOUT_MS,
  stopLeftovers,
  stopServe,
  taskArgv,
} from "./serve.ts";
