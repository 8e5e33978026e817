/**
 * `deno task deb`: builds `phase_<version>_<arch>.deb` reproducibly. The
 * tree: the pinned Deno runtime (deb/runtime.ts) at /usr/lib/phase/deno,
 * every shipped entrypoint bundled under /usr/lib/phase/<component>/, one
 * launcher per shipped binary in /usr/bin/phase-<name> (images/launcher.ts:
 * exactly the flags of its permission set, scopes resolved under
 * /usr/lib/phase), the provider's and the job node's units and their
 * configuration (deb/units). Every
 * mtime is SOURCE_DATE_EPOCH, owners are root, files are sorted:
 * two builds are byte-identical.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { gzipSync } from "node:zlib";
import type { Logger } from "../core/mod.ts";
import { permissionTable, phaseVersion, unstableFeatures } from "../cli/mod.ts";
import { binaries, type BinarySpec } from "../audit/mod.ts";
import {
  bundledPath,
  denoBundle,
  EXTRA_BUNDLES,
  launcherScript,
  NO_DENO_DIR,
  runTool,
  SEED_ROOT,
} from "../images/mod.ts";
import { DebError } from "./errors.ts";
import { type DebArch, RUNTIME_CACHE_DIR, verifiedRuntime } from "./runtime.ts";
import {
  changelogDebian,
  CONFFILES,
  controlFile,
  copyrightFile,
  LINTIAN_OVERRIDES,
  manPage,
  PACKAGE,
  postinst,
  postrm,
  prerm,
  UNITS,
} from "./_control.ts";

/** Where the package puts the runtime and the bundles (the seed's layout too). */
export const LIB_ROOT = SEED_ROOT;
/** Where systemd units go on bookworm. */
export const UNIT_DIR = "/lib/systemd/system";
/**
 * xz level of the package. Deno is 96 MB: -1 packs it in about 16 s on
 * this 2-core machine (34 MB), -6 takes minutes for 4 MB less.
 */
export const XZ_LEVEL = 1;
/** Repository folder of the units and their files. */
export const UNITS_SOURCE = "deb/units";
/** The units' readiness checks, installed in {@link LIB_ROOT}: provider, node. */
export const READINESS_CHECKS = ["wait-health", "wait-listen"] as const;

/** Options of one package build. */
export interface DebOptions {
  readonly arch: DebArch;
  /** Folder the .deb is written to. */
  readonly out: string;
  /** The repository (bundling runs there). */
  readonly repo: string;
  /** SOURCE_DATE_EPOCH: every mtime and the changelog date. */
  readonly epoch: number;
  /** A scratch folder (the staged tree), removed by the caller. */
  readonly work: string;
  /** Folder of the runtime tarballs; default {@link RUNTIME_CACHE_DIR} in `repo`. */
  readonly runtimeDir?: string;
  readonly log: Logger;
}

/** What a build wrote. */
export interface DebResult {
  /** Path of the .deb. */
  readonly deb: string;
  /** Its SHA-256, hex. */
  readonly sha256: string;
  /** The launchers, `/usr/bin/phase-...`. */
  readonly launchers: readonly string[];
  readonly timingsMs: Readonly<Record<string, number>>;
}

/** The package file name of a build. */
export function debFileName(version: string, arch: DebArch): string {
  return `${PACKAGE}_${version}_${arch}.deb`;
}

/**
 * Where the bundle of `entry` goes under {@link LIB_ROOT}: one folder below
 * it, named after the component, so the bundle's `import.meta.url` resolves
 * deno.json-relative scopes (cli configDir) to /usr/lib/phase, as the
 * launcher's flags do.
 */
export function bundlePath(entry: string): string {
  const [component, ...rest] = entry.split("/");
  return `${component}/${rest.join("-").replace(/\.ts$/, ".js")}`;
}

async function writeText(path: string, text: string | Uint8Array, mode = 0o644): Promise<void> {
  await Deno.mkdir(path.slice(0, path.lastIndexOf("/")), { recursive: true });
  if (typeof text === "string") await Deno.writeTextFile(path, text);
  else await Deno.writeFile(path, text);
  await Deno.chmod(path, mode);
}

