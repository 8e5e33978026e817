/**
 * Hand over to exactly the verified kernel (house style 9): copy each
 * artifact into a private file, re-check its digest on the copy, then load
 * it with kexec-tools; executing is a separate step, and both have a dry run
 * that prints the exact argv.
 *
 * @module
 */
import {
  type Arch,
  assertVerified,
  checkArtifactFile,
  isMode,
  type Manifest,
  type Mode,
  REQUIRED_ARTIFACTS,
  type Verified,
  VerifyError,
} from "../verify/mod.ts";
import { KexecError } from "./errors.ts";
import { MAX_FDT_BYTES, zeroKaslrSeed } from "./fdt.ts";

/** Longest kernel command line passed to the target kernel, in bytes with its NUL (x86 COMMAND_LINE_SIZE is 2048). */
export const MAX_KERNEL_CMDLINE_BYTES = 2048;
/** Time a `kexec -l/-s` may take (TCG guests: a few seconds). */
export const LOAD_TIMEOUT_MS = 120_000;
/** Time `kexec -e` may take before we call it failed. */
export const EXEC_TIMEOUT_MS = 30_000;
/** Largest stderr kept from kexec-tools. */
export const MAX_TOOL_OUTPUT_BYTES = 16 * 1024;
/** Default parent of the private staging directory (tmpfs). */
export const DEFAULT_STAGE_PARENT = "/run/phase";
/** Where kexec-tools lives, in order of preference. */
export const KEXEC_BINARIES = ["/sbin/kexec", "/usr/sbin/kexec"] as const;
/** The running kernel's device tree (arm64): the seed's init copies /sys/firmware/fdt here (Deno refuses scoped reads of /sys). */
export const FDT_SOURCE = "/run/phase/fdt";
/** The seed's init copies /sys/kernel/security/lockdown here (Deno refuses scoped reads of /sys). */
export const LOCKDOWN_COPY = "/run/phase/lockdown";
/** Reads "1" when a kexec image is loaded. */
export const KEXEC_LOADED = "/sys/kernel/kexec_loaded";

/**
 * How the kernel is loaded: `file` is kexec_file_load (`kexec -s`, the
 * kernel checks the image's signature under lockdown), `classic` is
 * kexec_load (`kexec -l`, the only method on Debian arm64).
 */
export type KexecMethod = "file" | "classic";

/** Artifacts copied into a private directory and re-checked there. */
export interface Staged {
  /** The private staging directory (0700); remove it once the kernel is loaded. */
  readonly dir: string;
  /** Path of the re-checked kernel copy (0400). */
  readonly kernel: string;
  /** Path of the re-checked initramfs copy (0400). */
  readonly initramfs: string;
  /** Architecture named by the verified manifest. */
  readonly arch: Arch;
  /** Release version named by the verified manifest. */
  readonly version: string;
  /** The manifest's kernel command line (the mode word is added at load time). */
  readonly manifestCmdline: string;
}

/**
 * Runs one program (`argv[0]` with the rest as arguments) under a deadline
 * of `timeoutMs` milliseconds; returns its exit status and (capped) stderr.
 * The default runs the real program; tests inject their own.
 */
export type Runner = (
  argv: readonly string[],
  timeoutMs: number,
) => Promise<{ code: number; stderr: string }>;

/** Checks a mode string. */
export function parseMode(s: string): Mode {
  if (!isMode(s)) {
    throw new KexecError("E_STAGE", `unknown mode '${s}'`, { hint: "internet, local or private" });
  }
  return s;
}

/**
 * The dm-verity parameters of a Secure Boot seed's partition (the words
 * `phase.verity=`, `phase.verity_salt=`, `phase.verity_blocks=` of its
 * signed command line), handed to the target so that it opens the same
 * partition through dm-verity too (TM-14).
 */
export interface SeedVerity {
  /** Root hash, lowercase hex (sha256: 64 digits). */
  readonly rootHash: string;
  /** Salt, lowercase hex. */
  readonly salt: string;
  /** Data blocks of 4096 bytes. */
  readonly blocks: number;
}

/** Target command-line words carrying {@link SeedVerity} (the target's /init reads them). */
export const SEED_VERITY_WORDS: Readonly<Record<keyof SeedVerity, string>> = Object.freeze({
  rootHash: "phase.seed_verity",
  salt: "phase.seed_verity_salt",
  blocks: "phase.seed_verity_blocks",
});

