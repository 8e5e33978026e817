import { assert, assertEquals } from "../testing/mod.ts";
import { permissionTable, unstableFeatures } from "../cli/mod.ts";
import { permissionFlags, seedRunArgs } from "./launcher.ts";
import { bundledPath, EXTRA_BUNDLES, SEED_V8_FLAGS } from "./_seed.ts";

async function exists(p: string): Promise<boolean> {
  try {
    await Deno.stat(p);
    return true;
  } catch {
    return false;
  }
}

Deno.test("job worker: the phase-wasm bundle runs a job with only the .js worker beside it, under the seed's V8 flags for wasm (issue 17)", async () => {
  await Deno.mkdir("/tmp/phase", { recursive: true });
  const dir = await Deno.makeTempDir({ dir: "/tmp/phase", prefix: "wasm-bundle-test-" });
  try {
    const repo = new URL("..", import.meta.url).pathname;
    const bundle = async (entry: string, out: string) => {
      const r = await new Deno.Command(Deno.execPath(), {
        args: ["bundle", "-q", "--no-remote", "--platform", "deno", "-o", out, entry],
        cwd: repo,
        stdout: "null",
        stderr: "piped",
      }).output();
      assert(r.success, new TextDecoder().decode(r.stderr));
    };
    await Deno.mkdir(`${dir}/wasm/examples`, { recursive: true });
    // As the seed build lays them out (images/_seed.ts): the entrypoint's
    // bundle, and each run-time module under its bundledPath.
    await bundle("wasm/main.ts", `${dir}/wasm/wasm.js`);
    for (const extra of EXTRA_BUNDLES) await bundle(extra, `${dir}/${bundledPath(extra)}`);
    assertEquals(await exists(`${dir}/wasm/_worker.ts`), false);
    await Deno.copyFile(`${repo}wasm/examples/hello.wasm`, `${dir}/wasm/examples/hello.wasm`);
    const r = await new Deno.Command(Deno.execPath(), {
      args: [
        // As phase-wasm runs on the seed: no JavaScript tiers, WebAssembly kept.
        ...seedRunArgs(SEED_V8_FLAGS.wasm),
        ...[...unstableFeatures()].map((u) => `--unstable-${u}`),
        // The wasm set, scoped as a seed launcher scopes it.
        ...permissionFlags(permissionTable().get("wasm")!, dir),
        `${dir}/wasm/wasm.js`,
        "postboot",
        "--private",
      ],
      env: { DENO_DIR: `${dir}/deno` },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const out = new TextDecoder().decode(r.stdout) + new TextDecoder().decode(r.stderr);
    assert(r.success, out);
    assert(/phase-wasm: /.test(out), out);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
