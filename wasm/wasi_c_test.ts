import { deepStrictEqual as assertEquals, match as assertMatch } from "node:assert/strict";
import { resolveDirGrant, runJob } from "./runner.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();
/** Longest the clang build may take, in milliseconds. */
const CLANG_TIMEOUT_MS = 60_000;

/** Builds testdata/wasi_c.c with Debian's clang + wasi-libc (.ci/apt-packages). */
async function buildC(outDir: string): Promise<Uint8Array> {
  const src = new URL("./testdata/wasi_c.c", import.meta.url).pathname;
  const out = `${outDir}/wasi_c.wasm`;
  const r = await new Deno.Command("clang", {
    args: ["--target=wasm32-wasi", "--sysroot=/usr", "-O2", "-Wl,--strip-all", "-o", out, src],
    stderr: "piped",
    signal: AbortSignal.timeout(CLANG_TIMEOUT_MS),
  }).output();
  if (!r.success) {
    throw new Error(
      `clang failed (needs clang lld wasi-libc libclang-rt-14-dev-wasm32): ${dec.decode(r.stderr)}`,
    );
  }
  return await Deno.readFile(out);
}

Deno.test("a real wasi-libc program runs: stdio, args, environ, sleep, a file in the granted directory", async () => {
  await Deno.mkdir("/tmp/phase", { recursive: true });
  const dir = await Deno.makeTempDir({ dir: "/tmp/phase", prefix: "wasi-c-" });
  try {
    const module = await buildC(dir);
    await Deno.mkdir(`${dir}/data`);
    await Deno.writeTextFile(`${dir}/data/f.txt`, "from the granted dir");
    await Deno.writeTextFile(`${dir}/secret.txt`, "outside");
    const grant = await resolveDirGrant(`${dir}/data`);
    const ok = await runJob({
      module,
      input: enc.encode("hi there"),
      args: ["c.wasm", "/data/f.txt"],
      dir: grant,
    });
    assertEquals([ok.outcome, ok.error], ["ok", ""]);
    assertEquals(
      dec.decode(ok.stdout),
      "stdin=hi there\nargv[0]=c.wasm\nargv[1]=/data/f.txt\nenviron=0\nslept>=20ms=yes\nfile=from the granted dir\n",
    );
    assertEquals(dec.decode(ok.stderr), "done\n");
    // TM-10 through libc's own path handling: '..' out of the preopen is refused.
    const out = await runJob({
      module,
      input: new Uint8Array(0),
      args: ["c.wasm", "/data/../secret.txt"],
      dir: grant,
    });
    assertEquals([out.outcome, out.exitCode], ["exit", 3]);
    assertMatch(
      dec.decode(out.stdout),
      /open \/data\/\.\.\/secret\.txt: Capabilities insufficient/,
    );
    // Without a grant libc sees no filesystem at all.
    const none = await runJob({
      module,
      input: new Uint8Array(0),
      args: ["c.wasm", "/data/f.txt"],
    });
    assertEquals(none.exitCode, 3);
    assertMatch(dec.decode(none.stdout), /open \/data\/f\.txt: /);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
