import { DatabaseSync } from "node:sqlite";
import { assert, assertEquals } from "../testing/mod.ts";
import { permissionSet } from "../cli/mod.ts";
import { CODE_CACHE_FILES, codeCacheDir, prepareCodeCache } from "./_codecache.ts";
import { launcherScript, SEED_DENO_DIRS, SEED_ROOT, seedRunArgs } from "./launcher.ts";
import { NO_JS_TIERS_V8_FLAGS, SEED_TASKS } from "./_seed.ts";
import { permissionTable, rawTasks, resolveScope } from "../cli/mod.ts";

async function tmpDir(prefix: string): Promise<string> {
  await Deno.mkdir("/tmp/phase", { recursive: true });
  return await Deno.makeTempDir({ dir: "/tmp/phase", prefix });
}

/** The first column of every row `sql` selects from the SQLite file `db`. */
function column(db: string, sql: string): string[] {
  const d = new DatabaseSync(db, { readOnly: true });
  try {
    return (d.prepare(sql).all() as Record<string, string>[]).map((r) => Object.values(r)[0]);
  } finally {
    d.close();
  }
}

function specifiers(db: string, table: string): string[] {
  return column(db, `SELECT specifier FROM ${table} WHERE specifier LIKE 'file:%'`);
}

Deno.test("code cache (issue 17): keyed by the seed's URLs, nothing of the staging tree, byte-identical when prepared twice", async () => {
  const dir = await tmpDir("codecache-test-");
  try {
    const made: Uint8Array[][] = [];
    for (const n of [1, 2]) {
      // The staging folder differs between the two builds, as it does between image builds.
      const root = `${dir}/stage-${n}`;
      await Deno.mkdir(`${root}/client`, { recursive: true });
      await Deno.writeTextFile(
        `${root}/client/step.js`,
        "export function f(x) { return x * 2; }\nif (import.meta.main) { console.log(f(2)); Deno.exit(0); }\n",
      );
      const ok = await prepareCodeCache({
        root,
        seedRoot: "/usr/lib/phase",
        seedDeno: Deno.execPath(),
        work: `${dir}/work-${n}`,
        modules: [{ path: "client/step.js", flags: [] }],
      });
      assert(ok);
      const out = `${root}/${codeCacheDir()}`;
      assertEquals(specifiers(`${out}/v8_code_cache_v2`, "codecache"), [
        "file:///usr/lib/phase/client/step.js",
      ]);
      assertEquals(specifiers(`${out}/dep_analysis_cache_v2`, "moduleinfocache"), [
        "file:///usr/lib/phase/client/step.js",
      ]);
      made.push(await Promise.all(CODE_CACHE_FILES.map((f) => Deno.readFile(`${out}/${f}`))));
    }
    assertEquals(made[0], made[1]);
    // Another Deno on the seed (an arm64 seed built here): no cache at all, never a wrong one.
    const other = `${dir}/other-deno`;
    await Deno.writeTextFile(other, "not this deno");
    assertEquals(
      await prepareCodeCache({
        root: `${dir}/stage-1`,
        seedRoot: "/usr/lib/phase",
        seedDeno: other,
        work: `${dir}/work-3`,
        modules: [{ path: "client/step.js", flags: [] }],
      }),
      false,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/** Every row of a V8 code cache: specifier and the cached data. */
function codeCacheRows(db: string): string[] {
  return column(db, "SELECT specifier || ' ' || hex(data) FROM codecache ORDER BY specifier");
}

Deno.test("code cache (issue 17): each set of V8 flags gets its own cache, and a step run under its flags recompiles nothing, Deno's shared modules included", async () => {
  const dir = await tmpDir("codecache-v8-");
  try {
    const root = `${dir}/root`;
    await Deno.mkdir(`${root}/client`, { recursive: true });
    // Both steps load one of Deno's lazily loaded modules (node:crypto),
    // cached under the same key whichever step loads it.
    for (const step of ["chain", "service"]) {
      await Deno.writeTextFile(
        `${root}/client/${step}.js`,
        `import { createHash } from "node:crypto";\nexport const h = createHash("sha256").update("${step}").digest("hex");\nif (import.meta.main) console.log(h);\n`,
      );
    }
    const seed = `${dir}/seed`;
    assert(
      await prepareCodeCache({
        root,
        seedRoot: seed,
        seedDeno: Deno.execPath(),
        work: `${dir}/work`,
        modules: [
          { path: "client/chain.js", flags: [], v8Flags: NO_JS_TIERS_V8_FLAGS },
          { path: "client/service.js", flags: [] },
        ],
      }),
    );
    assertEquals(
      [...Deno.readDirSync(`${root}/deno-cache`)].map((e) => e.name).sort(),
      ["default", "no-opt+no-maglev+no-sparkplug"],
    );
    await Deno.rename(root, seed);
    // As a seed launcher does: a fresh DENO_DIR filled from one prepared
    // cache, the step run under some V8 flags; V8 rejects an entry made
    // under other flags and Deno then writes a new one.
    const rerun = async (step: string, v8Flags: string | undefined, cache: string) => {
      const denoDir = `${dir}/run-${step}-${crypto.randomUUID()}`;
      await Deno.mkdir(denoDir);
      for (const f of CODE_CACHE_FILES) {
        await Deno.copyFile(`${seed}/${cache}/${f}`, `${denoDir}/${f}`);
      }
      const before = codeCacheRows(`${denoDir}/v8_code_cache_v2`);
      const r = await new Deno.Command(Deno.execPath(), {
        args: [...seedRunArgs(v8Flags), `--allow-read=${seed}`, `${seed}/client/${step}.js`],
        env: { DENO_DIR: denoDir, DENO_NO_UPDATE_CHECK: "1" },
        stdout: "null",
        stderr: "piped",
      }).output();
      assert(r.success, new TextDecoder().decode(r.stderr));
      const after = new Set(codeCacheRows(`${denoDir}/v8_code_cache_v2`));
      // Entries the run rewrote (a module the warm-up never loaded may be added).
      const rewritten = before.filter((r) => !after.has(r)).map((r) => r.split(" ")[0]);
      return { before, rewritten };
    };
    const chain = await rerun("chain", NO_JS_TIERS_V8_FLAGS, codeCacheDir(NO_JS_TIERS_V8_FLAGS));
    assert(chain.before.some((r) => r.startsWith("ext:deno_node/")), "shared modules are cached");
    assertEquals(chain.rewritten, []);
    const service = await rerun("service", undefined, codeCacheDir());
    assertEquals(service.rewritten, []);
    // Negative control: under other flags the step's own bundle and the
    // shared modules are recompiled (what one cache for all flags did to
    // every step warmed before the last).
    const crossed = await rerun("service", NO_JS_TIERS_V8_FLAGS, codeCacheDir());
    assert(
      crossed.rewritten.some((r) => r.endsWith("/client/service.js")),
      crossed.rewritten.join(),
    );
    assert(crossed.rewritten.some((r) => r.startsWith("ext:deno_node/")), crossed.rewritten.join());
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("code cache: only a seed launcher copies it into DENO_DIR; the exec line is the same either way", () => {
  const base = {
    name: "phase-kexec",
    set: "kexec",
    permissions: permissionSet("kexec"),
    bundle: "kexec/kexec.js",
  };
  const plain = launcherScript(base);
  const seed = launcherScript({ ...base, codeCache: "/usr/lib/phase/deno-cache" });
  assert(!plain.includes("deno-cache"));
  assert(seed.includes(`cp /usr/lib/phase/deno-cache/* "$DENO_DIR/"`), seed);
  const exec = (s: string) => s.split("\n").find((l) => l.startsWith("exec "));
  assertEquals(exec(seed), exec(plain));
});

Deno.test("TM-12 code cache: each seed step has its own DENO_DIR, with or without a prepared cache, which no seed step's set may write", () => {
  const table = permissionTable();
  const tasks = rawTasks();
  const sets = SEED_TASKS.map((t) => /-P=(\S+)/.exec(tasks[t])![1]);
  const writable = sets.flatMap((set) => {
    const w = table.get(set)!.write;
    return w === true ? ["/"] : w === false ? [] : w.map((p) => resolveScope(p, SEED_ROOT));
  });
  const dirsOf = (codeCache?: string) =>
    SEED_TASKS.map((t) => {
      const text = launcherScript({
        name: `phase-${t}`,
        set: "boot",
        permissions: permissionSet("boot"),
        bundle: "boot/boot.js",
        ...(codeCache ? { codeCache } : {}),
      });
      return /export DENO_DIR=(\S+)/.exec(text)![1];
    });
  const dirs = dirsOf(`${SEED_ROOT}/deno-cache`);
  assertEquals(new Set(dirs).size, dirs.length);
  // An image built without a cache (no emulator for a foreign arch) too.
  assertEquals(dirsOf(), dirs);
  for (const d of dirs) {
    assert(d.startsWith(`${SEED_DENO_DIRS}/`), d);
    const inside = writable.filter((w) => d === w || d.startsWith(w.endsWith("/") ? w : `${w}/`));
    assertEquals(inside, [], `${d} is writable by a seed step`);
  }
});

const REPO_ROOT = new URL("..", import.meta.url).pathname;
const ARM64_DENO = Deno.env.get("PHASE_ARM64_DENO") ??
  `${REPO_ROOT}.cache/arm64/deno/package/deno`;
const ARM64_SYSROOT = Deno.env.get("PHASE_ARM64_SYSROOT") ?? `${REPO_ROOT}.cache/arm64/root`;

Deno.test("code cache (issue 17): an arm64 seed's Deno warms it under qemu-aarch64-static with the arm64 sysroot; its cache is keyed like the host's (bench/boot --arch arm64 measures the gain)", async () => {
  const dir = await tmpDir("codecache-arm64-");
  try {
    const root = `${dir}/stage`;
    await Deno.mkdir(`${root}/client`, { recursive: true });
    await Deno.writeTextFile(
      `${root}/client/step.js`,
      "export function f(x) { return x * 2; }\nif (import.meta.main) { console.log(f(2)); Deno.exit(0); }\n",
    );
    const emulator = { tool: "qemu-aarch64-static", args: ["-L", ARM64_SYSROOT] };
    const ok = await prepareCodeCache({
      root,
      seedRoot: "/usr/lib/phase",
      seedDeno: ARM64_DENO,
      work: `${dir}/work`,
      modules: [{ path: "client/step.js", flags: [] }],
      emulator,
    });
    assert(ok);
    const out = `${root}/${codeCacheDir()}`;
    assertEquals(specifiers(`${out}/v8_code_cache_v2`, "codecache"), [
      "file:///usr/lib/phase/client/step.js",
    ]);
    // Without an emulator the same foreign Deno yields no cache.
    assertEquals(
      await prepareCodeCache({
        root,
        seedRoot: "/usr/lib/phase",
        seedDeno: ARM64_DENO,
        work: `${dir}/work-2`,
        modules: [{ path: "client/step.js", flags: [] }],
      }),
      false,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
