/**
 * Boot-to-target time split by phase under TCG (issue #5 §7, issue 17).
 * Builds the USB image, serves its release on loopback, boots it RUNS
 * times with OVMF (AAVMF for arm64) and splits the host-side arrival times
 * of console markers into phases; prints each run and the median.
 *
 * Run: `deno run -q --no-prompt -P=test bench/boot/boot_bench.ts [RUNS]
 * [--arch amd64|arm64] [--baseline DIR] [--steps] [--v8-ab FLAGS] [--icount] [--kept-nvram]
 * [--profile] [--log FILE]`.
 *
 * - `--baseline DIR` also builds the image from another checkout (e.g.
 *   `git archive COMMIT | tar -x -C DIR`) and boots the two images
 *   alternately (A, B, A, B, ...), so that a machine shared with others
 *   loads both alike; the 1-minute load average is printed with each run.
 * - `--steps` boots once under `-icount shift=0` (the guest clock counts
 *   instructions, 1 ns each, so the figures do not depend on how loaded
 *   the host is) and, at the target's shell, times each seed launcher's
 *   `--help` (Deno start-up and the bundle's load, nothing else) RUNS
 *   times with an empty DENO_DIR ("cold") and with the prepared code
 *   cache ("prepared"), and with the prepared cache after dropping the
 *   page cache (as at the seed's boot: Deno read from the squashfs), in
 *   guest seconds.
 * - `--v8-ab FLAGS` boots once and, at the target's shell, starts each
 *   chain launcher (boot, fetch and kexec `--help`; wasm `postboot
 *   --private`, the boot's job) as built and with its `--v8-flags=`
 *   replaced by FLAGS (`none`: V8's defaults), alternately, RUNS times
 *   each; each variant first runs once untimed into its own DENO_DIR, so
 *   that each has a code cache made under its own flags. Guest wall
 *   seconds: both sides of a pair run seconds apart in the same guest,
 *   so the host's drift, which moves whole boots by 1-2 s, cancels.
 * - `--kept-nvram` boots each image once first (not measured) and keeps
 *   the firmware's variable store from that boot for the measured ones,
 *   as on a machine that has booted before; by default every boot starts
 *   from the distribution's empty store, as a machine's very first boot
 *   (OVMF then creates its boot options and console variables, ~0.9 s).
 * - `--profile` records each boot with `perf record -a` (linux-perf, as
 *   root) and prints, per phase, how busy the guest's vCPU thread was and
 *   how its host time splits between guest code, finding and making
 *   translations, guest stores into pages that still hold translations,
 *   other memory slow paths and the host kernel (./_profile.ts). Profiled boots run slower: read
 *   their shares, not their totals.
 * - `--icount` boots under `-icount shift=0` too (wall times then mean
 *   nothing; the kernels' stamps and phase-boot's own timings are guest
 *   time); `--log FILE` appends every boot's console lines (host ms, text)
 *   to FILE.
 * - arm64 reads its sysroot and Deno from PHASE_ARM64_SYSROOT /
 *   PHASE_ARM64_DENO (default each checkout's ./.cache/arm64/..., images/fetch_arm64.sh;
 *   a `--baseline` checkout can symlink its .cache to this one's).
 *
 * Results and the machine are written up in bench/README.md.
 *
 * @module
 */
import { startProvider } from "../../provider/mod.ts";
import { memoryLogger } from "../../core/mod.ts";
import { bootVm, varsTemplate } from "../../images/vm.ts";
import { imagesTaskArgs } from "../../images/mod.ts";
import { profileTable, type ProfileWindow, startPerf } from "./_profile.ts";

/** Bound of one boot (amd64; arm64 gets ARM64_TIMEOUT_FACTOR times it). */
const BOOT_TIMEOUT_MS = 300_000;
const ARM64_TIMEOUT_FACTOR = 2;
/** Bound of the `--steps` boot and its timed commands. */
const STEPS_TIMEOUT_MS = 900_000;
/** Launchers `--steps` times (the seed's Deno steps and the target's job runner). */
const STEP_LAUNCHERS = ["boot", "discover", "fetch", "kexec", "wasm"] as const;
const REPO = new URL("../..", import.meta.url).pathname.replace(/\/$/, "");

const MARKS = {
  efiStub: /EFI stub: |Booting Linux on physical CPU/,
  seedInit: /phase-seed: init/,
  bootStart: /phase-boot: mode /,
  network: /phase-boot: network up/,
  discover: /phase-boot: discover:/,
  fetch: /phase-boot: fetch:/,
  kexec: /phase-boot: kexec:/,
  targetInit: /phase-target: init/,
  target: /PHASE-TARGET-OK/,
} as const;

