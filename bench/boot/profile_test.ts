import { assertEquals, assertThrows } from "../../testing/mod.ts";
import {
  CATEGORIES,
  type Category,
  classify,
  nearestSymbol,
  parseNm,
  parseScript,
  profile,
  qemuThreads,
  sampleSymbol,
} from "./_profile.ts";

const QEMU = "/usr/bin/qemu-system-aarch64";
const GLIB = "/usr/lib/x86_64-linux-gnu/libglib-2.0.so.0.7400.6";

// Lines as perf 6.1 prints them (`perf script --show-mmap-events -F comm,pid,tid,time,ip,sym,dso`),
// from a profiled arm64 boot; the vCPU thread is 8682, the "CPU 0/TCG" comm has spaces, and
// 7000 is another QEMU, idle at a shell, that started earlier.
const SCRIPT = `
 qemu-system-aar     0     0.000000: PERF_RECORD_MMAP2 8676/8676: [0x563100157000(0x818000) @ 0x471000 fe:00 2171096 0]: r-xp ${QEMU}
 qemu-system-aar     0     0.000000: PERF_RECORD_MMAP2 8676/8676: [0x7f0000084000(0x8d000) @ 0x1f000 fe:00 1234 0]: r-xp ${GLIB}
 deno  8600/8600  13787.300000:      55d695ea0b6b [unknown] (/usr/bin/deno)
 qemu-system-aar  7000/7003  13787.310000:      563100157000 page_collection_lock (${QEMU})
 qemu-system-aar  8676/8676  13787.340039:      563100200000 main (${QEMU})
 CPU 0/TCG  8676/8682  13787.350115:      7ff7aecfa6ec [unknown] (/tmp/perf-8676.map)
 CPU 0/TCG  8676/8682  13788.100000:      563100157000 page_collection_lock (${QEMU})
 CPU 0/TCG  8676/8682  13788.200000:      5631007b468c [unknown] (${QEMU})
 CPU 0/TCG  8676/8682  13788.300000:      7f00000a0f9f [unknown] (${GLIB})
 CPU 0/TCG  8676/8682  13789.500000:      ffffffff8a0b1c2d clear_page_erms ([kernel.kallsyms])
 CPU 0/TCG  8676/8682  13789.600000:      563100157100 qht_lookup_custom (${QEMU})
 qemu-system-aar  8676/8679  13789.700000:      563100157200 tcg_gen_code (${QEMU})
`;

// `nm -D --defined-only` of the two files, cut to the neighbours of the addresses above.
const NM_QEMU = `
0000000000ace710 T tb_htable_init
0000000000acdf30 T qmp_x_query_profile
0000000000ad3540 T page_collection_lock
`;
const NM_GLIB = `
000000000003c0a0 T g_trash_stack_height
000000000003c200 T g_string_new
`;

Deno.test("profile: parseScript keeps samples (comm with spaces) and executable file mappings", () => {
  const s = parseScript(SCRIPT);
  assertEquals(s.samples.length, 10);
  assertEquals(s.samples[3], {
    pid: 8676,
    tid: 8682,
    time: 13787.350115,
    ip: 0x7ff7aecfa6ec,
    sym: "[unknown]",
    dso: "/tmp/perf-8676.map",
  });
  assertEquals(s.mappings[0], {
    pid: 8676,
    start: 0x563100157000,
    length: 0x818000,
    pgoff: 0x471000,
    path: QEMU,
  });
});

