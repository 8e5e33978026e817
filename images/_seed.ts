/**
 * Steps 2 and 3 of the image build: the seed initramfs (busybox,
 * kexec-tools and libraries, init, modules, trust and policy) and the
 * squashfs seed (Deno, bundled entrypoints, launchers), under dm-verity
 * for Secure Boot. Private to images/.
 *
 * @module
 */
import type { Logger } from "../core/mod.ts";
import { permissionTable, rawTasks, unstableFeatures } from "../cli/mod.ts";
import { hostArch, sha256Hex } from "../verify/mod.ts";
import { checkTorrcFragment } from "../net/mod.ts";
import { parsePolicy } from "../client/mod.ts";
import { ImagesError } from "./errors.ts";
import { runTool } from "./_run.ts";
import { launcherScript, permissionFlags, SEED_ROOT } from "./launcher.ts";
import { codeCacheDir, prepareCodeCache, type WarmModule } from "./_codecache.ts";
import { type Verity, verityFormat } from "./_secureboot.ts";
import { phaseDiag, seedInit, TARGET_NODE_CONFIG, udhcpcScript } from "./_files.ts";
import { clampTimes, copyFile, makeCpio, writeText } from "./_fs.ts";
import {
  type Arch,
  baseTree,
  type ImageFile,
  initramfsLibs,
  type Inputs,
  RUNTIME_DIR,
} from "./_inputs.ts";

/** Entrypoints bundled onto the seed: launcher name, deno.json task. */
export const SEED_TASKS = [
  "boot",
  "discover",
  "fetch",
  "fetch-private",
  "verify",
  "kexec",
  "wasm",
  "node",
  // The target runs the provider from this squashfs (the release's rootfs, issue 12 §1).
  "serve",
] as const;

/** A seed entrypoint (its launcher is `phase-<task>`). */
export type SeedTask = typeof SEED_TASKS[number];

/**
 * V8 flags without compiled JavaScript: no Sparkplug, Maglev or TurboFan
 * code; the interpreter runs it, and WebAssembly keeps its compilers.
 */
export const NO_JS_TIERS_V8_FLAGS = "--no-opt,--no-maglev,--no-sparkplug";

/**
 * V8 flags of the boot chain's steps: no JavaScript tiers, and 16 MiB
 * semi-spaces from the start, so that a step's start-up collects its
 * young generation less often (young objects only: the heap's limit is
 * unchanged).
 */
export const STEP_V8_FLAGS = `${NO_JS_TIERS_V8_FLAGS},--min-semi-space-size=16`;

/**
 * V8 flags of each seed launcher (issue 17). The boot chain's steps are
 * short processes that run our own bundle once: the code V8's baseline
 * and optimizing compilers make runs a handful of times, and on the seed
 * (emulated, or a slow machine) generating it costs more than it saves
 * (bench/README.md, "Fifth session").
 * `--jitless` (no code generated at all) measured no faster and would
 * take WebAssembly from discover (a dependency uses it) and the job. The
 * services the target keeps running (serve, node) keep V8's defaults: for
 * them compiled code pays back.
 */
export const SEED_V8_FLAGS: Readonly<Record<SeedTask, string | undefined>> = Object.freeze({
  boot: STEP_V8_FLAGS,
  discover: STEP_V8_FLAGS,
  fetch: STEP_V8_FLAGS,
  "fetch-private": STEP_V8_FLAGS,
  verify: STEP_V8_FLAGS,
  kexec: STEP_V8_FLAGS,
  wasm: STEP_V8_FLAGS,
  node: undefined,
  serve: undefined,
});

/**
 * Modules other code loads at run time by URL, bundled beside their loader
 * under {@link bundledPath} (wasm/runner.ts `workerUrl`: a `.js` loader
 * loads the `.js` worker).
 */
export const EXTRA_BUNDLES = ["wasm/_worker.ts"] as const;

/**
 * Where the bundle of a source module goes: same path, `.js`. A bundle is
 * JavaScript: under a `.ts` name Deno would transpile it at every start
 * and the prepared code cache could not cover it (issue 17).
 */
export function bundledPath(source: string): string {
  return source.replace(/\.ts$/, ".js");
}