/** Most data blocks accepted (16 TiB of 4 KiB blocks: far above any seed). */
const MAX_VERITY_BLOCKS = 2 ** 32;

/** Parses `ROOTHASH:SALT:BLOCKS` (what `phase-kexec load --seed-verity` takes). */
export function parseSeedVerity(s: string): SeedVerity {
  const m = /^([0-9a-f]{64}):([0-9a-f]{2,128}):([1-9][0-9]{0,9})$/.exec(s);
  const blocks = m ? Number(m[3]) : NaN;
  if (!m || m[2].length % 2 !== 0 || !(blocks <= MAX_VERITY_BLOCKS)) {
    throw new KexecError("E_STAGE", `bad seed verity parameters '${s.slice(0, 200)}'`, {
      hint:
        "ROOTHASH:SALT:BLOCKS: 64 lowercase hex digits, an even number of hex digits, a block count (the seed's phase.verity, phase.verity_salt and phase.verity_blocks)",
    });
  }
  return { rootHash: m[1], salt: m[2], blocks };
}

/**
 * The target's command line: the manifest's, minus any `phase.mode=` (and
 * `phase.seed_verity*=`) it carries, plus `phase.mode=<mode>` and, for a
 * seed that opened its partition through dm-verity, its parameters (TM-14).
 */
export function targetCmdline(
  manifestCmdline: string,
  mode: Mode,
  seedVerity?: SeedVerity,
): string {
  // deno-lint-ignore no-control-regex
  if (/[\x00-\x1f\x7f]/.test(manifestCmdline)) {
    throw new KexecError("E_STAGE", "manifest cmdline contains control characters");
  }
  const ours = ["phase.mode", ...Object.values(SEED_VERITY_WORDS)];
  const words = manifestCmdline.split(" ").filter((w) =>
    w && !ours.some((k) => w.startsWith(`${k}=`))
  );
  words.push(`phase.mode=${parseMode(mode)}`);
  if (seedVerity) {
    const v = parseSeedVerity(`${seedVerity.rootHash}:${seedVerity.salt}:${seedVerity.blocks}`);
    words.push(
      `${SEED_VERITY_WORDS.rootHash}=${v.rootHash}`,
      `${SEED_VERITY_WORDS.salt}=${v.salt}`,
      `${SEED_VERITY_WORDS.blocks}=${v.blocks}`,
    );
  }
  const line = words.join(" ");
  if (new TextEncoder().encode(line).length >= MAX_KERNEL_CMDLINE_BYTES) {
    throw new KexecError(
      "E_STAGE",
      `command line is longer than ${MAX_KERNEL_CMDLINE_BYTES - 1} bytes`,
    );
  }
  return line;
}

/** Copies `src` into a new 0600 file `dst`, at most `maxBytes + 1` bytes. */
async function copyCapped(src: string, dst: string, maxBytes: number): Promise<void> {
  const from = await Deno.open(src, { read: true });
  try {
    const to = await Deno.open(dst, { write: true, createNew: true, mode: 0o600 });
    try {
      let total = 0;
      const buf = new Uint8Array(1024 * 1024);
      for (;;) {
        const n = await from.read(buf);
        if (n === null) break;
        total += n;
        // TM-05: a source that keeps growing is cut off, the digest check then fails.
        if (total > maxBytes + 1) break;
        let off = 0;
        while (off < n) off += await to.write(buf.subarray(off, n));
      }
      await to.sync();
    } finally {
      to.close();
    }
  } finally {
    from.close();
  }
}

/**
 * Copies the kernel and initramfs named by `paths` into a fresh private
 * directory under `parent` (0700, files 0600 then 0400) and re-checks each
 * copy against the verified manifest. TM-11: what is checked is the copy
 * that kexec reads, not the path the fetcher wrote, so a file swapped after
 * verification is refused here, before anything is loaded. Throws
 * `VerifyError` (a copy that does not match, or cannot be read) or
 * {@link KexecError} `E_STAGE`; the staging directory is removed on failure.
 */
