/**
 * boot/: Phase Boot, the seed's orchestrator. It brings the network up
 * (busybox udhcpc), then runs discover, fetch and kexec, each its own
 * entrypoint under its own permission set, and reads each step's one JSON
 * result line through that step's strict decoder. It holds no network and
 * writes only under `/run/phase`. In local mode it falls back to the newest
 * cached release that verifies; when kexec cannot load or execute the
 * kernel it asks kexec for the chainload fallback.
 *
 * @example Run the chain with an injected step runner (no processes)
 * ```ts
 * import { runChain, SEED_PATHS, type StepRunner } from "./mod.ts";
 * import { DEFAULT_POLICY } from "../client/mod.ts";
 *
 * // Every step fails: the chain stops with a BootError naming the network.
 * const run: StepRunner = () => Promise.resolve({ code: 1, stdout: "" });
 * const paths = { ...SEED_PATHS, interfaces: "/nonexistent/interfaces" };
 * try {
 *   await runChain({
 *     policy: DEFAULT_POLICY,
 *     arch: "amd64",
 *     paths,
 *     run,
 *     log: { info() {}, warn() {}, error() {} },
 *     say: () => {},
 *     dryRun: true,
 *   });
 * } catch (err) {
 *   console.log((err as Error).message);
 * }
 * ```
 *
 * @module
 */
export {
  type BootCode,
  type BootDeps,
  BootError,
  type BootOutcome,
  type BootPaths,
  type CachedRelease,
  cachedRelease,
  type CacheSelection,
  DHCP_TIMEOUT_MS,
  DISCOVER_TIMEOUT_MS,
  discoverPolicyArgs,
  FETCH_TIMEOUT_MS,
  KEXEC_TIMEOUT_MS,
  MAX_CACHE_SCAN,
  MAX_INTERFACES_BYTES,
  MAX_STEP_STDOUT_BYTES,
  networkUp,
  runChain,
  SEED_PATHS,
  spawnStep,
  type StepResult,
  type StepRunner,
} from "./boot.ts";
