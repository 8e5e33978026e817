import { assert, assertEquals } from "./assert.ts";
import { readUntil } from "./output.ts";

/** A child running `sh -c script` with its stdout piped. */
function sh(script: string): Deno.ChildProcess {
  return new Deno.Command("sh", { args: ["-c", script], stdout: "piped", stderr: "null" }).spawn();
}

Deno.test("readUntil: finds what the child prints, then drains the rest so the child never blocks", async () => {
  // 256 KiB after the banner: more than a pipe holds, so the child exits only if drained.
  const child = sh(
    "echo starting; sleep 0.1; echo 'listening /ip4/127.0.0.1/tcp/9'; head -c 262144 /dev/zero",
  );
  const r = await readUntil(child.stdout, (s) => /listening (\S+)/.exec(s)?.[1], 10_000);
  assertEquals(r.found, "/ip4/127.0.0.1/tcp/9");
  assert(r.seen.startsWith("starting\n"), r.seen);
  assertEquals((await child.status).code, 0);
});

Deno.test("readUntil: a silent child cannot hold the caller past the deadline; the stream is handed back", async () => {
  const child = sh("sleep 30");
  const t0 = performance.now();
  const r = await readUntil(child.stdout, (s) => s || undefined, 300, { then: "release" });
  const waited = performance.now() - t0;
  assertEquals(r.found, undefined);
  assert(waited < 5_000, `returned after ${waited} ms`);
  child.kill("SIGKILL");
  await child.status;
  await child.stdout.cancel();
});

Deno.test("readUntil: a stream that ends first gives what it saw and nothing found", async () => {
  const child = sh("printf 'no banner here'");
  const r = await readUntil(child.stdout, (s) => s.includes("ready") || undefined, 10_000);
  assertEquals(r, { found: undefined, seen: "no banner here" });
  await child.status;
});
