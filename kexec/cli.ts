/**
 * The `phase-kexec` command. It trusts no caller: it verifies the manifest
 * itself (trust file, channel, arch, expiry, min version, floor), stages
 * and re-checks the artifacts, then loads; `exec` is a separate command.
 *
 * @module
 */
import { UsageError } from "../core/mod.ts";
import { parseFlags, printResult } from "../cli/mod.ts";
import { parseArtifactArgs, parseUtcTime, verifyFiles } from "../verify/mod.ts";
import { KexecError } from "./errors.ts";
import type { KexecLoadResult } from "./result.ts";
import { secureBootEnabled, setOneShotEntry } from "./efivar.ts";
import { DEFAULT_EFIVARS, DEFAULT_ESP, installChainloadEntry } from "./chainload.ts";
import {
  DEFAULT_STAGE_PARENT,
  execKernel,
  FDT_SOURCE,
  findKexec,
  formatArgv,
  type KexecMethod,
  loadKernel,
  parseMode,
  parseSeedVerity,
  readLockdown,
  runProgram,
  stageArtifacts,
  stageDtb,
} from "./kexec.ts";

/**
 * Progress goes to stderr (the console): the boot orchestrator reads a
 * step's stdout, and `load --exec` never returns to print later. Only the
 * dry run's result is on stdout.
 */
function note(line: string): void {
  console.error(line);
}

/** Permission set of phase-kexec. */
export const KEXEC_PERMISSION_SET = "kexec";
/** File name of the loader entry the chainload fallback writes on the ESP and selects by default. */
export const DEFAULT_FALLBACK_ENTRY = "phase-chainload.conf";

const USAGE =
  `phase-kexec load --manifest FILE --trust FILE --artifact kernel=PATH --artifact initramfs=PATH
                 [--mode internet|local|private] [--channel C] [--arch A] [--min-version V] [--state DIR]
                 [--now RFC3339] [--dir DIR] [--method auto|file|classic] [--fdt FILE]
                 [--seed-verity ROOTHASH:SALT:BLOCKS] [--dry-run] [--exec]
phase-kexec exec [--dry-run]
phase-kexec fallback --manifest FILE --trust FILE --artifact kernel=PATH --artifact initramfs=PATH [--mode M]
                 [--esp DIR] [--entry ID] [--efivars DIR] [--no-reboot] [--dry-run]`;

/** Flags shared by `load` and `fallback`: what to verify and stage. */
const STAGE_FLAGS = {
  manifest: { type: "string" },
  trust: { type: "string" },
  artifact: { type: "string", multiple: true },
  mode: { type: "string" },
  channel: { type: "string" },
  arch: { type: "string" },
  "min-version": { type: "string" },
  state: { type: "string" },
  now: { type: "string" },
  dir: { type: "string" },
} as const;

/** The flags of `phase-kexec load` (its `--help` lists each one; testing/help_test.ts checks). */
export const LOAD_FLAGS = {
  ...STAGE_FLAGS,
  method: { type: "string" },
  fdt: { type: "string" },
  "seed-verity": { type: "string" },
  "dry-run": { type: "boolean" },
  exec: { type: "boolean" },
  json: { type: "boolean" },
} as const;

/** The flags of `phase-kexec exec`. */
export const EXEC_FLAGS = { "dry-run": { type: "boolean" } } as const;

/** The flags of `phase-kexec fallback`. */
export const FALLBACK_FLAGS = {
  ...STAGE_FLAGS,
  esp: { type: "string" },
  entry: { type: "string" },
  efivars: { type: "string" },
  "no-reboot": { type: "boolean" },
  "dry-run": { type: "boolean" },
} as const;

interface StageValues {
  manifest?: string;
  trust?: string;
  artifact?: string[];
  mode?: string;
  channel?: string;
  arch?: string;
  "min-version"?: string;
  state?: string;
  now?: string;
  dir?: string;
}

