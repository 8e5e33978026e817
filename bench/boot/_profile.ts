/**
 * `boot_bench.ts --profile`: where the emulator's host time goes in each
 * phase of a boot. Under TCG the guest's one vCPU is a host thread; `perf
 * record -a` samples it (and everything else) while the guest boots, and
 * each phase's samples of that thread are sorted into what QEMU was doing:
 * running translated guest code, finding the next translation block,
 * translating, handling guest stores into memory that still holds
 * translations (QEMU 7.2's `notdirty_write` -> `page_collection_lock` ->
 * `tb_invalidate_phys_page_fast` path, taken for every store until the
 * page's last translation is gone), other memory slow paths (TLB fills,
 * MMIO), the host kernel (mostly first touches of guest RAM and of the
 * code buffer), or other work.
 *
 * Debian's QEMU is stripped of static symbols; an address without a name
 * is attributed to the nearest exported symbol before it (statics sit in
 * their source file, between that file's exported functions), so the
 * split is approximate at the edges. Profiled boots run 10-20% slower
 * (perf shares the host's two cores): compare their shares, not their
 * totals, with unprofiled boots.
 *
 * @module
 */

/** CPU time between two samples of `perf record -c` (cpu-clock), in nanoseconds: 1 ms. */
export const PROFILE_PERIOD_NS = 1_000_000;
/** Time given to perf to start recording before QEMU starts, in milliseconds. */
export const PERF_START_MS = 1_500;
/** Bound of perf writing its file after SIGINT, in milliseconds. */
export const PERF_STOP_MS = 120_000;
/** Bound of one `perf script` / `nm` run, in milliseconds. */
export const PERF_TOOL_MS = 300_000;
/** Largest output kept from one perf or nm run, in bytes. */
export const MAX_TOOL_OUTPUT_BYTES = 512 * 1024 * 1024;

/** What the vCPU thread was doing in a sample. */
export type Category =
  | "guest code"
  | "TB lookup"
  | "translation"
  | "stores into translated pages"
  | "other memory slow paths"
  | "host kernel"
  | "other";

/** The categories in table order. */
export const CATEGORIES: readonly Category[] = [
  "guest code",
  "TB lookup",
  "translation",
  "stores into translated pages",
  "other memory slow paths",
  "host kernel",
  "other",
];

/** Exported QEMU/glib symbols (or the symbol before a static) per category, first match wins. */
const RULES: readonly [RegExp, Category][] = [
  // The write-protection slow path of pages holding translations (cputlb.c notdirty_write,
  // translate-all.c: exported, and the statics between qmp_x_query_profile and
  // tb_htable_init, which call page_find_alloc) and glib's GTree that
  // page_collection_lock builds on each call (GSlice: glib's statics after g_trash_stack_*).
  [
    /^(page_collection_(un)?lock|page_find_alloc|page_(un)?lock|tb_invalidate_phys|tb_phys_invalidate|notdirty|tlb_reset_dirty|tlb_unprotect_code|qht_remove|g_tree_|g_slice_|g_trash_stack|qmp_x_query_profile)/,
    "stores into translated pages",
  ],
  // accel/tcg/cpu-exec.c (the statics after curr_cflags: helper_lookup_tb_ptr's inlined
  // lookup) and the TB hash table.
  [
    /^(qht_lookup|tb_htable_lookup|tcg_flush_jmp_cache|get_page_addr_code|cpu_exec|curr_cflags|helper_lookup_tb_ptr|tb_lookup)/,
    "TB lookup",
  ],
  [
    /^(tcg_|tb_gen_code|translator_|gen_intermediate_code|i386_tr_|aarch64_tr_|arm_tr_|disas_|gen_)/,
    "translation",
  ],
  // cputlb.c: TLB fills and flushes, the load/store helpers' slow paths (the statics between
  // plugin_gen_tb_end and tlb_init are cputlb.c's), and MMIO dispatch.
  [
    /^(tlb_|helper_(le|be|ret)_(ld|st)|helper_(ld|st)|plugin_gen_tb_end|address_space_|memory_region_|flatview_|probe_access|x86_cpu_tlb_fill|arm_cpu_tlb_fill|get_phys_addr)/,
    "other memory slow paths",
  ],
];

