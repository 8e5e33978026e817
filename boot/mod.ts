/**
 * Phase Boot: the orchestrator that runs on the seed and takes a machine
 * from power-on to the verified target kernel. {@link runChain} brings the
 * network up (busybox udhcpc), then runs discover, fetch and kexec, each a
 * separate program under its own permission set, and reads each step's
 * one JSON result line through that step's strict decoder. The
 * orchestrator itself holds no network access and writes only under
 * `/run/phase`; paths pass between the steps, trust never does (kexec
 * verifies the manifest again before it loads anything).
 *
 * The policy's mode decides the chain: `internet` and `local` fetch into
 * the content-addressed cache, `private` fetches onto tmpfs only (through
 * Tor when the policy allows it) and writes nothing persistent. In local
 * mode a failed network path falls back to the newest cached release that
 * verifies ({@link cachedRelease}); when kexec cannot load or execute the
 * kernel, the chain asks kexec for the chainload fallback.
 *
 * Every process is started through an injected {@link StepRunner}
 * ({@link spawnStep} on a real seed), so the chain's decisions can be
 * exercised without processes.
 *
 * @example Run the chain with an injected step runner: no DHCP lease, no boot
 * ```ts
 * import { BootError, runChain, SEED_PATHS, type StepRunner } from "./mod.ts";
 * import { DEFAULT_POLICY } from "../client/mod.ts";
 *
 * await Deno.mkdir("/tmp/phase", { recursive: true });
 * const dir = await Deno.makeTempDir({ dir: "/tmp/phase", prefix: "boot-doc-" });
 * try {
 *   // The seed's init lists the interfaces; here there is one besides lo.
 *   await Deno.writeTextFile(`${dir}/interfaces`, "lo\neth0\n");
 *   const started: string[] = [];
 *   // No process is spawned: every program "fails" with exit status 1.
 *   const run: StepRunner = (program) => {
 *     started.push(program);
 *     return Promise.resolve({ code: 1, stdout: "" });
 *   };
 *   try {
 *     await runChain({
 *       policy: DEFAULT_POLICY,
 *       arch: "amd64",
 *       paths: { ...SEED_PATHS, run: dir, interfaces: `${dir}/interfaces` },
 *       run,
 *       log: { info() {}, warn() {}, error() {} },
 *       say: () => {},
 *       dryRun: true,
 *     });
 *     throw new Error("a chain without a network must not boot");
 *   } catch (err) {
 *     if (!(err instanceof BootError) || err.code !== "E_NETWORK") throw err;
 *     console.log(err.message); // no DHCP lease on eth0
 *   }
 *   if (started.join() !== "/sbin/udhcpc") throw new Error(`ran ${started}`);
 * } finally {
 *   await Deno.remove(dir, { recursive: true });
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
  runChain,
  SEED_PATHS,
  spawnStep,
  type StepResult,
  type StepRunner,
} from "./boot.ts";