export async function stageArtifacts(
  verified: Verified<Manifest>,
  paths: Readonly<Record<string, string>>,
  parent: string = DEFAULT_STAGE_PARENT,
): Promise<Staged> {
  const m = assertVerified(verified).value;
  for (const name of REQUIRED_ARTIFACTS) {
    if (!m.artifacts[name]) {
      throw new VerifyError("E_SCHEMA", `manifest has no artifact '${name}'`, {
        hint: "a bootable release lists kernel and initramfs; sign it again with both",
      });
    }
    if (!paths[name]) {
      throw new KexecError("E_STAGE", `no path given for artifact '${name}'`, {
        hint: "pass --artifact kernel=PATH --artifact initramfs=PATH",
      });
    }
  }
  let dir: string;
  try {
    await Deno.mkdir(parent, { recursive: true, mode: 0o700 });
    dir = await Deno.makeTempDir({ dir: parent, prefix: "kexec-" });
    await Deno.chmod(dir, 0o700);
  } catch (err) {
    throw new KexecError(
      "E_STAGE",
      `cannot create a private directory under ${parent}: ${(err as Error).message}`,
      {
        cause: err,
        hint: "kexec stages into /run/phase (tmpfs) or --dir; it must be writable",
      },
    );
  }
  try {
    const out: Record<string, string> = {};
    for (const name of REQUIRED_ARTIFACTS) {
      const dst = `${dir}/${name}`;
      try {
        await copyCapped(paths[name], dst, m.artifacts[name].size);
      } catch (err) {
        throw new VerifyError(
          "E_IO",
          `cannot copy artifact '${name}' from ${paths[name]}: ${(err as Error).message}`,
          {
            cause: err,
          },
        );
      }
      await Deno.chmod(dst, 0o400);
      const f = await Deno.open(dst, { read: true });
      try {
        await checkArtifactFile(verified, name, f);
      } finally {
        try {
          f.close();
        } catch { /* closed by its stream */ }
      }
      out[name] = dst;
    }
    return {
      dir,
      kernel: out.kernel,
      initramfs: out.initramfs,
      arch: m.arch,
      version: m.version,
      manifestCmdline: m.cmdline,
    };
  } catch (err) {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    throw err;
  }
}

/** The DTB {@link stageDtb} wrote. */
export interface StagedDtb {
  /** Path of the DTB in the staging directory (pass it as {@link LoadOptions.dtb}). */
  path: string;
  /** What was changed (`kaslr-seed zeroed`, `rng-seed removed`); empty when the tree had neither. */
  changed: string[];
}

/**
 * Writes the DTB for an arm64 classic load: the running kernel's tree
 * (`source`, at most 2 MiB) with the KASLR seed zeroed, as a 0600 file in
 * the staging directory. Throws {@link KexecError} `E_FDT`.
 */
export async function stageDtb(
  staged: Staged,
  source: string = FDT_SOURCE,
): Promise<StagedDtb> {
  let bytes: Uint8Array;
  try {
    const f = await Deno.open(source, { read: true });
    try {
      const chunks: Uint8Array[] = [];
      let total = 0;
      const buf = new Uint8Array(64 * 1024);
      for (;;) {
        const n = await f.read(buf);
        if (n === null) break;
        total += n;
        if (total > MAX_FDT_BYTES) {
          throw new KexecError("E_FDT", `${source} is larger than ${MAX_FDT_BYTES} bytes`);
        }
        chunks.push(buf.slice(0, n));
      }
      bytes = new Uint8Array(total);
      let o = 0;
      for (const c of chunks) {
        bytes.set(c, o);
        o += c.length;
      }
    } finally {
      f.close();
    }
  } catch (err) {
    if (err instanceof KexecError) throw err;
    throw new KexecError("E_FDT", `cannot read ${source}: ${(err as Error).message}`, {
      cause: err,
      hint: "arm64 classic kexec needs the firmware device tree",
    });
  }
  const { dtb, changed } = zeroKaslrSeed(bytes);
  const path = `${staged.dir}/dtb`;
  await Deno.writeFile(path, dtb, { createNew: true, mode: 0o600 });
  return { path, changed };
}

/** The exact kexec-tools argv that loads `staged`. */
export function loadArgv(
  staged: Staged,
  opts: { method: KexecMethod; mode: Mode; kexec: string; dtb?: string; seedVerity?: SeedVerity },
): string[] {
  // `-s` alone only picks the syscall: kexec-tools' default action is then
  // load AND shut down (it runs `shutdown`, absent from the seed, and exits
  // 255 after a good load). `-l` makes it load only, with either syscall.
  const argv = [
    opts.kexec,
    ...(opts.method === "file" ? ["-s", "-l"] : ["-l"]),
    staged.kernel,
    `--initrd=${staged.initramfs}`,
    `--command-line=${targetCmdline(staged.manifestCmdline, opts.mode, opts.seedVerity)}`,
  ];
  if (opts.method === "classic" && opts.dtb) argv.push(`--dtb=${opts.dtb}`);
  return argv;
}

