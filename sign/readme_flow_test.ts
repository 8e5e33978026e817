/**
 * Issue 11 §1: the README's release flow, exactly as written, on a fresh
 * copy of the repository: placeholder artifacts, keygen, sign, a second
 * key, add-signature, trust show, verify, then serve, fetch and floor show.
 * Two deviations, both mechanical: the port (8080 may be taken on a shared
 * machine) and the optional `[--no-mdns] [--no-dht]` flags, which the test
 * passes so that nothing leaves loopback.
 */
import { assert, assertEquals, assertMatch, tempDir } from "../testing/mod.ts";

const REPO = new URL("..", import.meta.url).pathname;
/** Longest wait for the provider's banner, in milliseconds. */
const SERVE_READY_TIMEOUT_MS = 60_000;
/** What a fresh clone does not have (and the test must not copy). */
const NOT_IN_A_CLONE = new Set([".git", ".phase", ".cache", "artifacts", "dist"]);

/** README command lines, continuation lines joined. */
function readmeLines(): string[] {
  const text = Deno.readTextFileSync(`${REPO}README.md`);
  return text.replace(/\\\n\s*/g, "").split("\n");
}

function releaseBlock(lines: string[]): string[] {
  const start = lines.findIndex((l) => l.startsWith("# releases"));
  assert(start >= 0, "README has a '# releases' block");
  const end = lines.findIndex((l, i) => i > start && l.trim() === "");
  return lines.slice(start + 1, end).filter((l) => !l.startsWith("#"));
}

function lineStarting(lines: string[], prefix: string): string {
  const l = lines.find((x) => x.startsWith(prefix));
  assert(l, `README has a line starting '${prefix}'`);
  return l;
}

async function sh(cwd: string, line: string) {
  const out = await new Deno.Command("sh", {
    args: ["-c", line],
    cwd,
    stdout: "piped",
    stderr: "piped",
  }).output();
  return {
    code: out.code,
    stdout: new TextDecoder().decode(out.stdout),
    stderr: new TextDecoder().decode(out.stderr),
  };
}

function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

Deno.test("README: the release flow as written (keygen, sign, second key, serve --no-sign, fetch, verify, floor show) works on a fresh copy", async () => {
  const dir = await tempDir("readme");
  const clone = `${dir}/phase`;
  await Deno.mkdir(clone);
  let serve: Deno.ChildProcess | undefined;
  try {
    for await (const e of Deno.readDir(REPO)) {
      if (NOT_IN_A_CLONE.has(e.name)) continue;
      const cp = await new Deno.Command("cp", { args: ["-a", `${REPO}${e.name}`, clone] }).output();
      assertEquals(cp.code, 0, new TextDecoder().decode(cp.stderr));
    }
    await Deno.remove(`${clone}/images/out`, { recursive: true }).catch(() => {});
    const lines = readmeLines();
    for (const line of releaseBlock(lines)) {
      const r = await sh(clone, line);
      assertEquals(r.code, 0, `${line}\n${r.stdout}${r.stderr}`);
      assert(!/error:/.test(r.stderr), `${line}\n${r.stderr}`);
    }

    const port = String(freePort());
    const serveLine = lineStarting(lines, "deno task serve --root ./artifacts")
      .replace(/\s+#.*$/, "").replace(/\[(--[a-z-]+)\]/g, "$1").replace(/\b8080\b/g, port);
    const serveArgs = serveLine.split(/\s+/).slice(3);
    const serveTask = JSON.parse(await Deno.readTextFile(`${clone}/deno.json`)).tasks.serve;
    // A task is a command string or { description, command }.
    const task = (typeof serveTask === "string" ? serveTask : serveTask.command) as string;
    serve = new Deno.Command("deno", {
      args: [...task.split(/\s+/).slice(1), ...serveArgs],
      cwd: clone,
      stdout: "piped",
      stderr: "null",
    }).spawn();
    const reader = serve.stdout.getReader();
    let banner = "";
    const timer = setTimeout(() => serve?.kill("SIGKILL"), SERVE_READY_TIMEOUT_MS);
    while (!banner.includes("phase-serve: ready\n")) {
      const { done, value } = await reader.read();
      if (done) break;
      banner += new TextDecoder().decode(value);
    }
    clearTimeout(timer);
    reader.releaseLock();
    serve.stdout.cancel().catch(() => {});
    // The release the user signed, not one the provider versioned itself.
    assertMatch(banner, /stable\/amd64 2026\.11\.20 \(pre-signed\)/);

    const fetchLine = lineStarting(lines, "deno task fetch --manifest http://127.0.0.1:8080/")
      .replace(/\s+#.*$/, "").replace(/\b8080\b/g, port);
    const f = await sh(clone, fetchLine);
    assertEquals(f.code, 0, `${fetchLine}\n${f.stdout}${f.stderr}`);
    const result = JSON.parse(f.stdout.trim().split("\n").at(-1)!);
    assertEquals([result.version, result.floor.current], ["2026.11.20", "2026.11.20"]);

    const floor = await sh(clone, lineStarting(lines, "deno task floor show"));
    assertEquals(floor.code, 0, floor.stderr);
    assertMatch(floor.stdout, /stable\/amd64 +2026\.11\.20/);
  } finally {
    if (serve) {
      try {
        serve.kill("SIGTERM");
      } catch { /* gone */ }
      await serve.status;
    }
    await Deno.remove(dir, { recursive: true });
  }
});