/** Sorted relative paths under `root`, directories flagged; no symlinks. */
async function walk(root: string): Promise<{ rel: string; isDir: boolean }[]> {
  const out: { rel: string; isDir: boolean }[] = [];
  const rec = async (rel: string) => {
    const entries: Deno.DirEntry[] = [];
    for await (const e of Deno.readDir(rel ? `${root}/${rel}` : root)) entries.push(e);
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const e of entries) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isSymlink) throw new DebError("E_BUILD", `symlink in the package tree: ${r}`);
      out.push({ rel: r, isDir: e.isDirectory });
      if (e.isDirectory) await rec(r);
    }
  };
  await rec("");
  return out;
}

/** Directories 0755, every mtime `epoch` (the umask and the clock never reach the package). */
async function normalise(root: string, epoch: number): Promise<void> {
  for (const e of (await walk(root)).reverse()) {
    if (e.isDir) await Deno.chmod(`${root}/${e.rel}`, 0o755);
    await Deno.utime(`${root}/${e.rel}`, epoch, epoch);
  }
  await Deno.chmod(root, 0o755);
  await Deno.utime(root, epoch, epoch);
}

/** Bundles the shipped entrypoints and writes one launcher per binary. */
async function programs(
  opts: DebOptions,
  root: string,
  specs: readonly BinarySpec[],
): Promise<string[]> {
  const table = permissionTable();
  const bundled = new Set<string>();
  const made: string[] = [];
  for (const b of specs) {
    const bundle = bundlePath(b.entry);
    if (!bundled.has(bundle)) {
      await Deno.mkdir(`${root}${LIB_ROOT}/${bundle.split("/")[0]}`, { recursive: true });
      await denoBundle(opts.repo, b.entry, `${root}${LIB_ROOT}/${bundle}`);
      await Deno.chmod(`${root}${LIB_ROOT}/${bundle}`, 0o644);
      bundled.add(bundle);
    }
    const permissions = table.get(b.set);
    if (!permissions) throw new DebError("E_BUILD", `no permission set '${b.set}' in deno.json`);
    await writeText(
      `${root}/usr/bin/${b.name}`,
      launcherScript({
        name: b.name,
        set: b.set,
        permissions,
        bundle,
        args: b.args,
        root: LIB_ROOT,
        unstable: [...unstableFeatures()],
        // TM-12: no compile cache another process could write.
        denoDir: NO_DENO_DIR,
      }),
      0o755,
    );
    made.push(`/usr/bin/${b.name}`);
  }
  // Modules loaded at run time beside their bundle (wasm's Worker), and the
  // example jobs wasm/hello.ts looks for beside it.
  for (const extra of EXTRA_BUNDLES) {
    const out = `${root}${LIB_ROOT}/${bundledPath(extra)}`;
    await denoBundle(opts.repo, extra, out);
    await Deno.chmod(out, 0o644);
  }
  const examples: string[] = [];
  for await (const e of Deno.readDir(`${opts.repo}/wasm/examples`)) {
    if (e.isFile && e.name.endsWith(".wasm")) examples.push(e.name);
  }
  for (const name of examples.sort()) {
    await writeText(
      `${root}${LIB_ROOT}/wasm/examples/${name}`,
      await Deno.readFile(`${opts.repo}/wasm/examples/${name}`),
    );
  }
  return made;
}

