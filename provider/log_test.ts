import { assert, assertEquals } from "../testing/mod.ts";
import { bufferedJsonLogger, LOG_BUFFER_BYTES, LOG_FLUSH_MS, LOG_PENDING_CHARS } from "./log.ts";

function sink() {
  const writes: Uint8Array[] = [];
  return {
    writes,
    write: (b: Uint8Array) => writes.push(b),
    text: () => writes.map((w) => new TextDecoder().decode(w)).join(""),
  };
}

Deno.test("provider log: info lines are batched, warnings flush at once and in order, bytes are exact UTF-8", async () => {
  const s = sink();
  const log = bufferedJsonLogger("serve", s.write);
  log.raw('{"a":1}\n');
  log.info("access", { path: "/café/😀" });
  assertEquals(s.writes.length, 0);
  log.warn("path_rejected", { path: "/../x" });
  assertEquals(s.writes.length, 1);
  const lines = s.text().trimEnd().split("\n").map((l) => JSON.parse(l));
  assertEquals(lines.map((l) => l.event ?? l.a), [1, "access", "path_rejected"]);
  assertEquals(lines[1].path, "/café/😀");
  // Info alone is written by the timer.
  log.raw('{"b":2}\n');
  await new Promise((r) => setTimeout(r, LOG_FLUSH_MS * 3));
  assertEquals(s.writes.length, 2);
  assertEquals(s.text().endsWith('{"b":2}\n'), true);
  log.close();
});

Deno.test("provider log: many lines across batch boundaries and one line longer than the buffer arrive whole", () => {
  const s = sink();
  const log = bufferedJsonLogger("serve", s.write);
  const want: string[] = [];
  for (let i = 0; i < 5000; i++) {
    const line = JSON.stringify({ i, path: i % 7 === 0 ? `/ü/${"é".repeat(i % 50)}` : `/p/${i}` }) +
      "\n";
    want.push(line);
    log.raw(line);
  }
  const long = JSON.stringify({ big: "x".repeat(LOG_BUFFER_BYTES * 2) }) + "\n";
  want.push(long);
  log.raw(long);
  log.raw('{"last":true}\n');
  want.push('{"last":true}\n');
  log.flush();
  assert(s.writes.length > 2, `${s.writes.length} writes`);
  assert(s.writes.every((w) => w.length <= LOG_BUFFER_BYTES * 3), "batches are bounded");
  assertEquals(s.text(), want.join(""));
  log.close();
});

Deno.test("provider log: waiting lines are bounded: a batch is written without the timer once half the buffer is used", () => {
  const s = sink();
  const log = bufferedJsonLogger("serve", s.write);
  const line = JSON.stringify({ event: "access", path: "/stable/amd64/manifest.json" }) + "\n";
  let sent = 0;
  let maxWaiting = 0;
  for (let i = 0; i < 20_000; i++) {
    log.raw(line);
    sent += line.length;
    const written = s.writes.reduce((n, w) => n + w.length, 0);
    maxWaiting = Math.max(maxWaiting, sent - written);
  }
  // No timer ran (all synchronous), yet nearly everything was written.
  assert(s.writes.length >= 2, `${s.writes.length} writes`);
  const bound = LOG_BUFFER_BYTES / 2 + LOG_PENDING_CHARS * 3 + line.length;
  assert(maxWaiting <= bound, `${maxWaiting} bytes waited, bound ${bound}`);
  log.close();
  assertEquals(s.text(), line.repeat(20_000));
});

Deno.test("provider log: lines still waiting are written when the program ends (Deno.exit), none lost", async () => {
  const dir = await Deno.makeTempDir({ dir: "/tmp/phase", prefix: "log-exit-" }).catch(async () => {
    await Deno.mkdir("/tmp/phase", { recursive: true });
    return Deno.makeTempDir({ dir: "/tmp/phase", prefix: "log-exit-" });
  });
  try {
    const script = `${dir}/exit.ts`;
    await Deno.writeTextFile(
      script,
      `import { bufferedJsonLogger } from ${
        JSON.stringify(new URL("./log.ts", import.meta.url).href)
      };
const log = bufferedJsonLogger("serve");
for (let i = 0; i < 1000; i++) log.raw(JSON.stringify({ i }) + "\\n");
Deno.exit(0);
`,
    );
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-q", "--no-prompt", "--no-config", "--allow-read", script],
      stdout: "piped",
      stderr: "piped",
      signal: AbortSignal.timeout(30_000),
    }).output();
    assertEquals(out.code, 0);
    const lines = new TextDecoder().decode(out.stderr).trimEnd().split("\n");
    assertEquals(lines.length, 1000);
    assertEquals(JSON.parse(lines[999]), { i: 999 });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