/** What the seed initramfs is made of. */
export interface SeedInitramfsInput {
  /** Staging folder (emptied by nobody: a fresh work folder). */
  readonly root: string;
  /** The compressed cpio to write. */
  readonly out: string;
  readonly inputs: Inputs;
  readonly libs: readonly ImageFile[];
  readonly modules: string[];
  readonly trustPath: string;
  readonly channel: string;
  readonly allowTor?: boolean;
  readonly torrc?: string;
  /** Adds dmsetup and the init's verity path. */
  readonly secureBoot: boolean;
  /** The policy's `node_accept_jobs` and `unsafe_node_open` (the target's Plasm node). */
  readonly node?: NodePolicy;
  readonly epoch: number;
}

/** Who the booted target's Plasm node accepts jobs from (policy keys). */
export interface NodePolicy {
  /** `node_accept_jobs`: submitter keyids (`ed25519:<hex>`). */
  readonly accept: readonly string[];
  /** `unsafe_node_open`: any peer, rate-limited (TM-22). */
  readonly unsafeOpen: boolean;
}

/** Step 2: stages the seed initramfs tree and writes its cpio. */
export async function seedInitramfs(inp: SeedInitramfsInput): Promise<{ readonly initrd: string }> {
  const root = inp.root;
  await baseTree(root, inp.inputs, inp.modules);
  await copyFile(inp.inputs.kexec, `${root}/sbin/kexec`, 0o755);
  if (inp.secureBoot) await copyFile("/usr/sbin/dmsetup", `${root}/sbin/dmsetup`, 0o755);
  // Private mode over Tor (TM-13): the boot starts /usr/sbin/tor when present.
  if (inp.inputs.tor) await copyFile(inp.inputs.tor, `${root}/usr/sbin/tor`, 0o755);
  await initramfsLibs(root, inp.libs, inp.inputs.denoLibs);
  await writeText(`${root}/init`, seedInit({ secureBoot: inp.secureBoot }), 0o755);
  await writeText(`${root}/usr/share/udhcpc/default.script`, udhcpcScript(), 0o755);
  // In the initramfs, on PATH: it must work even when the seed partition does not mount.
  await writeText(`${root}/usr/bin/phase-diag`, phaseDiag(), 0o755);
  await copyFile(inp.trustPath, `${root}/etc/phase/trust.json`, 0o644);
  await writeText(
    `${root}/etc/phase/policy.toml`,
    seedPolicy(inp.channel, !!inp.allowTor, inp.node),
  );
  if (inp.torrc !== undefined) {
    // Checked here too, so a bad fragment fails the build, not the boot.
    await writeText(`${root}/etc/phase/torrc`, checkTorrcFragment(inp.torrc).join("\n") + "\n");
  }
  await makeCpio(root, inp.out, inp.epoch);
  return { initrd: inp.out };
}

/** The seed's /etc/phase/policy.toml; the node keys only when set (older images stay byte-identical). */
export function seedPolicy(channel: string, allowTor: boolean, node?: NodePolicy): string {
  const nodeLines =
    (node?.accept.length
      ? `node_accept_jobs = [${node.accept.map((k) => JSON.stringify(k)).join(", ")}]\n`
      : "") + (node?.unsafeOpen ? "unsafe_node_open = true\n" : "");
  return `mode = "internet"\nchannel = "${channel}"\ncache_enabled = true\nmin_version = "2025.10.01"\nallow_tor = ${
    allowTor ? "true" : "false"
  }\nprovider = ""\n${nodeLines}`;
}

/**
 * The target's node config (`{"allow": [...], "open": bool}`, node/limits.ts)
 * from a policy's text, or undefined when the policy starts no node: read
 * back through the seed's own parser, so the node accepts exactly whom the
 * policy names.
 */
export function targetNodeConfig(policyText: string): string | undefined {
  const p = parsePolicy(policyText);
  if (!p.nodeAcceptJobs.length && !p.unsafeNodeOpen) return undefined;
  return JSON.stringify({ allow: p.nodeAcceptJobs, open: p.unsafeNodeOpen }, null, 2) + "\n";
}

/** What the squashfs seed is made of. */
export interface SeedSquashfsInput {
  readonly arch: Arch;
  /** Work folder (staging tree, verity image). */
  readonly work: string;
  /** The squashfs to write. */
  readonly out: string;
  /** The Deno binary to put on the seed. */
  readonly deno: string;
  /** Deno's libraries, put beside it under {@link RUNTIME_DIR} (the inits link them). */
  readonly denoLibs: readonly ImageFile[];
  /** The arch's sysroot (its glibc runs the seed's Deno under qemu user-mode for the code cache). */
  readonly sysroot: string;
  /** The repository whose entrypoints are bundled. */
  readonly repo: string;
  /** Puts the squashfs under dm-verity. */
  readonly secureBoot: boolean;
  /** The target node's config ({@link targetNodeConfig}); none: the target starts no node. */
  readonly nodeConfig?: string;
  readonly epoch: number;
  readonly log: Logger;
}