/** Builds the package; returns where it is and what it holds. */
export async function buildDeb(opts: DebOptions): Promise<DebResult> {
  const timings: Record<string, number> = {};
  const mark = (name: string, t0: number) => {
    timings[name] = Math.round(performance.now() - t0);
    opts.log.info(`deb: ${name} done in ${(timings[name] / 1000).toFixed(1)} s`);
  };
  const version = phaseVersion();
  const root = `${opts.work}/root`;
  await Deno.mkdir(root, { recursive: true });
  await Deno.mkdir(opts.out, { recursive: true });

  // 1. The runtime, checked against its pin before anything else.
  let t = performance.now();
  const tgz = await verifiedRuntime(
    opts.runtimeDir ?? `${opts.repo}/${RUNTIME_CACHE_DIR.slice(2)}`,
    opts.arch,
  );
  await Deno.writeFile(`${opts.work}/runtime.tgz`, tgz);
  await runTool("tar", ["-xzf", "runtime.tgz", "package/deno"], { cwd: opts.work });
  await Deno.mkdir(`${root}${LIB_ROOT}`, { recursive: true });
  await Deno.copyFile(`${opts.work}/package/deno`, `${root}${LIB_ROOT}/deno`);
  await Deno.chmod(`${root}${LIB_ROOT}/deno`, 0o755);
  mark("runtime", t);

  // 2. Bundles and launchers.
  t = performance.now();
  const launchers = await programs(opts, root, binaries());
  mark("bundles", t);

  // 3. Units, configuration, documentation.
  t = performance.now();
  const src = `${opts.repo}/${UNITS_SOURCE}`;
  for (const unit of UNITS) {
    await writeText(`${root}${UNIT_DIR}/${unit}`, await Deno.readTextFile(`${src}/${unit}`));
  }
  // The units' readiness checks (ExecStartPost=).
  for (const check of READINESS_CHECKS) {
    await writeText(
      `${root}${LIB_ROOT}/${check}`,
      await Deno.readTextFile(`${src}/${check}`),
      0o755,
    );
  }
  for (const conf of CONFFILES) {
    await writeText(`${root}${conf}`, await Deno.readTextFile(`${src}/${conf.split("/").at(-1)}`));
  }
  await writeText(
    `${root}/usr/lib/sysusers.d/${PACKAGE}.conf`,
    await Deno.readTextFile(`${src}/phase.sysusers`),
  );
  const doc = `${root}/usr/share/doc/${PACKAGE}`;
  const year = new Date(opts.epoch * 1000).getUTCFullYear();
  await writeText(`${doc}/copyright`, copyrightFile(year));
  // gzip -9n equivalent: zlib's header carries no name and mtime 0.
  await writeText(
    `${doc}/changelog.gz`,
    gzipSync(new TextEncoder().encode(changelogDebian(version, opts.epoch)), { level: 9 }),
  );
  await writeText(`${root}/usr/share/lintian/overrides/${PACKAGE}`, LINTIAN_OVERRIDES);
  for (const b of binaries()) {
    await writeText(
      `${root}/usr/share/man/man1/${b.name}.1.gz`,
      gzipSync(new TextEncoder().encode(manPage(b.name, b.set, version)), { level: 9 }),
    );
  }
  await writeText(`${doc}/packaging.md`, await Deno.readTextFile(`${opts.repo}/docs/packaging.md`));

  // 4. DEBIAN/: sizes and sums of exactly the tree above.
  let kib = 0;
  const sums: string[] = [];
  for (const e of await walk(root)) {
    if (e.isDir) {
      kib += 1;
      continue;
    }
    const bytes = await Deno.readFile(`${root}/${e.rel}`);
    kib += Math.ceil(bytes.length / 1024);
    sums.push(`${createHash("md5").update(bytes).digest("hex")}  ${e.rel}`);
  }
  const control = `${root}/DEBIAN`;
  await writeText(
    `${control}/control`,
    controlFile({ version, arch: opts.arch, installedSizeKiB: kib }),
  );
  await writeText(`${control}/conffiles`, CONFFILES.join("\n") + "\n");
  await writeText(`${control}/md5sums`, sums.join("\n") + "\n");
  await writeText(`${control}/postinst`, postinst(), 0o755);
  await writeText(`${control}/prerm`, prerm(), 0o755);
  await writeText(`${control}/postrm`, postrm(), 0o755);
  await normalise(root, opts.epoch);
  mark("tree", t);

  // 5. dpkg-deb: root owner, xz, SOURCE_DATE_EPOCH for the ar and tar headers.
  t = performance.now();
  const deb = `${opts.out}/${debFileName(version, opts.arch)}`;
  await Deno.remove(deb).catch(() => {});
  await runTool(
    "dpkg-deb",
    ["--root-owner-group", "-Zxz", `-z${XZ_LEVEL}`, "--build", root, deb],
    { env: { SOURCE_DATE_EPOCH: String(opts.epoch) } },
  );
  const sha256 = createHash("sha256").update(await Deno.readFile(deb)).digest("hex");
  mark("dpkg-deb", t);
  return { deb, sha256, launchers, timingsMs: timings };
}
