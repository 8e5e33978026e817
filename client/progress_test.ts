import { progressReporter } from "./progress.ts";
import { assert, assertEquals } from "../testing/mod.ts";

Deno.test("progress: JSON lines off a TTY (bytes, rate, ETA), throttled to one a second", () => {
  const out: string[] = [];
  let t = 0;
  const p = progressReporter({ tty: false, write: (s) => out.push(s), now: () => t });
  p.start("kernel", 1000);
  t = 1000;
  p.update("kernel", 250);
  t = 1500;
  p.update("kernel", 400); // within the interval: not reported
  t = 2000;
  p.update("kernel", 500);
  p.finish("kernel", { cached: false, sources: [] });
  const lines = out.map((l) => JSON.parse(l));
  assertEquals(lines.map((l) => l.bytes), [250, 500, 1000]);
  assertEquals(lines[0].rate_bps, 250);
  assertEquals(lines[0].eta_s, 3);
  assert(lines.every((l) => l.event === "progress" && l.artifact === "kernel" && l.size === 1000));
});

Deno.test("progress: one updating line per artifact on a TTY", () => {
  const out: string[] = [];
  let t = 0;
  const p = progressReporter({ tty: true, write: (s) => out.push(s), now: () => t });
  p.start("rootfs", 4 * 1024 * 1024);
  t = 1000;
  p.update("rootfs", 1024 * 1024);
  p.finish("rootfs", { cached: false, sources: [] });
  assertEquals(out[0], "\r\x1b[Krootfs: 1.0 MiB / 4.0 MiB (25%) 1.0 MiB/s ETA 3 s");
  assert(out[1].endsWith("(100%) 4.0 MiB/s ETA 0 s\n"), JSON.stringify(out[1]));
});