/** Step 3's result. */
export interface SeedSquashfs {
  readonly squashfs: string;
  /** What goes into the seed partition: the squashfs, or it with its verity hash tree. */
  readonly partition: string;
  /** The verity parameters (Secure Boot only). */
  readonly verity?: Verity;
}

/** Step 3: the squashfs seed and, under Secure Boot, its dm-verity partition. */
export async function seedSquashfs(inp: SeedSquashfsInput): Promise<SeedSquashfs> {
  const root = `${inp.work}/seed-squashfs`;
  await copyFile(inp.deno, `${root}/deno`, 0o755);
  for (const lib of inp.denoLibs) {
    await copyFile(lib.file, `${root}/${RUNTIME_DIR}${lib.path}`, 0o755);
  }
  const launchers = await seedTree(inp, root);
  if (inp.nodeConfig !== undefined) {
    await writeText(`${root}/${TARGET_NODE_CONFIG}`, inp.nodeConfig, 0o644);
  }
  await clampTimes(root, inp.epoch);
  const squashfs = inp.out;
  await Deno.remove(squashfs).catch(() => {});
  await runTool("mksquashfs", [
    root,
    squashfs,
    "-noappend",
    "-no-xattrs",
    "-all-root",
    "-comp",
    "zstd",
    "-processors",
    "1",
    "-mkfs-time",
    String(inp.epoch),
    "-all-time",
    String(inp.epoch),
    "-quiet",
    "-no-progress",
  ]);
  inp.log.info(`images: launchers: ${launchers.join(", ")}`);
  if (!inp.secureBoot) return { squashfs, partition: squashfs };
  // Secure Boot: the partition holds the squashfs and its dm-verity hash tree.
  const partition = `${inp.work}/seed-verity.img`;
  const verity = await verityFormat(
    squashfs,
    partition,
    sha256Hex(`phase-images:${inp.arch}:verity-salt`).slice(0, 64),
  );
  inp.log.info(
    `images: dm-verity root hash ${verity.rootHash} (${verity.dataBlocks} data blocks)`,
  );
  return { squashfs, partition, verity };
}

/** The qemu user-mode emulator that runs each arch's Deno on another host (qemu-user-static). */
const QEMU_USER: Readonly<Record<Arch, string>> = {
  amd64: "qemu-x86_64-static",
  arm64: "qemu-aarch64-static",
};

/**
 * How to run the seed's Deno for its code-cache warm-up when `arch` is not
 * this host's: its emulator with the arch's sysroot as library prefix, or
 * undefined (same arch, or no emulator installed: said by the caller).
 */
async function foreignDeno(
  arch: Arch,
  sysroot: string,
  log: Logger,
): Promise<{ tool: string; args: readonly string[] } | undefined> {
  if (arch === hostArch()) return undefined;
  const tool = QEMU_USER[arch];
  try {
    await runTool(tool, ["--version"]);
  } catch (err) {
    log.info(`images: ${tool} cannot run: ${(err as Error).message}`);
    return undefined;
  }
  return { tool, args: ["-L", sysroot] };
}

/** `{ v8Flags }` of a seed task, or nothing when it runs with V8's defaults. */
function v8(task: SeedTask): { v8Flags?: string } {
  const f = SEED_V8_FLAGS[task];
  return f ? { v8Flags: f } : {};
}