/** Verifies the manifest here (paths pass, trust never does), stages and re-checks the artifacts. */
async function verifyAndStage(values: StageValues, _out: (s: string) => void) {
  if (!values.manifest) throw new UsageError("missing --manifest", USAGE);
  if (!values.trust) throw new UsageError("missing --trust", USAGE);
  const mode = parseMode(values.mode ?? "internet");
  let now: Date | undefined;
  if (values.now !== undefined) {
    now = parseUtcTime(values.now);
    if (!now) throw new UsageError(`--now must be RFC 3339 UTC, got '${values.now}'`, USAGE);
  }
  const paths = parseArtifactArgs(values.artifact ?? [], USAGE);
  // The one "verify these files" workflow of verify/: the floor of the
  // manifest's canonical channel/arch applies with or without --channel/--arch (TM-02).
  const { verified } = await verifyFiles({
    manifest: values.manifest,
    trust: values.trust,
    channel: values.channel,
    arch: values.arch,
    now,
    minVersion: values["min-version"],
    stateDir: values.state,
    permissionSet: KEXEC_PERMISSION_SET,
  });
  const staged = await stageArtifacts(
    verified,
    Object.fromEntries(paths),
    values.dir ?? DEFAULT_STAGE_PARENT,
  );
  note(
    `phase-kexec: staged ${verified.value.channel}/${verified.value.arch} ${verified.value.version} in ${staged.dir}; digests re-checked`,
  );
  return { staged, mode, channel: verified.value.channel };
}

async function cmdLoad(args: string[], out: (s: string) => void): Promise<number> {
  const { values } = parseFlags(args, LOAD_FLAGS, USAGE);
  const method = (values.method ?? "auto") as KexecMethod | "auto";
  if (!["auto", "file", "classic"].includes(method)) {
    throw new UsageError(`bad --method '${method}'`, USAGE);
  }
  // TM-14: checked before anything is staged.
  const seedVerity = values["seed-verity"] === undefined
    ? undefined
    : parseSeedVerity(values["seed-verity"]);
  const { staged, mode, channel } = await verifyAndStage(values, out);
  let dtb: string | undefined;
  if (staged.arch === "arm64" && method !== "file") {
    const d = await stageDtb(staged, values.fdt ?? FDT_SOURCE);
    dtb = d.path;
    note(`phase-kexec: dtb ${d.path} (${d.changed.join(", ") || "no seed found"})`);
  }
  const dryRun = values["dry-run"] ?? false;
  const kexec = dryRun ? "/sbin/kexec" : await findKexec();
  const lockdown = await readLockdown();
  if (lockdown && lockdown !== "none") {
    note(`phase-kexec: kernel lockdown: ${lockdown} (only a signed kernel loads, with kexec -s)`);
  }
  const result = await loadKernel(staged, {
    mode,
    kexec,
    method,
    dtb,
    dryRun,
    lockdown,
    ...(seedVerity ? { seedVerity } : {}),
  });
  // The one result line the boot orchestrator decodes (decodeKexecLoadResult), last on stdout.
  const loaded: KexecLoadResult = {
    ok: true,
    channel,
    arch: staged.arch,
    version: staged.version,
    method: result.method,
    argv: result.argv,
    dryRun,
  };
  // A terminal gets a line; a pipe (phase-boot reads the last line) or --json the JSON line.
  const print = () =>
    printResult(
      loaded,
      () =>
        `phase-kexec: ${
          dryRun ? "ready (dry run)" : "loaded"
        }: ${channel}/${staged.arch} ${staged.version} with ${result.method}`,
      { json: values.json, out },
    );
  if (dryRun) {
    out(`phase-kexec: dry run: would run: ${formatArgv(result.argv)}`);
    print();
    return 0;
  }
  for (const t of result.tried) {
    if (t.code !== 0) note(`phase-kexec: '${t.argv[1]}' failed (exit ${t.code}): ${t.stderr}`);
  }
  note(`phase-kexec: loaded with ${formatArgv(result.argv)}`);
  print();
  // The kernel holds its own copy now; the staged files are not needed.
  await Deno.remove(staged.dir, { recursive: true }).catch(() => {});
  if (values.exec) {
    note("phase-kexec: executing the loaded kernel");
    await execKernel({ kexec });
  }
  return 0;
}