/** The argv that executes the loaded kernel. */
export function execArgv(kexec: string): string[] {
  return [kexec, "-e"];
}

/** Runs a program under a deadline, keeping at most MAX_TOOL_OUTPUT_BYTES of stderr. */
export const runProgram: Runner = async (argv, timeoutMs) => {
  const child = new Deno.Command(argv[0], {
    args: argv.slice(1),
    stdin: "null",
    stdout: "inherit",
    stderr: "piped",
  }).spawn();
  const timer = setTimeout(() => {
    try {
      child.kill("SIGKILL");
    } catch { /* already gone */ }
  }, timeoutMs);
  try {
    const chunks: Uint8Array[] = [];
    let kept = 0;
    for await (const chunk of child.stderr) {
      if (kept < MAX_TOOL_OUTPUT_BYTES) {
        chunks.push(chunk.subarray(0, MAX_TOOL_OUTPUT_BYTES - kept));
        kept += Math.min(chunk.length, MAX_TOOL_OUTPUT_BYTES - kept);
      }
    }
    const status = await child.status;
    const stderr = new TextDecoder().decode(
      chunks.reduce((a, c) => {
        const o = new Uint8Array(a.length + c.length);
        o.set(a);
        o.set(c, a.length);
        return o;
      }, new Uint8Array()),
    );
    return { code: status.signal ? 128 + 9 : status.code, stderr };
  } finally {
    clearTimeout(timer);
  }
};

/**
 * Picks the first kexec-tools binary that runs (`kexec --version`); throws
 * {@link KexecError} `E_LOAD` when none does.
 */
export async function findKexec(
  run: Runner = runProgram,
  candidates: readonly string[] = KEXEC_BINARIES,
): Promise<string> {
  for (const bin of candidates) {
    try {
      const { code } = await run([bin, "--version"], 10_000);
      if (code === 0) return bin;
    } catch { /* not there, or not in this set's run list */ }
  }
  throw new KexecError("E_LOAD", `kexec-tools not found (tried ${candidates.join(", ")})`, {
    hint: "install kexec-tools (apt package kexec-tools); the seed image carries /sbin/kexec",
  });
}

/** What a load did or, in a dry run, would do. */
export interface LoadResult {
  /** The method that loaded (dry run: the first that would be tried). */
  readonly method: KexecMethod;
  /** The kexec-tools argv that loaded (or would load) the kernel. */
  readonly argv: readonly string[];
  /** Every attempt in order, failed ones included, with exit status and stderr. */
  readonly tried: readonly { argv: readonly string[]; code: number; stderr: string }[];
  /** True when nothing was run. */
  readonly dryRun: boolean;
}

/** Options of {@link loadKernel}. */
export interface LoadOptions {
  /** Boot mode passed to the target as `phase.mode=<mode>` on its command line. */
  readonly mode: Mode;
  /** Path of kexec-tools (see {@link findKexec}). */
  readonly kexec: string;
  /** Pin one method; `auto` (the default) tries `file`, then `classic`. */
  readonly method?: KexecMethod | "auto";
  /** DTB passed to a `classic` load (arm64: from {@link stageDtb}). */
  readonly dtb?: string;
  /** The Secure Boot seed's dm-verity parameters, put on the target's command line (TM-14). */
  readonly seedVerity?: SeedVerity;
  /** Return the argv of the first method without running anything. */
  readonly dryRun?: boolean;
  /** Runs kexec-tools (default: the real program). */
  readonly run?: Runner;
  /**
   * The running kernel's lockdown mode (`none`, `integrity`,
   * `confidentiality`; see {@link readLockdown}); under lockdown a refusal
   * is reported as the kernel's signature check (TM-14).
   */
  readonly lockdown?: string;
}

/**
 * The active mode of a lockdown file (`none [integrity] confidentiality` ->
 * `integrity`), or undefined when it cannot be read or parsed.
 */
export async function readLockdown(path: string = LOCKDOWN_COPY): Promise<string | undefined> {
  try {
    return parseLockdown(await Deno.readTextFile(path));
  } catch {
    return undefined;
  }
}

/** Parses the text of /sys/kernel/security/lockdown (the bracketed word is active). */
export function parseLockdown(text: string): string | undefined {
  return /\[(none|integrity|confidentiality)\]/.exec(text)?.[1];
}