/** The category of one sample: its DSO and its (resolved) symbol. */
export function classify(dso: string, sym: string): Category {
  if (/^\[JIT\]|perf-\d+\.map/.test(dso)) return "guest code";
  if (dso.includes("kernel.kallsyms")) return "host kernel";
  for (const [re, c] of RULES) if (re.test(sym)) return c;
  return "other";
}

/** Exported symbols of a binary, sorted by address. */
export interface SymbolTable {
  readonly addrs: readonly number[];
  readonly names: readonly string[];
}

/** Parses `nm -D --defined-only` output ("ADDR TYPE NAME" lines). */
export function parseNm(text: string): SymbolTable {
  const rows: [number, string][] = [];
  for (const line of text.split("\n")) {
    const m = /^([0-9a-f]+) [A-Za-z] (\S+)$/.exec(line.trim());
    if (m) rows.push([parseInt(m[1], 16), m[2].replace(/@.*$/, "")]);
  }
  rows.sort((a, b) => a[0] - b[0]);
  return { addrs: rows.map((r) => r[0]), names: rows.map((r) => r[1]) };
}

/** The name of the exported symbol at or before `addr` (a static's file neighbour), or "". */
export function nearestSymbol(t: SymbolTable, addr: number): string {
  let lo = 0, hi = t.addrs.length - 1, found = -1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (t.addrs[mid] <= addr) {
      found = mid;
      lo = mid + 1;
    } else hi = mid - 1;
  }
  return found < 0 ? "" : t.names[found];
}

/** One sample of `perf script -F comm,pid,tid,time,ip,sym,dso`. */
export interface Sample {
  readonly pid: number;
  readonly tid: number;
  /** perf time, in seconds. */
  readonly time: number;
  readonly ip: number;
  readonly sym: string;
  readonly dso: string;
}

/** An executable mapping of a file (`PERF_RECORD_MMAP2` with `r-xp`). */
export interface Mapping {
  readonly pid: number;
  readonly start: number;
  readonly length: number;
  readonly pgoff: number;
  readonly path: string;
}

/** The samples and executable file mappings of `perf script --show-mmap-events` output. */
export interface Script {
  readonly samples: readonly Sample[];
  readonly mappings: readonly Mapping[];
}

const SAMPLE_RE = /^\s*(\S.*?)\s+(\d+)\/(\d+)\s+([\d.]+):\s+([0-9a-f]+)\s+(.*?)\s+\((.*)\)\s*$/;
const MMAP_RE =
  /PERF_RECORD_MMAP2? (\d+)\/\d+: \[0x([0-9a-f]+)\(0x([0-9a-f]+)\) @ 0x([0-9a-f]+)[^\]]*\]: r-xp (\/\S+)/;

/** Parses `perf script --show-mmap-events -F comm,pid,tid,time,ip,sym,dso` output. */
export function parseScript(text: string): Script {
  const samples: Sample[] = [];
  const mappings: Mapping[] = [];
  for (const line of text.split("\n")) {
    const mm = MMAP_RE.exec(line);
    if (mm) {
      mappings.push({
        pid: Number(mm[1]),
        start: parseInt(mm[2], 16),
        length: parseInt(mm[3], 16),
        pgoff: parseInt(mm[4], 16),
        path: mm[5],
      });
      continue;
    }
    const m = SAMPLE_RE.exec(line);
    if (!m) continue;
    samples.push({
      pid: Number(m[2]),
      tid: Number(m[3]),
      time: Number(m[4]),
      ip: parseInt(m[5], 16),
      sym: m[6],
      dso: m[7],
    });
  }
  return { samples, mappings };
}