Deno.test("profile: an unnamed address in QEMU or glib takes the exported symbol before it", () => {
  const s = parseScript(SCRIPT);
  const tables = new Map([[QEMU, parseNm(NM_QEMU)], [GLIB, parseNm(NM_GLIB)]]);
  // 0x5631007b468c - 0x563100157000 + 0x471000 = 0xace68c: a translate-all.c static.
  assertEquals(sampleSymbol(s.samples[5], s.mappings, tables), "qmp_x_query_profile");
  assertEquals(
    classify(QEMU, sampleSymbol(s.samples[5], s.mappings, tables)),
    "stores into translated pages",
  );
  // 0x7f00000a0f9f - 0x7f0000084000 + 0x1f000 = 0x3bf9f: below every listed glib symbol, so
  // it stays unnamed; with g_trash_stack_height at 0x3bf00 it is GSlice's static.
  assertEquals(sampleSymbol(s.samples[6], s.mappings, tables), "[unknown]");
  const glib = parseNm(NM_GLIB.replace("3c0a0", "3bf00"));
  assertEquals(
    sampleSymbol(s.samples[6], s.mappings, new Map([[GLIB, glib]])),
    "g_trash_stack_height",
  );
  // Without a symbol table the name stays unknown and the sample counts as "other".
  assertEquals(sampleSymbol(s.samples[5], s.mappings, new Map()), "[unknown]");
  assertEquals(classify(QEMU, "[unknown]"), "other");
});

Deno.test("profile: nearestSymbol and parseNm (sorted, version suffix dropped)", () => {
  const t = parseNm("0000000000000200 T b@@GLIBC_2.34\n0000000000000100 T a\nnot a line\n");
  assertEquals(t.names, ["a", "b"]);
  assertEquals(nearestSymbol(t, 0xff), "");
  assertEquals(nearestSymbol(t, 0x100), "a");
  assertEquals(nearestSymbol(t, 0x1ff), "a");
  assertEquals(nearestSymbol(t, 0x5000), "b");
});

Deno.test("profile: classify sorts QEMU's work", () => {
  assertEquals(classify("[JIT] tid 8676", "[unknown]"), "guest code");
  assertEquals(classify("/tmp/perf-8676.map", "[unknown]"), "guest code");
  assertEquals(classify("[kernel.kallsyms]", "clear_page_erms"), "host kernel");
  assertEquals(classify(QEMU, "page_collection_lock"), "stores into translated pages");
  assertEquals(classify(QEMU, "tb_invalidate_phys_page_fast"), "stores into translated pages");
  assertEquals(classify(GLIB, "g_tree_lookup"), "stores into translated pages");
  assertEquals(classify(QEMU, "qht_lookup_custom"), "TB lookup");
  assertEquals(classify(QEMU, "curr_cflags"), "TB lookup");
  assertEquals(classify(QEMU, "tcg_gen_code"), "translation");
  assertEquals(classify(QEMU, "helper_le_stq_mmu"), "other memory slow paths");
  assertEquals(classify(QEMU, "tlb_set_dirty"), "other memory slow paths");
  assertEquals(classify(QEMU, "virtio_queue_notify"), "other");
});

Deno.test("profile: windows count only the vCPU thread's samples, timed from QEMU's first", () => {
  const s = parseScript(SCRIPT);
  const q = qemuThreads(s.samples, QEMU);
  assertEquals(q, { pid: 8676, start: 13787.340039, vcpu: 8682 });
  const tables = new Map([[QEMU, parseNm(NM_QEMU)]]);
  const [early, late, all] = profile(s, q, tables, [
    { name: "early", fromMs: 0, toMs: 1000 },
    { name: "late", fromMs: 1000, toMs: 3000 },
    { name: "all", fromMs: 0, toMs: 3000 },
  ]);
  const zero = Object.fromEntries(CATEGORIES.map((c) => [c, 0])) as Record<Category, number>;
  // 10 ms: JIT; 760 ms: page_collection_lock; 860 ms: the translate-all.c static;
  // 960 ms: glib without a table. The deno sample, the idle QEMU and the booting QEMU's
  // other threads do not count.
  assertEquals(early, {
    ...zero,
    "guest code": 1,
    "stores into translated pages": 2,
    other: 1,
  });
  assertEquals(late, { ...zero, "host kernel": 1, "TB lookup": 1 });
  assertEquals(Object.values(all).reduce((a, b) => a + b, 0), 6);
});

Deno.test("profile: a profile without QEMU is an error", () => {
  assertThrows(
    () =>
      qemuThreads(
        parseScript(SCRIPT).samples.filter((s) => s.pid !== 7000 && s.pid !== 8676),
        QEMU,
      ),
    Error,
    "no sample in",
  );
});