/** Options of {@link execKernel}. */
export interface ExecOptions {
  /** Path of kexec-tools (see {@link findKexec}). */
  readonly kexec: string;
  /** Return the argv without running anything. */
  readonly dryRun?: boolean;
  /** Runs kexec-tools (default: the real program). */
  readonly run?: Runner;
  /** The kernel's "is an image loaded" flag (default `/sys/kernel/kexec_loaded`). */
  readonly loadedPath?: string;
}

/**
 * Loads `staged`. Method order: `file` (kexec_file_load: the kernel checks
 * signatures under lockdown, TM-14) then `classic` (`kexec -l`, the only
 * method on Debian arm64, with the DTB) unless `method` pins one. A dry run
 * returns the argv of the first method without running anything.
 */
export async function loadKernel(staged: Staged, opts: LoadOptions): Promise<LoadResult> {
  const methods: KexecMethod[] = opts.method === "file"
    ? ["file"]
    : opts.method === "classic"
    ? ["classic"]
    : ["file", "classic"];
  const run = opts.run ?? runProgram;
  const tried: { argv: string[]; code: number; stderr: string }[] = [];
  for (const method of methods) {
    const argv = loadArgv(staged, {
      method,
      mode: opts.mode,
      kexec: opts.kexec,
      dtb: opts.dtb,
      seedVerity: opts.seedVerity,
    });
    if (opts.dryRun) return { method, argv, tried, dryRun: true };
    const { code, stderr } = await run(argv, LOAD_TIMEOUT_MS);
    tried.push({ argv, code, stderr: stderr.trim() });
    if (code === 0) return { method, argv, tried, dryRun: false };
  }
  const detail = tried.map((t) => `'${t.argv[1]}' exit ${t.code}: ${t.stderr || "(no output)"}`)
    .join("; ");
  if (opts.lockdown && opts.lockdown !== "none") {
    // TM-14: the running kernel is locked down (Secure Boot): kexec_load is
    // disabled and kexec_file_load checked the image's signature.
    throw new KexecError(
      "E_LOAD",
      `the running kernel refused ${staged.version} under lockdown (${opts.lockdown}): the target kernel is not signed by a key this kernel trusts (${detail})`,
      {
        hint:
          "under Secure Boot only kexec -s of a kernel signed with the db key (deno task images --secure-boot) or the kernel's built-in keys loads; sign the release's kernel with sbsign (docs/secure-boot.md)",
      },
    );
  }
  throw new KexecError(
    "E_LOAD",
    `kexec could not load ${staged.version}: ${detail}`,
    {
      hint:
        "the kernel may lack KEXEC/KEXEC_FILE, or lockdown refuses an unsigned kernel; the chainload fallback can boot it",
    },
  );
}

/** Reads /sys/kernel/kexec_loaded; undefined when it cannot be read. */
export async function kexecLoaded(path = KEXEC_LOADED): Promise<boolean | undefined> {
  try {
    const text = await Deno.readTextFile(path);
    return text.trim() === "1";
  } catch {
    return undefined;
  }
}

/**
 * Executes the loaded kernel (`kexec -e`): does not return on success. A
 * dry run returns the argv. Throws {@link KexecError} `E_NOT_LOADED` when
 * no kernel is loaded, `E_EXEC` when `kexec -e` returns.
 */
export async function execKernel(opts: ExecOptions): Promise<readonly string[]> {
  const argv = execArgv(opts.kexec);
  if (opts.dryRun) return argv;
  if ((await kexecLoaded(opts.loadedPath)) === false) {
    throw new KexecError("E_NOT_LOADED", "no kernel is loaded", {
      hint: "run 'phase-kexec load' first",
    });
  }
  const { code, stderr } = await (opts.run ?? runProgram)(argv, EXEC_TIMEOUT_MS);
  throw new KexecError(
    "E_EXEC",
    `kexec -e returned (exit ${code}): ${stderr.trim() || "(no output)"}`,
    {
      hint:
        "the handover failed; the chainload fallback (phase-kexec fallback) can boot the target",
    },
  );
}

/** Shell-quotes an argv for display (the dry run prints it). */
export function formatArgv(argv: readonly string[]): string {
  return argv.map((a) => /^[A-Za-z0-9_./=:,+@%-]+$/.test(a) ? a : `'${a.replaceAll("'", `'\\''`)}'`)
    .join(" ");
}
