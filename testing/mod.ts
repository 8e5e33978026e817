/**
 * testing/: shared test helpers: the one assertion module, the one
 * `tempDir`, fixtures (keys, signed releases, a release server), raw HTTP,
 * network namespaces. Used only by tests and benchmarks.
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
export { type ReadUntil, readUntil, type ReadUntilOptions } from "./output.ts";
export type { RawResponse } from "./http.ts";
export {
  assert,
  assertEquals,
  assertMatch,
  assertRejects,
  assertRejectsCode,
  assertThrows,
  type ErrorClass,
  waitFor,
} from "./assert.ts";
export {
  makeRelease,
  type Misbehaviour,
  pseudoRandom,
  type Release,
  serveRelease,
  signRecord,
  type TestServer,
} from "./release.ts";
export { manifestDoc, NOW, signedManifest, type TestKey, testKey, trustOf } from "./manifest.ts";
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
export { DHT_FORM_TIMEOUT_MS, joinDht, loopbackDht, multiaddrsOf } from "./dht.ts";