/**
 * The name a sample is classified by: its symbol, or for an unnamed
 * address in a file with a symbol table in `tables` (QEMU and glib,
 * stripped of statics) the exported symbol before it (their text
 * segments' addresses equal their file offsets, as in Debian's builds).
 */
export function sampleSymbol(
  s: Sample,
  maps: readonly Mapping[],
  tables: ReadonlyMap<string, SymbolTable>,
): string {
  const t = tables.get(s.dso);
  if (s.sym !== "[unknown]" || !t) return s.sym;
  const m = maps.find((m) =>
    m.pid === s.pid && m.path === s.dso && s.ip >= m.start && s.ip < m.start + m.length
  );
  return m ? nearestSymbol(t, s.ip - m.start + m.pgoff) || s.sym : s.sym;
}

/** QEMU's process in a profile: its first sample (QEMU's start) and its busiest thread. */
export interface QemuThreads {
  readonly pid: number;
  /** perf time (s) of the process's first sample: QEMU's start, to about a millisecond. */
  readonly start: number;
  /** The thread with the most samples: the TCG vCPU. */
  readonly vcpu: number;
}

/**
 * Finds the booting QEMU (the process with the most samples in `binary`:
 * another, idle QEMU on the host does not count) and its vCPU thread.
 */
export function qemuThreads(samples: readonly Sample[], binary: string): QemuThreads {
  const inBinary = new Map<number, number>();
  for (const s of samples) {
    if (s.dso === binary) inBinary.set(s.pid, (inBinary.get(s.pid) ?? 0) + 1);
  }
  if (!inBinary.size) throw new Error(`the profile holds no sample in ${binary}`);
  const pid = [...inBinary.entries()].sort((a, b) => b[1] - a[1])[0][0];
  let start = Infinity;
  const counts = new Map<number, number>();
  for (const s of samples) {
    if (s.pid !== pid) continue;
    start = Math.min(start, s.time);
    counts.set(s.tid, (counts.get(s.tid) ?? 0) + 1);
  }
  const vcpu = [...counts.entries()].sort((a, b) => b[1] - a[1])[0][0];
  return { pid, start, vcpu };
}

/** One phase to profile, in milliseconds after QEMU's start. */
export interface ProfileWindow {
  readonly name: string;
  readonly fromMs: number;
  readonly toMs: number;
}

/** Per window: the samples of `q`'s vCPU thread ({@link qemuThreads}) by {@link Category}. */
export function profile(
  script: Script,
  q: QemuThreads,
  tables: ReadonlyMap<string, SymbolTable>,
  windows: readonly ProfileWindow[],
): Record<Category, number>[] {
  // `perf record -a` maps every process's files; only QEMU's resolve its samples.
  const maps = script.mappings.filter((m) => m.pid === q.pid);
  const out = windows.map(() =>
    Object.fromEntries(CATEGORIES.map((c) => [c, 0])) as Record<Category, number>
  );
  for (const s of script.samples) {
    if (s.tid !== q.vcpu) continue;
    const ms = (s.time - q.start) * 1000;
    let c: Category | undefined;
    windows.forEach((w, i) => {
      if (ms < w.fromMs || ms >= w.toMs) return;
      c ??= classify(s.dso, sampleSymbol(s, maps, tables));
      out[i][c]++;
    });
  }
  return out;
}