/** Bundles each seed entrypoint and writes its launcher. */
async function seedTree(inp: SeedSquashfsInput, root: string): Promise<string[]> {
  const { repo, work, log } = inp;
  const seedDeno = inp.deno;
  const tasks = rawTasks();
  const table = permissionTable();
  const made: string[] = [];
  const unstable = [...unstableFeatures()];
  const launchers: {
    name: SeedTask;
    set: string;
    bundle: string;
    args: string[];
  }[] = [];
  const warm: WarmModule[] = [];
  for (const name of SEED_TASKS) {
    const task = tasks[name];
    const m = task && /-P=(\S+)\s+(\S+\.ts)((?:\s+\S+)*)$/.exec(task);
    if (!m) {
      throw new ImagesError(
        "E_BUILD",
        `deno.json task '${name}' is not 'deno run ... -P=<set> <entry>'`,
      );
    }
    const [, set, entry, rest] = m;
    // One directory below the seed root, named like the entry's component:
    // the bundle's import.meta.url then resolves deno.json-relative scopes
    // (cli/permissions.ts configDir) and files beside it (wasm/examples) as in the repo.
    const component = entry.split("/")[0];
    const bundle = `${component}/${name}.js`;
    await Deno.mkdir(`${root}/${component}`, { recursive: true });
    await denoBundle(repo, entry, `${root}/${bundle}`);
    await Deno.chmod(`${root}/${bundle}`, 0o644);
    const perms = table.get(set);
    if (!perms) throw new ImagesError("E_BUILD", `no permission set '${set}'`);
    launchers.push({ name, set, bundle, args: rest.trim() ? rest.trim().split(/\s+/) : [] });
    // Warmed under exactly the flags it runs with on the seed (no build path:
    // they name the warm-up folder, whose path V8 keeps in the cache).
    warm.push({
      path: bundle,
      flags: [...unstable.map((u) => `--unstable-${u}`), ...permissionFlags(perms, SEED_ROOT)],
      ...v8(name),
    });
  }
  // Modules loaded at run time beside their bundle (wasm/runner.ts starts
  // its Worker from ../wasm/_worker.js when it runs from a bundle).
  for (const extra of EXTRA_BUNDLES) {
    const out = bundledPath(extra);
    await denoBundle(repo, extra, `${root}/${out}`);
    await Deno.chmod(`${root}/${out}`, 0o644);
    // The worker runs with no permissions, in phase-wasm's process (the
    // boot's job) and in phase-node's: warmed under each one's V8 flags.
    for (const host of ["wasm", "node"] as const) {
      warm.push({ path: out, flags: unstable.map((u) => `--unstable-${u}`), ...v8(host) });
    }
  }
  // Issue 17: V8 code cache and dependency analysis prepared here, so no
  // step compiles its bundle at boot.
  const emulator = await foreignDeno(inp.arch, inp.sysroot, log);
  const cached = await prepareCodeCache({
    root,
    seedRoot: SEED_ROOT,
    seedDeno,
    work,
    modules: warm,
    ...(emulator ? { emulator } : {}),
  });
  if (cached) {
    log.info(
      `images: Deno code cache prepared for ${warm.length} modules${
        emulator ? ` (the ${inp.arch} Deno under ${emulator.tool})` : ""
      }`,
    );
  } else {
    log.warn(
      "images: no Deno code cache: the seed's Deno is not the one running this build and no emulator runs it; every seed step compiles its code at boot",
      { hint: `apt-get install qemu-user-static (${QEMU_USER[inp.arch]})` },
    );
  }
  for (const l of launchers) {
    await writeText(
      `${root}/bin/phase-${l.name}`,
      launcherScript({
        name: `phase-${l.name}`,
        set: l.set,
        permissions: table.get(l.set)!,
        bundle: l.bundle,
        unstable,
        args: l.args,
        ...v8(l.name),
        ...(cached ? { codeCache: `${SEED_ROOT}/${codeCacheDir(SEED_V8_FLAGS[l.name])}` } : {}),
      }),
      0o755,
    );
    made.push(`phase-${l.name}`);
  }
  // The post-boot hello job, where wasm/hello.ts looks for it.
  for await (const e of Deno.readDir(`${repo}/wasm/examples`)) {
    if (e.isFile && e.name.endsWith(".wasm")) {
      await copyFile(
        `${repo}/wasm/examples/${e.name}`,
        `${root}/wasm/examples/${e.name}`,
        0o644,
      );
    }
  }

  return made;
}

/** `deno bundle` of one module, with the user's Deno cache (esbuild lives there). */
export async function denoBundle(repo: string, entry: string, out: string): Promise<void> {
  await runTool("deno", ["bundle", "-q", "--no-remote", "--platform", "deno", "-o", out, entry], {
    cwd: repo,
    env: {
      DENO_DIR: Deno.env.get("DENO_DIR") ?? `${Deno.env.get("HOME")}/.cache/deno`,
      HOME: Deno.env.get("HOME") ?? "/root",
    },
  });
}