/**
 * Kernel starts: the console arrival of an init's "init at <uptime>s" line
 * less that uptime. The kernels run `quiet` (no EFI stub or printk lines to
 * mark their start), and the uptime is the guest's own clock.
 */
const KERNEL_STARTS = {
  seedKernel: /phase-seed: init at ([\d.]+)s/,
  targetKernel: /phase-target: init at ([\d.]+)s/,
} as const;

/** Adds {@link KERNEL_STARTS} marks to a boot's marks. */
function kernelStarts(run: Awaited<ReturnType<typeof bootVm>>): Record<string, number> {
  const marks: Record<string, number> = { ...run.marks };
  for (const [name, re] of Object.entries(KERNEL_STARTS)) {
    for (const l of run.lines) {
      const m = re.exec(l.text);
      if (m) {
        marks[name] = l.ms - Number(m[1]) * 1000;
        break;
      }
    }
  }
  return marks;
}

/** Phase name -> [from mark, to mark]. */
const PHASES: [string, string, string][] = [
  ["firmware (OVMF + systemd-boot, EFI stub)", "", "seedKernel"],
  ["seed kernel", "seedKernel", "seedInit"],
  ["seed init (modules, mounts, Deno start)", "seedInit", "bootStart"],
  ["network (udhcpc)", "bootStart", "network"],
  ["discover", "network", "discover"],
  [
    "fetch (kernel 13.5 MiB, initramfs 2 MiB; rootfs 40 MiB unless the seed holds it)",
    "discover",
    "fetch",
  ],
  // No separate verify step: kexec load verifies, stages and re-hashes.
  ["kexec (verify, stage, load, exec, target kernel boot)", "kexec", "targetInit"],
  ["  of which the kexec step (verify, stage, load)", "kexec", "targetKernel"],
  ["  of which the target kernel", "targetKernel", "targetInit"],
  ["target init (WASM job, marker)", "targetInit", "target"],
  ["total boot-to-target", "", "target"],
];

interface Flags {
  runs: number;
  arch: "amd64" | "arm64";
  baseline?: string;
  steps: boolean;
  /** Boot under `-icount shift=0`: the steps' own timings and kernel stamps are guest time. */
  icount: boolean;
  /** Write every boot's console (host ms + line) to this file. */
  log?: string;
  /** Keep the firmware variables of an unmeasured first boot for the measured ones. */
  keptNvram: boolean;
  /** Record each boot with perf and print where the vCPU thread's time went, per phase. */
  profile: boolean;
  /** `--v8-ab`: the V8 flags to compare the built launchers with (`none`: V8's defaults). */
  v8Ab?: string;
}

function parseArgs(args: string[]): Flags {
  const f: Flags = {
    runs: 3,
    arch: "amd64",
    steps: false,
    icount: false,
    keptNvram: false,
    profile: false,
  };
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === "--arch") {
      const v = args[++i];
      if (v !== "amd64" && v !== "arm64") throw new Error("--arch amd64|arm64");
      f.arch = v;
    } else if (a === "--baseline") f.baseline = args[++i];
    else if (a === "--steps") f.steps = true;
    else if (a === "--icount") f.icount = true;
    else if (a === "--kept-nvram") f.keptNvram = true;
    else if (a === "--profile") f.profile = true;
    else if (a === "--v8-ab") {
      const v = args[++i];
      if (!v || !/^(none|--[a-z0-9-]+(=[0-9]+)?(,--[a-z0-9-]+(=[0-9]+)?)*)$/.test(v)) {
        throw new Error("--v8-ab none|--flag[,--flag...]");
      }
      f.v8Ab = v;
    } else if (a === "--log") f.log = args[++i];
    else if (/^[1-9][0-9]*$/.test(a)) f.runs = Number(a);
    else throw new Error(`unknown argument ${a}`);
  }
  return f;
}

function load(): string {
  try {
    return Deno.loadavg()[0].toFixed(1);
  } catch {
    return "?";
  }
}