/** Runs a tool under {@link PERF_TOOL_MS}; its stdout past {@link MAX_TOOL_OUTPUT_BYTES} is an error. */
async function tool(argv: string[]): Promise<string> {
  const child = new Deno.Command(argv[0], {
    args: argv.slice(1),
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const timer = setTimeout(() => child.kill("SIGKILL"), PERF_TOOL_MS);
  const stderr = new Response(child.stderr).text();
  try {
    const chunks: Uint8Array[] = [];
    let total = 0;
    for await (const c of child.stdout) {
      total += c.length;
      if (total > MAX_TOOL_OUTPUT_BYTES) {
        child.kill("SIGKILL");
        throw new Error(`${argv.join(" ")}: more than ${MAX_TOOL_OUTPUT_BYTES} bytes of output`);
      }
      chunks.push(c);
    }
    const status = await child.status;
    if (!status.success) throw new Error(`${argv.join(" ")}: ${(await stderr).slice(0, 2000)}`);
    const bytes = new Uint8Array(total);
    let o = 0;
    for (const c of chunks) {
      bytes.set(c, o);
      o += c.length;
    }
    return new TextDecoder().decode(bytes);
  } finally {
    clearTimeout(timer);
    await stderr.catch(() => "");
  }
}

/** A running `perf record -a`; `stop()` ends it and waits for its file. */
export interface PerfRecording {
  readonly file: string;
  stop(): Promise<void>;
}

/** Starts `perf record -a` into `file` and waits {@link PERF_START_MS} for it to record. */
export async function startPerf(file: string): Promise<PerfRecording> {
  const child = new Deno.Command("perf", {
    args: ["record", "-a", "-q", "-e", "cpu-clock", "-c", String(PROFILE_PERIOD_NS), "-o", file],
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const done = child.output();
  const early = await Promise.race([
    done,
    new Promise<undefined>((r) => setTimeout(() => r(undefined), PERF_START_MS)),
  ]);
  if (early) {
    throw new Error(
      `perf record exited at once (${early.code}): ${new TextDecoder().decode(early.stderr)}\n` +
        "hint: apt-get install linux-perf; sampling every CPU needs root or kernel.perf_event_paranoid <= -1",
    );
  }
  return {
    file,
    async stop() {
      child.kill("SIGINT");
      const timer = setTimeout(() => child.kill("SIGKILL"), PERF_STOP_MS);
      try {
        await done;
      } finally {
        clearTimeout(timer);
      }
    },
  };
}

/**
 * The markdown table of a recorded boot: per window, the vCPU thread's
 * host seconds, how busy it was, and its split by {@link Category}.
 */
export async function profileTable(
  file: string,
  qemu: string,
  windows: readonly ProfileWindow[],
): Promise<string> {
  const binary = (await tool(["sh", "-c", `command -v ${qemu}`])).trim();
  const script = parseScript(
    await tool([
      "perf",
      "script",
      "-i",
      file,
      "--show-mmap-events",
      "-F",
      "comm,pid,tid,time,ip,sym,dso",
    ]),
  );
  // Symbol tables of the files whose unnamed addresses the vCPU thread ran (QEMU, glib).
  const q = qemuThreads(script.samples, binary);
  const tables = new Map<string, SymbolTable>();
  for (const s of script.samples) {
    if (s.tid !== q.vcpu || s.sym !== "[unknown]" || !s.dso.startsWith("/") || tables.has(s.dso)) {
      continue;
    }
    if (!script.mappings.some((m) => m.path === s.dso)) continue;
    tables.set(s.dso, parseNm(await tool(["nm", "-D", "--defined-only", s.dso])));
  }
  const counts = profile(script, q, tables, windows);
  const perSecond = 1e9 / PROFILE_PERIOD_NS;
  const lines = [
    `| phase | s | vCPU busy | ${CATEGORIES.join(" | ")} |`,
    `|---|---:|---:|${CATEGORIES.map(() => "---:").join("|")}|`,
  ];
  windows.forEach((w, i) => {
    const by = counts[i];
    const total = CATEGORIES.reduce((s, c) => s + by[c], 0);
    const seconds = (w.toMs - w.fromMs) / 1000;
    const pct = (n: number) => total ? `${Math.round((100 * n) / total)}%` : "-";
    lines.push(
      `| ${w.name} | ${seconds.toFixed(1)} | ${
        Math.round((100 * total) / (seconds * perSecond))
      }% | ${CATEGORIES.map((c) => pct(by[c])).join(" | ")} |`,
    );
  });
  return lines.join("\n");
}
