/**
 * Entrypoint `phase-boot` under permission set 'boot': the seed's chain
 * network -> discover -> fetch -> verify -> kexec, each step its own
 * entrypoint under its own set.
 *
 * @module
 */
import { consoleLogger } from "../core/mod.ts";
import { hostArch } from "../verify/mod.ts";
import { main, parseFlags } from "../cli/mod.ts";
import { loadPolicy } from "../client/mod.ts";
import { BOOT_HELP } from "./_help.ts";
import { type BootPaths, runChain, SEED_PATHS, spawnStep } from "./boot.ts";

const USAGE =
  "phase-boot [--bin DIR] [--trust FILE] [--policy FILE] [--cmdline FILE] [--cache DIR] [--private-root DIR] " +
  "[--run DIR] [--dry-run]";

/** The flags of `phase-boot` (its `--help` lists each one; testing/help_test.ts checks). */
export const BOOT_FLAGS = {
  bin: { type: "string" },
  trust: { type: "string" },
  policy: { type: "string" },
  cmdline: { type: "string" },
  cache: { type: "string" },
  "private-root": { type: "string" },
  run: { type: "string" },
  "dry-run": { type: "boolean" },
} as const;

/** Runs phase-boot; returns the exit status. */
export async function run(args: string[]): Promise<number> {
  const { values } = parseFlags(args, BOOT_FLAGS, USAGE);
  const paths: BootPaths = {
    ...SEED_PATHS,
    ...(values.bin ? { bin: values.bin } : {}),
    ...(values.trust ? { trust: values.trust } : {}),
    ...(values.policy ? { policy: values.policy } : {}),
    ...(values.cmdline ? { cmdline: values.cmdline } : {}),
    ...(values.cache ? { cache: values.cache } : {}),
    ...(values["private-root"] ? { privateRoot: values["private-root"] } : {}),
    ...(values.run ? { run: values.run } : {}),
  };
  // The seed's verity words are read here, before any step runs (steps may write /run/phase).
  const { policy, ignored, seedVerity, seedRootfs } = await loadPolicy({
    policyPath: paths.policy,
    cmdlinePath: paths.cmdline,
  });
  const log = consoleLogger("boot");
  const say = (line: string) => console.log(line);
  if (ignored.length) say(`phase-boot: ignoring unknown command line words: ${ignored.join(" ")}`);
  const arch = (policy.arch as "amd64" | "arm64" | undefined) ?? hostArch();
  try {
    const out = await runChain({
      policy,
      arch,
      paths,
      run: spawnStep,
      log,
      say,
      dryRun: values["dry-run"],
      ...(seedVerity ? { seedVerity } : {}),
      ...(seedRootfs ? { seedRootfs } : {}),
    });
    say(`phase-boot: dry run complete (${out.source}): ${JSON.stringify(out.timingsMs)}`);
    return 0;
  } catch (err) {
    await Deno.writeTextFile(`${paths.run}/last-error`, `${(err as Error).message}\n`).catch(
      () => {},
    );
    throw err;
  }
}

if (import.meta.main) {
  await main({
    name: "boot",
    permissionSet: "boot",
    help: BOOT_HELP,
    run,
  });
}