async function cmdExec(args: string[], out: (s: string) => void): Promise<number> {
  const { values } = parseFlags(args, EXEC_FLAGS, USAGE);
  if (values["dry-run"]) {
    out(
      `phase-kexec: dry run: would run: ${
        formatArgv(await execKernel({ kexec: "/sbin/kexec", dryRun: true }))
      }`,
    );
    return 0;
  }
  note("phase-kexec: executing the loaded kernel");
  await execKernel({ kexec: await findKexec() });
  return 0;
}

/**
 * The chainload fallback is disabled under Secure Boot (TM-14): the
 * firmware would check the target kernel's signature but not the initramfs
 * and command line beside it on the ESP, and a db-signed kernel left on the
 * ESP can be started by anyone with the medium, with an initramfs of their
 * choosing. Throws {@link KexecError} `E_FALLBACK`.
 */
async function refuseUnderSecureBoot(efivars: string): Promise<void> {
  const lockdown = await readLockdown();
  if (await secureBootEnabled(efivars) || (lockdown !== undefined && lockdown !== "none")) {
    throw new KexecError(
      "E_FALLBACK",
      `the chainload fallback is disabled under Secure Boot (kernel lockdown: ${
        lockdown ?? "unknown"
      }): the firmware would check the target kernel but not the initramfs and command line written beside it on the ESP`,
      {
        hint:
          "sign the release's kernel with the db key so that kexec -s loads it (docs/secure-boot.md: kexec refused under lockdown)",
      },
    );
  }
}

async function cmdFallback(args: string[], out: (s: string) => void): Promise<number> {
  const { values } = parseFlags(args, FALLBACK_FLAGS, USAGE);
  const entry = values.entry ?? DEFAULT_FALLBACK_ENTRY;
  const efivars = values.efivars ?? DEFAULT_EFIVARS;
  // TM-14: disabled under Secure Boot, before anything is written.
  await refuseUnderSecureBoot(efivars);
  const { staged, mode } = await verifyAndStage(values, out);
  const esp = values.esp ?? DEFAULT_ESP;
  if (values["dry-run"]) {
    out(
      `phase-kexec: dry run: would copy the re-checked target to ${esp}/phase/target/, write ${esp}/loader/entries/${entry}, set LoaderEntryOneShot=${entry} and run /sbin/reboot -f`,
    );
    return 0;
  }
  const conf = await installChainloadEntry(staged, { esp, entry, mode });
  note(`phase-kexec: fallback: target installed on the ESP, entry ${conf}`);
  const path = await setOneShotEntry(entry, { dir: efivars });
  note(`phase-kexec: fallback: LoaderEntryOneShot=${entry} written to ${path}`);
  await Deno.remove(staged.dir, { recursive: true }).catch(() => {});
  if (values["no-reboot"]) return 0;
  note("phase-kexec: fallback: rebooting into the chainload entry");
  const r = await runProgram(["/sbin/reboot", "-f"], 30_000);
  throw new KexecError("E_FALLBACK", `reboot returned (exit ${r.code}): ${r.stderr}`);
}

/** Runs phase-kexec; returns the exit status. */
export async function runKexec(
  args: string[],
  out: (s: string) => void = console.log,
): Promise<number> {
  const [cmd, ...rest] = args;
  switch (cmd) {
    case "load":
      return await cmdLoad(rest, out);
    case "exec":
      return await cmdExec(rest, out);
    case "fallback":
      return await cmdFallback(rest, out);
    default:
      throw new UsageError(cmd ? `unknown command '${cmd}'` : "missing command", USAGE);
  }
}
