import {
  deepStrictEqual as assertEquals,
  match as assertMatch,
  ok as assert,
} from "node:assert/strict";

/** This repository's wasm/mod.ts, as another project on this machine imports it. */
const MOD = new URL("./mod.ts", import.meta.url).pathname;
const REPO = new URL("..", import.meta.url).pathname;
/** Longest the outside script may take, in milliseconds. */
const RUN_TIMEOUT_MS = 60_000;

const SCRIPT = `import { helloWasmPath, runJob, WasmError } from ${JSON.stringify(MOD)};
try {
  const r = await runJob({
    module: await Deno.readFile(helloWasmPath()),
    input: new TextEncoder().encode("Hello, World"),
  });
  console.log(JSON.stringify({ outcome: r.outcome, stdout: new TextDecoder().decode(r.stdout) }));
} catch (err) {
  if (!(err instanceof WasmError)) throw err;
  console.log(JSON.stringify({ code: err.code, message: err.message, hint: err.hint }));
}
`;

async function outside(config: unknown): Promise<{ code: number; out: Record<string, string> }> {
  await Deno.mkdir("/tmp/phase", { recursive: true });
  const dir = await Deno.makeTempDir({ dir: "/tmp/phase", prefix: "outside-" });
  try {
    await Deno.writeTextFile(`${dir}/deno.json`, JSON.stringify(config));
    await Deno.writeTextFile(`${dir}/main.ts`, SCRIPT);
    const p = await new Deno.Command("deno", {
      args: ["run", "-q", "--no-prompt", `--allow-read=${dir},${REPO}`, "main.ts"],
      cwd: dir,
      stdout: "piped",
      stderr: "piped",
      signal: AbortSignal.timeout(RUN_TIMEOUT_MS),
    }).output();
    const stdout = new TextDecoder().decode(p.stdout);
    const stderr = new TextDecoder().decode(p.stderr);
    assert(stdout.trim() !== "", `no output (exit ${p.code}): ${stderr}`);
    return { code: p.code, out: JSON.parse(stdout) };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("wasm from another project: with worker-options in its deno.json the hello job runs", async () => {
  const r = await outside({ unstable: ["worker-options"] });
  assertEquals([r.code, r.out], [0, { outcome: "ok", stdout: "dlroW ,olleH" }]);
});

Deno.test("TM-16 hostile WASM job: from a project without worker-options, runJob refuses with a clear error (never a sandbox without its permission set)", async () => {
  const r = await outside({});
  assertEquals(r.code, 0, "the process lives on and can handle the error");
  assertEquals(r.out.code, "E_RUNTIME");
  assertMatch(r.out.message, /worker-options/);
  assertMatch(r.out.hint, /add "unstable": \["worker-options"\] to \/tmp\/phase\/.*\/deno\.json/);
});