/** Builds one image from `repo` into `dir` and starts a provider for its release. */
async function prepare(repo: string, dir: string, arch: "amd64" | "arm64") {
  const extra: string[] = [];
  if (arch === "arm64") {
    extra.push(
      "--sysroot",
      // The checkout's own (`--baseline DIR` builds under DIR's permission
      // set, which cannot read this checkout's folder).
      Deno.env.get("PHASE_ARM64_SYSROOT") ?? `${repo}/.cache/arm64/root`,
      "--deno",
      Deno.env.get("PHASE_ARM64_DENO") ?? `${repo}/.cache/arm64/deno/package/deno`,
    );
  }
  const b = await new Deno.Command("deno", {
    args: imagesTaskArgs({
      arch,
      out: `${dir}/out`,
      artifacts: `${dir}/artifacts`,
      keys: `${dir}/keys`,
      provider: `http://10.0.2.100/stable/${arch}/manifest.json`,
      extra,
    }),
    cwd: repo,
    stdout: "null",
    stderr: "piped",
  }).output();
  if (b.code !== 0) throw new Error(new TextDecoder().decode(b.stderr));
  const provider = await startProvider({
    root: `${dir}/artifacts`,
    state: `${dir}/state`,
    host: "127.0.0.1",
    port: 0,
    sign: false,
    trustPath: `${dir}/keys/trust.json`,
    mdns: false,
    dht: false,
    watch: false,
    logger: memoryLogger(),
  });
  return { image: `${dir}/out/phase-${arch}.img`, provider };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

function table(label: string, results: Record<string, number>[]): void {
  console.log(`\n${label}\n`);
  console.log(
    "| phase | " + results.map((_, i) => `run ${i + 1} (s)`).join(" | ") + " | median (s) |",
  );
  console.log("|---|" + results.map(() => "---:").join("|") + "|---:|");
  for (const [name, from, to] of PHASES) {
    const xs = results.map((m) => ((m[to] ?? NaN) - (from ? m[from] ?? NaN : 0)) / 1000);
    console.log(
      `| ${name} | ${xs.map((x) => x.toFixed(1)).join(" | ")} | ${median(xs).toFixed(1)} |`,
    );
  }
}

/** The {@link PHASES} of one boot's marks as profile windows (milliseconds after QEMU's start). */
function windows(marks: Record<string, number>): ProfileWindow[] {
  const out: ProfileWindow[] = [];
  for (const [name, from, to] of PHASES) {
    const fromMs = from ? marks[from] : 0;
    const toMs = marks[to];
    if (fromMs !== undefined && toMs !== undefined && toMs > fromMs) {
      out.push({ name: name.replace(/ \(.*$/, ""), fromMs, toMs });
    }
  }
  return out;
}

/** A shell line that runs `run` silently and prints `<tag> <label> <start> <end>` (guest uptime). */
function timedLine(tag: string, label: string, run: string): string {
  return `a=$(cut -d' ' -f1 /proc/uptime); ${run} >/dev/null 2>&1; b=$(cut -d' ' -f1 /proc/uptime); echo "${tag} ${label} $a $b"\n`;
}

/** The durations {@link timedLine} printed with `tag`, by `<label words>\0<variant>`. */
function timings(lines: readonly { text: string }[], tag: string): Map<string, number[]> {
  const re = new RegExp(`^${tag} (\\S+) (\\S+) ([\\d.]+) ([\\d.]+)$`);
  const got = new Map<string, number[]>();
  for (const l of lines) {
    const m = re.exec(l.text);
    if (!m) continue;
    const key = `${m[1]}\0${m[2]}`;
    got.set(key, [...(got.get(key) ?? []), Number(m[4]) - Number(m[3])]);
  }
  return got;
}

/**
 * Boots `p`'s image once and, at the target's shell, runs `script` (shell
 * lines); returns the console lines. The script is written to a file
 * first and then run: lines typed while commands run would be echoed
 * into their output.
 */
async function atTargetShell(
  p: Awaited<ReturnType<typeof prepare>>,
  arch: Flags["arch"],
  script: readonly string[],
  o: { icount?: boolean } = {},
): Promise<readonly { text: string }[]> {
  const r = await bootVm({
    arch,
    image: p.image,
    providerPort: p.provider.port,
    timeoutMs: STEPS_TIMEOUT_MS,
    until: { done: /^BENCH-SCRIPT-DONE/, shell: /phase-seed: boot failed/ },
    ...(o.icount ? { wrap: ["sh", "-c", `exec "$0" "$@" -icount shift=0`] } : {}),
    input: [{
      when: MARKS.target,
      text: `cat > /run/bench.sh <<'BENCH_END'\n${
        script.join("")
      }echo BENCH-SCRIPT-DONE\nBENCH_END\nsh /run/bench.sh\n`,
    }],
  });
  if (r.outcome !== "done") {
    throw new Error(`${r.outcome}\n${r.lines.slice(-30).map((l) => l.text).join("\n")}`);
  }
  return r.lines;
}

/** `--steps`: each launcher's start-up in guest seconds, cold and prepared, at the target's shell. */
async function steps(
  p: Awaited<ReturnType<typeof prepare>>,
  flags: Flags,
): Promise<void> {
  const deno = (s: string) => `/run/deno/phase-${s}`;
  const timed = (label: string, prep: string, run: string) =>
    `${prep}; ${timedLine("STEP", label, run)}`;
  const script: string[] = [];
  for (let i = 0; i < flags.runs; i++) {
    for (const s of STEP_LAUNCHERS) {
      const run = `/usr/lib/phase/bin/phase-${s} --help`;
      const dir = deno(s);
      // An empty DENO_DIR marked as prepared: the launcher copies nothing.
      script.push(timed(`${s} cold`, `rm -rf ${dir}; mkdir -p ${dir}; : > ${dir}/.prepared`, run));
      // An empty DENO_DIR: the launcher copies the cache (timed with it).
      script.push(timed(`${s} prepared`, `rm -rf ${dir}; mkdir -p ${dir}`, run));
      // As at the seed's boot: nothing of the seed partition in the page
      // cache yet (Deno and the bundle read and decompressed from squashfs).
      script.push(
        timed(
          `${s} uncached`,
          `rm -rf ${dir}; mkdir -p ${dir}; sync; echo 3 > /proc/sys/vm/drop_caches`,
          run,
        ),
      );
    }
  }
  const lines = await atTargetShell(p, flags.arch, script, { icount: true });
  const got = timings(lines, "STEP");
  console.log(`\n${flags.arch}, -icount shift=0, guest seconds, median of ${flags.runs}\n`);
  console.log(
    "| launcher `--help` | cold DENO_DIR | prepared code cache | prepared, empty page cache |",
  );
  console.log("|---|---:|---:|---:|");
  for (const s of STEP_LAUNCHERS) {
    const cell = (k: string) => {
      const xs = got.get(`${s}\0${k}`) ?? [];
      return xs.length ? median(xs).toFixed(2) : "-";
    };
    console.log(`| phase-${s} | ${cell("cold")} | ${cell("prepared")} | ${cell("uncached")} |`);
  }
}

/** Launchers `--v8-ab` times, with the command each runs (wasm: the boot's own job). */
const V8_AB_COMMANDS = {
  boot: "--help",
  fetch: "--help",
  kexec: "--help",
  wasm: "postboot --private",
} as const;

/** `--v8-ab`: each chain launcher as built against other V8 flags, in one guest. */
async function v8Ab(p: Awaited<ReturnType<typeof prepare>>, flags: Flags): Promise<void> {
  const other = flags.v8Ab === "none" ? "" : ` --v8-flags=${flags.v8Ab}`;
  const built = (l: string) => `/usr/lib/phase/bin/phase-${l}`;
  const alt = (l: string) => `sh /run/phase-${l}-ab`;
  const script: string[] = [];
  for (const [l, cmd] of Object.entries(V8_AB_COMMANDS)) {
    // The same launcher with other V8 flags and its own DENO_DIR.
    script.push(
      `sed -e 's| --v8-flags=[^ ]*||' -e 's|/deno run |/deno run${other} |' ` +
        `-e 's|DENO_DIR=/run/deno/phase-${l} |DENO_DIR=/run/deno/phase-${l}-ab |' ` +
        `${built(l)} > /run/phase-${l}-ab\n`,
      `${built(l)} ${cmd} >/dev/null 2>&1; ${alt(l)} ${cmd} >/dev/null 2>&1\n`,
    );
  }
  script.push(
    `echo "AB-FLAGS $(grep -ho -- '--v8-flags=[^ ]*' /run/phase-boot-ab || echo none)"\n`,
  );
  const timed = (label: string, run: string) => timedLine("AB", label, run);
  for (let i = 0; i < flags.runs; i++) {
    for (const [l, cmd] of Object.entries(V8_AB_COMMANDS)) {
      const pair = [
        timed(`${l} built`, `${built(l)} ${cmd}`),
        timed(`${l} other`, `${alt(l)} ${cmd}`),
      ];
      // Alternate which goes first.
      script.push(...(i % 2 ? pair.reverse() : pair));
    }
  }
  const lines = await atTargetShell(p, flags.arch, script);
  const got = timings(lines, "AB");
  const seen = lines.find((l) => l.text.startsWith("AB-FLAGS "))?.text.slice(9) ?? "?";
  console.log(
    `\n${flags.arch}, guest wall seconds at the target's shell, median (samples), other = ${seen}\n`,
  );
  console.log("| launcher | as built | other V8 flags | built - other |");
  console.log("|---|---:|---:|---:|");
  for (const [l, cmd] of Object.entries(V8_AB_COMMANDS)) {
    const xs = (k: string) => got.get(`${l}\0${k}`) ?? [];
    const cell = (k: string) =>
      xs(k).length ? `${median(xs(k)).toFixed(2)} (${xs(k).length})` : "-";
    const d = xs("built").length && xs("other").length
      ? (median(xs("built")) - median(xs("other"))).toFixed(2)
      : "-";
    console.log(`| phase-${l} ${cmd} | ${cell("built")} | ${cell("other")} | ${d} |`);
  }
}

if (import.meta.main) {
  const flags = parseArgs(Deno.args);
  await Deno.mkdir("/tmp/phase", { recursive: true });
  const work = await Deno.makeTempDir({ dir: "/tmp/phase", prefix: "boot-bench-" });
  const variants = [{ label: `this checkout (${REPO})`, repo: REPO }];
  if (flags.baseline) {
    variants.push({ label: `baseline (${flags.baseline})`, repo: flags.baseline });
  }
  const prepared: Awaited<ReturnType<typeof prepare>>[] = [];
  try {
    if (flags.steps) {
      prepared.push(await prepare(REPO, `${work}/0`, flags.arch));
      await steps(prepared[0], flags);
    } else if (flags.v8Ab) {
      prepared.push(await prepare(REPO, `${work}/0`, flags.arch));
      await v8Ab(prepared[0], flags);
    } else {
      for (const [i, v] of variants.entries()) {
        prepared.push(await prepare(v.repo, `${work}/${i}`, flags.arch));
      }
      const results: Record<string, number>[][] = variants.map(() => []);
      const boot = (i: number) =>
        bootVm({
          arch: flags.arch,
          image: prepared[i].image,
          providerPort: prepared[i].provider.port,
          timeoutMs: BOOT_TIMEOUT_MS * (flags.arch === "arm64" ? ARM64_TIMEOUT_FACTOR : 1),
          until: { target: MARKS.target, shell: /phase-seed: boot failed/ },
          watch: MARKS,
          ...(flags.icount ? { wrap: ["sh", "-c", `exec "$0" "$@" -icount shift=0`] } : {}),
          ...(flags.keptNvram ? { vars: `${work}/${i}/vars.fd` } : {}),
        });
      if (flags.keptNvram) {
        for (const [i, v] of variants.entries()) {
          await Deno.copyFile(varsTemplate({ arch: flags.arch }), `${work}/${i}/vars.fd`);
          const first = await boot(i);
          if (first.outcome !== "target") {
            throw new Error(`${v.label} first boot: ${first.outcome}`);
          }
        }
      }
      for (let r = 0; r < flags.runs; r++) {
        for (const [i, v] of variants.entries()) {
          const before = load();
          const perf = flags.profile ? await startPerf(`${work}/${i}/perf-${r}.data`) : undefined;
          let run;
          try {
            run = await boot(i);
          } finally {
            await perf?.stop();
          }
          if (flags.log) {
            await Deno.writeTextFile(
              flags.log,
              `# ${v.label} run ${r + 1}\n` +
                run.lines.map((l) => `${l.ms} ${l.text}`).join("\n") + "\n",
              { append: true },
            );
          }
          if (run.outcome !== "target") {
            throw new Error(
              `${v.label} run ${r + 1}: ${run.outcome}\n` +
                run.lines.slice(-30).map((l) => l.text).join("\n"),
            );
          }
          results[i].push(kernelStarts(run));
          if (perf) {
            const qemu = flags.arch === "arm64" ? "qemu-system-aarch64" : "qemu-system-x86_64";
            console.log(
              `\n${flags.arch}: ${v.label} run ${
                r + 1
              }, profiled (host time of the vCPU thread)\n\n` +
                await profileTable(perf.file, qemu, windows(kernelStarts(run))),
            );
          }
          console.error(
            `${v.label} run ${r + 1}/${flags.runs} (load ${before} -> ${load()}): ${
              JSON.stringify(kernelStarts(run))
            }`,
          );
        }
      }
      for (const [i, v] of variants.entries()) table(`${flags.arch}: ${v.label}`, results[i]);
    }
  } finally {
    for (const p of prepared) await p.provider.close();
    await Deno.remove(work, { recursive: true }).catch(() => {});
  }
}
