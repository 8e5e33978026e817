import {
  humanSeconds,
  PROGRESS_INTERVAL_MS,
  progressReporter,
  TTY_REDRAW_INTERVAL_MS,
} from "./progress.ts";
import { assert, assertEquals } from "../testing/mod.ts";

const MiB = 1024 * 1024;

/** The text of the last drawn bar, without the cursor codes. */
function lastBar(out: string[]): string {
  const s = out.join("");
  const i = s.lastIndexOf("\r\x1b[K");
  return s.slice(i + 4);
}

Deno.test("progress: JSON lines off a TTY (bytes, totals, rate, ETA), throttled to one a second", () => {
  const out: string[] = [];
  let t = 0;
  const p = progressReporter({ tty: false, write: (s) => out.push(s), now: () => t });
  p.start("kernel", 1000);
  t = 1000;
  p.update("kernel", 250);
  t = 1500;
  p.update("kernel", 400); // within the interval: not reported
  t = 1000 + PROGRESS_INTERVAL_MS;
  p.update("kernel", 500);
  p.finish("kernel", { cached: false, sources: [] });
  const lines = out.map((l) => JSON.parse(l));
  assertEquals(lines.map((l) => l.bytes), [250, 500, 1000]);
  assertEquals(lines[0].rate_bps, 250);
  assertEquals(lines[0].eta_s, 3);
  assertEquals(lines[2].transferred_bytes, 1000);
  assert(lines.every((l) => l.event === "progress" && l.artifact === "kernel" && l.size === 1000));
});

Deno.test("progress: on a TTY one bar for the whole release: bytes done / total across artifacts, rate, ETA, fitted to the width", () => {
  const out: string[] = [];
  let t = 0;
  const p = progressReporter({
    tty: true,
    write: (s) => out.push(s),
    now: () => t,
    columns: () => 100,
  });
  p.plan!([{ name: "kernel", size: 2 * MiB }, { name: "rootfs", size: 6 * MiB }]);
  p.start("kernel", 2 * MiB);
  t = 1000;
  p.update("kernel", 1 * MiB);
  const first = lastBar(out);
  // 1 of 8 MiB in 1 s: 12%, 1 MiB/s, 7 MiB left: ETA 7 s.
  assertEquals(
    first,
    `[${"#".repeat(4)}${
      "-".repeat(31)
    }]  12%    1.0 MiB / 8.0 MiB    1.0 MiB/s  ETA 7 s  kernel (1/2)`,
  );
  assertEquals(first.length, 100 - 1); // the whole width but the cursor's column
  t = 1000 + TTY_REDRAW_INTERVAL_MS / 2; // within the redraw interval: nothing drawn
  const n = out.length;
  p.update("kernel", 1.5 * MiB);
  assertEquals(out.length, n);
  t = 2000;
  p.update("kernel", 2 * MiB);
  p.finish("kernel", { cached: false, sources: [] });
  // Not the end of the release: the line stays open, no newline yet.
  assert(!out.join("").includes("\n"), JSON.stringify(out));
  p.start("rootfs", 6 * MiB);
  t = 4000; // more than TTY_REDRAW_INTERVAL_MS after the last redraw
  p.update("rootfs", 4 * MiB);
  assert(lastBar(out).includes(" 75%    6.0 MiB / 8.0 MiB  "), lastBar(out));
  assert(lastBar(out).endsWith("1.5 MiB/s  ETA 2 s  rootfs (2/2)"), lastBar(out));
  t += 1000;
  p.update("rootfs", 6 * MiB);
  p.finish("rootfs", { cached: false, sources: [] });
  const done = out.join("");
  assert(
    done.endsWith("100%    8.0 MiB / 8.0 MiB    1.6 MiB/s  done in 5 s  rootfs (2/2)\n"),
    JSON.stringify(done.slice(-120)),
  );
  assertEquals(done.split("\n").length, 2); // one line for the whole release
});

Deno.test("progress: a narrow terminal gets the text without a bar, cut to the width", () => {
  const out: string[] = [];
  let t = 0;
  const p = progressReporter({
    tty: true,
    write: (s) => out.push(s),
    now: () => t,
    columns: () => 40,
  });
  p.start("rootfs", 4 * MiB);
  t = 1000;
  p.update("rootfs", 1 * MiB);
  const line = lastBar(out);
  assertEquals(line.length, 39);
  assert(line.startsWith(" 25%    1.0 MiB / 4.0 MiB"), line);
  assert(!line.includes("["), line);
});

Deno.test("progress: after a resume, rate and ETA count only the bytes transferred in this run", () => {
  const out: string[] = [];
  let t = 0;
  const p = progressReporter({ tty: false, write: (s) => out.push(s), now: () => t });
  p.plan!([{ name: "kernel", size: 1000 * MiB }]);
  p.start("kernel", 1000 * MiB);
  t = 500; // re-hashing the 800 MiB prefix: not transfer time
  p.present!("kernel", 800 * MiB);
  t = 500 + 2000;
  p.update("kernel", 840 * MiB); // 40 MiB in 2 s: 20 MiB/s, not 420 MiB/s
  const line = JSON.parse(out.at(-1)!);
  assertEquals(line.total_bytes, 840 * MiB);
  assertEquals(line.transferred_bytes, 40 * MiB);
  assertEquals(line.rate_bps, 20 * MiB);
  assertEquals(line.eta_s, 8); // 160 MiB left at 20 MiB/s
  // A cache hit is done at once and takes no transfer time.
  const out2: string[] = [];
  let t2 = 0;
  const q = progressReporter({ tty: false, write: (s) => out2.push(s), now: () => t2 });
  q.plan!([{ name: "kernel", size: 100 }, { name: "rootfs", size: 1000 }]);
  q.start("kernel", 100);
  t2 = 5000; // a slow re-hash of the cached file
  q.present!("kernel", 100);
  q.update("kernel", 100);
  q.finish("kernel", { cached: true, sources: [] });
  q.start("rootfs", 1000);
  t2 = 7000;
  q.update("rootfs", 500);
  const l2 = JSON.parse(out2.at(-1)!);
  assertEquals([l2.transferred_bytes, l2.rate_bps, l2.total_bytes], [500, 250, 600]);
  // A restart from 0 (a digest mismatch) drops the prefix; what comes again is transfer.
  q.update("rootfs", 0);
  q.update("rootfs", 100);
  assertEquals(q.snapshot().transferred, 600);
});

Deno.test("progress: log lines step the bar aside; close ends an open bar before an error", () => {
  const out: string[] = [];
  let t = 0;
  const p = progressReporter({
    tty: true,
    write: (s) => out.push(s),
    now: () => t,
    columns: () => 80,
  });
  p.start("kernel", 100);
  t = 1000;
  p.update("kernel", 50);
  const bar = lastBar(out);
  p.aside(() => out.push("phase-fetch: info: resume\n"));
  assertEquals(out.slice(-3), ["\r\x1b[K", "phase-fetch: info: resume\n", `\r\x1b[K${bar}`]);
  p.close();
  assertEquals(out.at(-1), "\n");
  p.close(); // already closed: nothing more
  assertEquals(out.at(-1), "\n");
  assertEquals(out.filter((s) => s === "\n").length, 1);
});

Deno.test("progress: durations read as seconds, minutes, hours", () => {
  assertEquals(
    [humanSeconds(0.2), humanSeconds(59), humanSeconds(65), humanSeconds(3725)],
    ["1 s", "59 s", "1 min 05 s", "1 h 02 min"],
  );
});
