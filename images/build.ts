/**
 * `deno task images`: builds, without root and reproducibly, the seed
 * initramfs, the squashfs seed (Deno + bundled entrypoints + launchers),
 * the GPT USB image (ESP with systemd-boot and a GRUB fallback, seed, ext4
 * cache), QCOW2 and
 * Parallels conversions, a signed target release and SHA256SUMS + its
 * signature. Every timestamp is SOURCE_DATE_EPOCH, every id is derived.
 *
 * @module
 */
import type { Logger } from "../core/mod.ts";
import { permissionTable, rawTasks, unstableFeatures } from "../cli/mod.ts";
import { encodeBase64, hashFile, SHA256_PREFIX, sha256Hex, signEd25519 } from "../verify/mod.ts";
import { keygen, loadSigningKey, signRelease } from "../sign/mod.ts";
import { checkTorrcFragment } from "../net/mod.ts";
import { ImagesError } from "./errors.ts";
import { runTool } from "./_run.ts";
import { neededClosure } from "./elf.ts";
import { launcherScript } from "./launcher.ts";
import {
  type BootMode,
  GRUB_ARCH,
  GRUB_ESP_DIR,
  grubCfg,
  grubLoaderEntry,
  grubMkimageArgs,
  ustar,
} from "./_grub.ts";
import {
  checkSecureBootKeys,
  pinPeHeader,
  sbsign,
  SECURE_BOOT_ESP_MIB,
  type SecureBootKeys,
  signKernel,
  UKI_ESP_DIR,
  UKI_STUB,
  ukiLoaderEntry,
  ukiObjcopyArgs,
  ukiOsRelease,
  type Verity,
  VERITY_MODULES,
  verityCmdline,
  verityFormat,
} from "./_secureboot.ts";
import {
  loaderConf,
  loaderEntry,
  PART_NAMES,
  phaseDiag,
  seedInit,
  targetInit,
  udhcpcScript,
} from "./_files.ts";

/** Default SOURCE_DATE_EPOCH (2026-01-01T00:00:00Z) when the env has none. */
export const DEFAULT_SOURCE_DATE_EPOCH = 1767225600;
/** ESP size in MiB (FAT32 needs at least 65525 clusters). */
export const ESP_MIB = 64;
/** ext4 cache size in MiB (the image's; grow it on the stick). */
export const CACHE_MIB = 128;
/** Modules the seed and target load, in this order after dependencies. */
export const SEED_MODULES = [
  "virtio_pci",
  "virtio_net",
  "virtio_blk",
  "virtio_rng",
  "squashfs",
  "overlay",
  "vfat",
  "nls_cp437",
  "nls_iso8859_1",
  "nls_utf8",
  "nls_ascii",
  "efivarfs",
] as const;
/** Entrypoints bundled onto the seed: launcher name, deno.json task. */
export const SEED_TASKS = [
  "boot",
  "discover",
  "fetch",
  "fetch-private",
  "verify",
  "kexec",
  "wasm",
] as const;

/** Modules other code loads at run time by URL, bundled beside their loader. */
export const EXTRA_BUNDLES = ["wasm/_worker.ts"] as const;

/** Options of one build. */
export interface BuildOptions {
  readonly arch: "amd64" | "arm64";
  readonly out: string;
  readonly artifacts: string;
  readonly channel: string;
  readonly version: string;
  readonly keyDir: string;
  /**
   * The trust file `deno task keygen` wrote apart from the keys (TM-12),
   * used when `keyDir` holds none.
   */
  readonly trustFile?: string;
  readonly epoch: number;
  readonly repo: string;
  readonly kernel?: string;
  /** Release of `kernel` (its /lib/modules directory name). */
  readonly kver?: string;
  /** arm64: a directory of extracted arm64 packages (see ARM64_HINT). */
  readonly sysroot?: string;
  readonly provider?: string;
  readonly extraCmdline?: string;
  readonly work: string;
  readonly now: Date;
  readonly log: Logger;
  readonly denoBin?: string;
  readonly skipRelease?: boolean;
  /** Put the tor client (and its libraries) into the seed, for private mode over Tor. */
  readonly withTor?: boolean;
  /** `allow_tor = true` in the seed's policy. */
  readonly allowTor?: boolean;
  /** A torrc fragment (bridges, ...) baked in as /etc/phase/torrc; checked first. */
  readonly torrc?: string;
  /**
   * Secure Boot image (TM-14, docs/secure-boot.md): signed UKIs, signed
   * systemd-boot, the seed under dm-verity, the target kernel signed; no
   * GRUB fallback and no bare kernel on the ESP.
   */
  readonly secureBoot?: SecureBootKeys;
}

const ARCH = {
  amd64: {
    efiName: "BOOTX64.EFI",
    sdboot: "/usr/lib/systemd/boot/efi/systemd-bootx64.efi",
    console: "ttyS0",
    libdir: "/lib/x86_64-linux-gnu",
  },
  arm64: {
    efiName: "BOOTAA64.EFI",
    sdboot: "/usr/lib/systemd/boot/efi/systemd-bootaa64.efi",
    console: "ttyAMA0",
    libdir: "/lib/aarch64-linux-gnu",
  },
} as const;

/** Stable UUID derived from a label (build ids never come from randomness). */
export function derivedUuid(label: string): string {
  const h = sha256Hex("phase-images:" + label);
  const v = h.slice(0, 12) + "4" + h.slice(13, 16) + ((parseInt(h[16], 16) & 3) | 8).toString(16) +
    h.slice(17, 32);
  return `${v.slice(0, 8)}-${v.slice(8, 12)}-${v.slice(12, 16)}-${v.slice(16, 20)}-${
    v.slice(20, 32)
  }`;
}

async function sha256File(path: string): Promise<string> {
  using f = await Deno.open(path);
  return (await hashFile(f, Number.MAX_SAFE_INTEGER)).digest.slice(SHA256_PREFIX.length);
}

function step(log: Logger, n: number, total: number, what: string): number {
  const t = performance.now();
  log.info(`images: [${n}/${total}] ${what}`);
  return t;
}

async function copyFile(src: string, dst: string, mode: number): Promise<void> {
  await Deno.mkdir(dst.slice(0, dst.lastIndexOf("/")), { recursive: true });
  await Deno.copyFile(src, dst);
  await Deno.chmod(dst, mode);
}

async function writeText(path: string, text: string, mode = 0o644): Promise<void> {
  await Deno.mkdir(path.slice(0, path.lastIndexOf("/")), { recursive: true });
  await Deno.writeTextFile(path, text);
  await Deno.chmod(path, mode);
}

/** Sorted list of every path under `root` (relative, "." first). */
async function walk(root: string): Promise<{ rel: string; isDir: boolean }[]> {
  const out: { rel: string; isDir: boolean }[] = [];
  const rec = async (rel: string) => {
    const entries = [];
    for await (const e of Deno.readDir(rel ? `${root}/${rel}` : root)) entries.push(e);
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const e of entries) {
      if (e.isSymlink) throw new ImagesError("E_BUILD", `symlink in image tree: ${rel}/${e.name}`);
      const r = rel ? `${rel}/${e.name}` : e.name;
      out.push({ rel: r, isDir: e.isDirectory });
      if (e.isDirectory) await rec(r);
    }
  };
  await rec("");
  return out;
}

/** Sets every mtime/atime under `root` (and root) to `epoch`; normalises dir modes. */
async function clampTimes(root: string, epoch: number): Promise<void> {
  const all = await walk(root);
  for (const e of all.reverse()) {
    if (e.isDir) await Deno.chmod(`${root}/${e.rel}`, 0o755);
    await Deno.utime(`${root}/${e.rel}`, epoch, epoch);
  }
  await Deno.chmod(root, 0o755);
  await Deno.utime(root, epoch, epoch);
}

/** cpio newc of `root`, sorted, owner 0:0, times clamped, compressed with zstd -19 -T1. */
async function makeCpio(root: string, out: string, epoch: number): Promise<void> {
  await clampTimes(root, epoch);
  const list = ["."].concat((await walk(root)).map((e) => e.rel)).join("\n") + "\n";
  const raw = `${out.startsWith("/") ? out : `${Deno.cwd()}/${out}`}.cpio`;
  await Deno.remove(raw).catch(() => {});
  await runTool("cpio", ["-o", "-H", "newc", "--reproducible", "-R", "0:0", "--quiet", "-O", raw], {
    cwd: root,
    stdin: new TextEncoder().encode(list),
  });
  await runTool("zstd", ["-q", "-19", "-T1", "-f", "--no-progress", raw, "-o", out]);
  await Deno.remove(raw);
}

/** Files `ldd` lists for `bin` (absolute paths). */
async function lddLibs(bin: string): Promise<string[]> {
  const text = new TextDecoder().decode(await runTool("ldd", [bin]));
  const libs = new Set<string>();
  for (const line of text.split("\n")) {
    const m = /=>\s*(\/\S+)/.exec(line) ?? /^\s*(\/\S+)\s+\(/.exec(line);
    if (m) libs.add(m[1]);
  }
  return [...libs].sort();
}

/** Module files in load order (dependencies first, each once). */
async function moduleOrder(
  kver: string,
  modules: readonly string[],
  sysroot = "",
): Promise<string[]> {
  const order: string[] = [];
  for (const m of modules) {
    const text = new TextDecoder().decode(
      await runTool("modprobe", [
        ...(sysroot ? ["-d", sysroot] : []),
        "-S",
        kver,
        "--show-depends",
        m,
      ]),
    );
    for (const line of text.split("\n")) {
      const mm = /^insmod (\S+)/.exec(line.trim());
      if (mm) {
        const at = mm[1].indexOf(`/lib/modules/${kver}/`);
        const rel = mm[1].slice(at + `/lib/modules/${kver}/`.length);
        if (!order.includes(rel)) order.push(rel);
      }
    }
  }
  return order;
}

/** Newest /boot/vmlinuz-* for the host (amd64 builds). */
async function hostKernel(): Promise<{ kernel: string; kver: string }> {
  const names: string[] = [];
  for await (const e of Deno.readDir("/boot")) {
    if (e.name.startsWith("vmlinuz-")) names.push(e.name);
  }
  // Newest kernel ABI first by version, not by string (6.1.0-9 < 6.1.0-10).
  names.sort((a, b) => a.localeCompare(b, "en", { numeric: true }));
  const name = names.at(-1);
  if (!name) {
    throw new ImagesError("E_INPUT", "no kernel in /boot", {
      hint: "apt-get install linux-image-cloud-amd64",
    });
  }
  return { kernel: `/boot/${name}`, kver: name.slice("vmlinuz-".length) };
}

/** Stages a busybox + modules tree common to the seed and the target. */
async function baseTree(root: string, inp: Inputs, modules: string[]): Promise<void> {
  await copyFile(`${inp.sysroot}/bin/busybox`, `${root}/bin/busybox`, 0o755);
  for (const m of modules) {
    await copyFile(
      `${inp.sysroot}/lib/modules/${inp.kver}/${m}`,
      `${root}/lib/modules/${m}`,
      0o644,
    );
  }
  await writeText(`${root}/etc/phase/modules.order`, modules.join("\n") + "\n");
  for (const d of ["proc", "sys", "dev", "run", "tmp", "etc", "sbin", "usr/bin", "usr/sbin"]) {
    await Deno.mkdir(`${root}/${d}`, { recursive: true });
  }
}

/** What the build takes from the host (amd64) or from an arm64 sysroot. */
interface Inputs {
  /** "" for the host. */
  readonly sysroot: string;
  readonly kernel: string;
  readonly kver: string;
  readonly kexec: string;
  readonly sdboot: string;
  /** GRUB EFI module directory (grub-efi-amd64-bin / grub-efi-arm64-bin). */
  readonly grubDir: string;
  readonly deno: string;
  /** Loader path in the image -> file to copy. */
  readonly libs: readonly { path: string; file: string }[];
  /** The tor binary to put into the seed (with `withTor`). */
  readonly tor?: string;
}

/** Newest <sysroot>/boot/vmlinuz-*. */
async function sysrootKernel(sysroot: string): Promise<{ kernel: string; kver: string }> {
  const names: string[] = [];
  for await (const e of Deno.readDir(`${sysroot}/boot`)) {
    if (e.name.startsWith("vmlinuz-")) names.push(e.name);
  }
  // Newest kernel ABI first by version, not by string (6.1.0-9 < 6.1.0-10).
  names.sort((a, b) => a.localeCompare(b, "en", { numeric: true }));
  const name = names.at(-1);
  if (!name) throw new ImagesError("E_INPUT", `no kernel in ${sysroot}/boot`, { hint: ARM64_HINT });
  return { kernel: `${sysroot}/boot/${name}`, kver: name.slice("vmlinuz-".length) };
}

/** How to fill an arm64 sysroot (rootless: apt-get download + dpkg-deb -x). */
export const ARM64_HINT =
  "run images/fetch_arm64.sh (after dpkg --add-architecture arm64 && apt-get update): it downloads the kernel linux-image-cloud-arm64 points at, busybox-static, kexec-tools and its libraries, systemd-boot-efi and grub-efi-arm64-bin for arm64, unpacks them with dpkg-deb -x into ./.cache/arm64/root (--sysroot) and Deno's arm64 build (npm pack @deno/linux-arm64-glibc) into ./.cache/arm64/deno/package/deno (--deno)";

/** The GRUB EFI module directory of `arch` (host, or the arm64 sysroot). */
async function grubModules(sysroot: string, arch: "amd64" | "arm64"): Promise<string> {
  const dir = `${sysroot}/usr/lib/grub/${GRUB_ARCH[arch].format}`;
  try {
    await Deno.stat(`${dir}/normal.mod`);
  } catch (err) {
    throw new ImagesError("E_INPUT", `no GRUB ${GRUB_ARCH[arch].format} modules in ${dir}`, {
      cause: err,
      hint: arch === "amd64"
        ? "apt-get install grub-efi-amd64-bin grub-common"
        : `images/fetch_arm64.sh (apt-get download ${GRUB_ARCH.arm64.package}:arm64; dpkg-deb -x into the sysroot)`,
    });
  }
  return dir;
}

/** The tor client binary (Debian package `tor`) of the host or the arm64 sysroot. */
async function torBinary(sysroot: string, arch: "amd64" | "arm64"): Promise<string> {
  const path = `${sysroot}/usr/sbin/tor`;
  try {
    await Deno.stat(path);
    return path;
  } catch (err) {
    throw new ImagesError("E_INPUT", `--with-tor: no tor binary at ${path}`, {
      cause: err,
      hint: arch === "amd64"
        ? "apt-get install tor"
        : "apt-get download tor:arm64 (and its libraries); dpkg-deb -x into the sysroot",
    });
  }
}

async function resolveInputs(opts: BuildOptions): Promise<Inputs> {
  const deno = denoBinary(opts);
  if (opts.arch === "amd64") {
    const { kernel, kver } = opts.kernel
      ? { kernel: opts.kernel, kver: opts.kver ?? "" }
      : await hostKernel();
    const tor = opts.withTor ? await torBinary("", "amd64") : undefined;
    const libs = [
      ...new Set([
        ...(await lddLibs("/usr/sbin/kexec")),
        ...(await lddLibs(deno)),
        ...(tor ? await lddLibs(tor) : []),
      ]),
    ]
      .sort()
      .map((p) => ({ path: p, file: p }));
    return {
      sysroot: "",
      kernel,
      kver,
      kexec: "/usr/sbin/kexec",
      sdboot: ARCH.amd64.sdboot,
      grubDir: await grubModules("", "amd64"),
      deno,
      libs,
      tor,
    };
  }
  const sysroot = opts.sysroot;
  if (!sysroot || !opts.denoBin) {
    throw new ImagesError(
      "E_INPUT",
      "arm64 builds need --sysroot DIR (extracted arm64 packages) and --deno FILE (arm64 Deno)",
      {
        hint: ARM64_HINT,
      },
    );
  }
  const { kernel, kver } = await sysrootKernel(sysroot);
  // modprobe -d needs modules.dep, which dpkg-deb -x does not create.
  await runTool("depmod", ["-b", sysroot, kver]);
  const kexec = `${sysroot}/sbin/kexec`;
  const tor = opts.withTor ? await torBinary(sysroot, "arm64") : undefined;
  const libs = await neededClosure(sysroot, [kexec, deno, ...(tor ? [tor] : [])], [
    "/lib/aarch64-linux-gnu",
    "/usr/lib/aarch64-linux-gnu",
    "/lib",
  ]);
  return {
    sysroot,
    kernel,
    kver,
    kexec,
    sdboot: `${sysroot}${ARCH.arm64.sdboot}`,
    grubDir: await grubModules(sysroot, "arm64"),
    deno,
    libs,
    tor,
  };
}

/** Bundles each seed entrypoint and writes its launcher. */
async function seedTree(opts: BuildOptions, root: string): Promise<string[]> {
  const tasks = rawTasks();
  const table = permissionTable();
  const made: string[] = [];
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
    await denoBundle(opts.repo, entry, `${root}/${bundle}`);
    await Deno.chmod(`${root}/${bundle}`, 0o644);
    const perms = table.get(set);
    if (!perms) throw new ImagesError("E_BUILD", `no permission set '${set}'`);
    await writeText(
      `${root}/bin/phase-${name}`,
      launcherScript({
        name: `phase-${name}`,
        set,
        permissions: perms,
        bundle,
        unstable: [...unstableFeatures()],
        args: rest.trim() ? rest.trim().split(/\s+/) : [],
      }),
      0o755,
    );
    made.push(`phase-${name}`);
  }
  // Modules loaded at run time beside their bundle (wasm/runner.ts starts
  // its Worker from ./_worker.ts): bundled JS under the same name.
  for (const extra of EXTRA_BUNDLES) {
    await denoBundle(opts.repo, extra, `${root}/${extra}`);
    await Deno.chmod(`${root}/${extra}`, 0o644);
  }
  // The post-boot hello job, where wasm/hello.ts looks for it.
  for await (const e of Deno.readDir(`${opts.repo}/wasm/examples`)) {
    if (e.isFile && e.name.endsWith(".wasm")) {
      await copyFile(
        `${opts.repo}/wasm/examples/${e.name}`,
        `${root}/wasm/examples/${e.name}`,
        0o644,
      );
    }
  }

  return made;
}

function denoBinary(opts: BuildOptions): string {
  return opts.denoBin ?? Deno.env.get("PHASE_DENO_BIN") ?? "/usr/lib/node_modules/deno/deno";
}

/** Writes a FAT32 ESP image with `files` (ESP path -> host path). */
async function makeEsp(
  path: string,
  files: [string, string][],
  epoch: number,
  id: string,
  mib: number,
): Promise<void> {
  await Deno.remove(path).catch(() => {});
  const env = { MTOOLS_SKIP_CHECK: "1", SOURCE_DATE_EPOCH: String(epoch) };
  await runTool("mkfs.fat", [
    "-C",
    "-F",
    "32",
    "--invariant",
    "-i",
    id,
    "-n",
    "PHASE-ESP",
    "-s",
    "1",
    path,
    String(mib * 1024),
  ], {
    env,
  });
  const dirs = new Set<string>();
  for (const [dst] of files) {
    const parts = dst.split("/").filter(Boolean);
    for (let i = 1; i < parts.length; i++) dirs.add("/" + parts.slice(0, i).join("/"));
  }
  for (const d of [...dirs].sort()) await runTool("mmd", ["-i", path, `::${d}`], { env });
  for (const [dst, src] of files) {
    await runTool("mcopy", ["-i", path, "-m", src, `::${dst}`], { env });
  }
}

/** Writes an ext4 cache image: empty CAS tree, fixed UUID and hash seed, clamped times. */
async function makeCache(path: string, tree: string, epoch: number, uuid: string): Promise<void> {
  await Deno.mkdir(`${tree}/cas/sha256`, { recursive: true });
  await clampTimes(tree, epoch);
  await Deno.remove(path).catch(() => {});
  const f = await Deno.open(path, { write: true, create: true });
  await f.truncate(CACHE_MIB * 1024 * 1024);
  f.close();
  const env = { E2FSPROGS_FAKE_TIME: String(epoch) };
  await runTool("mkfs.ext4", [
    "-q",
    "-F",
    "-L",
    PART_NAMES.cache,
    "-U",
    uuid,
    "-E",
    `hash_seed=${uuid},root_owner=0:0,lazy_itable_init=0`,
    "-d",
    tree,
    path,
  ], { env });
  // mkfs -d copies ctimes from the host tree; clamp every inode we created.
  const cmds = ["/", "/lost+found", "/cas", "/cas/sha256"].flatMap((p) =>
    ["ctime", "mtime", "atime", "crtime"].map((f) => `set_inode_field ${p} ${f} @${epoch}`)
  );
  await runTool("debugfs", ["-w", "-f", "-", path], {
    env,
    stdin: new TextEncoder().encode(cmds.join("\n") + "\n"),
  });
}

/** Copies `src` into `dst` at byte `offset` (no dd: bounded writes from Deno). */
async function writeAt(dst: string, src: string, offset: number): Promise<void> {
  const out = await Deno.open(dst, { write: true });
  const from = await Deno.open(src, { read: true });
  try {
    await out.seek(offset, Deno.SeekMode.Start);
    const buf = new Uint8Array(4 * 1024 * 1024);
    for (;;) {
      const n = await from.read(buf);
      if (n === null) break;
      let o = 0;
      while (o < n) o += await out.write(buf.subarray(o, n));
    }
  } finally {
    from.close();
    out.close();
  }
}

const MiB = 1024 * 1024;
const roundMiB = (n: number) => Math.ceil(n / MiB) * MiB;

/** The Parallels bundle's DiskDescriptor.xml (one image, no snapshots). */
export function diskDescriptor(sizeBytes: number, dataFile: string, guid: string): string {
  const sectors = Math.ceil(sizeBytes / 512);
  const cylinders = Math.ceil(sectors / (16 * 63));
  return `<?xml version='1.0' encoding='UTF-8'?>
<Parallels_disk_image Version="1.0">
    <Disk_Parameters>
        <Disk_size>${sectors}</Disk_size>
        <Cylinders>${cylinders}</Cylinders>
        <PhysicalSectorSize>512</PhysicalSectorSize>
        <LogicSectorSize>512</LogicSectorSize>
        <Heads>16</Heads>
        <Sectors>63</Sectors>
        <Padding>0</Padding>
        <Encryption>
            <Engine>{00000000-0000-0000-0000-000000000000}</Engine>
            <Data></Data>
        </Encryption>
        <UID>{${guid}}</UID>
        <Name>phase</Name>
        <Miscellaneous>
            <CompatLevel>level2</CompatLevel>
            <Bootable>1</Bootable>
            <SuspendState>0</SuspendState>
        </Miscellaneous>
    </Disk_Parameters>
    <StorageData>
        <Storage>
            <Start>0</Start>
            <End>${sectors}</End>
            <Blocksize>2048</Blocksize>
            <Image>
                <GUID>{5fbaabe3-6958-40ff-92a7-860e329aab41}</GUID>
                <Type>Compressed</Type>
                <File>${dataFile}</File>
            </Image>
        </Storage>
    </StorageData>
    <Snapshots>
        <Shot>
            <GUID>{5fbaabe3-6958-40ff-92a7-860e329aab41}</GUID>
            <ParentGUID>{00000000-0000-0000-0000-000000000000}</ParentGUID>
        </Shot>
    </Snapshots>
</Parallels_disk_image>
`;
}

/** What a build wrote. */
export interface BuildResult {
  readonly outputs: string[];
  readonly release?: string;
  readonly timingsMs: Record<string, number>;
}

/** Runs the whole build. */
export async function buildImages(opts: BuildOptions): Promise<BuildResult> {
  const A = ARCH[opts.arch];
  const log = opts.log;
  const timings: Record<string, number> = {};
  const TOTAL = opts.skipRelease ? 7 : 8;
  const mark = (name: string, t0: number) => {
    timings[name] = Math.round(performance.now() - t0);
    log.info(`images: ${name} done in ${(timings[name] / 1000).toFixed(1)} s`);
  };
  await Deno.mkdir(opts.out, { recursive: true });
  await Deno.mkdir(opts.work, { recursive: true });
  const base = `phase-${opts.arch}`;

  // 1. Inputs.
  let t = step(log, 1, TOTAL, "inputs: kernel, modules, busybox, kexec-tools, deno");
  const sb = opts.secureBoot;
  if (sb) {
    if (opts.arch !== "amd64") {
      throw new ImagesError("E_INPUT", "--secure-boot builds amd64 images only (for now)", {
        hint: "drop --secure-boot for arm64; docs/secure-boot.md says what is covered",
      });
    }
    if (await checkSecureBootKeys(sb)) {
      for (let i = 0; i < 3; i++) {
        log.warn(
          "images: UNSAFE: signing with Debian's PUBLIC snakeoil test key (--unsafe-test-key): this image is for tests only, NEVER ship it",
        );
      }
    }
  }
  const inp = await resolveInputs(opts);
  const { kernel, deno } = inp;
  // The seed opens its partition with dmsetup (device-mapper verity) under Secure Boot.
  const libs = sb
    ? [...new Set([...inp.libs.map((l) => l.file), ...(await lddLibs("/usr/sbin/dmsetup"))])]
      .sort().map((p) => ({ path: p, file: p }))
    : inp.libs;
  const modules = await moduleOrder(
    inp.kver,
    sb ? [...SEED_MODULES, ...VERITY_MODULES] : SEED_MODULES,
    inp.sysroot,
  );
  let trustPath = `${opts.keyDir}/trust.json`;
  if (opts.trustFile && !(await Deno.stat(trustPath).then(() => true, () => false))) {
    trustPath = opts.trustFile;
  }
  try {
    await Deno.stat(`${opts.keyDir}/release.pem`);
  } catch {
    log.warn(
      `images: no release key in ${opts.keyDir}: generating a DEVELOPMENT key (never ship it)`,
    );
    // With the default key folder the trust file goes where `deno task
    // keygen` puts it (./.phase/trust, read by serve and fetch: TM-12).
    const k = await keygen(
      opts.keyDir,
      "release",
      opts.trustFile ? { trustPath: opts.trustFile } : {},
    );
    trustPath = k.paths.trust;
  }
  mark("inputs", t);

  // 2. Seed initramfs.
  t = step(log, 2, TOTAL, "seed initramfs (busybox, kexec-tools + libraries, init, modules)");
  const seedRoot = `${opts.work}/seed-initramfs`;
  await baseTree(seedRoot, inp, modules);
  await copyFile(inp.kexec, `${seedRoot}/sbin/kexec`, 0o755);
  if (sb) await copyFile("/usr/sbin/dmsetup", `${seedRoot}/sbin/dmsetup`, 0o755);
  // Private mode over Tor (TM-13): the boot starts /usr/sbin/tor when present.
  if (inp.tor) await copyFile(inp.tor, `${seedRoot}/usr/sbin/tor`, 0o755);
  for (const lib of libs) await copyFile(lib.file, `${seedRoot}${lib.path}`, 0o755);
  await writeText(`${seedRoot}/init`, seedInit({ secureBoot: !!sb }), 0o755);
  await writeText(`${seedRoot}/usr/share/udhcpc/default.script`, udhcpcScript(), 0o755);
  // In the initramfs, on PATH: it must work even when the seed partition does not mount.
  await writeText(`${seedRoot}/usr/bin/phase-diag`, phaseDiag(), 0o755);
  await copyFile(trustPath, `${seedRoot}/etc/phase/trust.json`, 0o644);
  await writeText(
    `${seedRoot}/etc/phase/policy.toml`,
    `mode = "internet"\nchannel = "${opts.channel}"\ncache_enabled = true\nmin_version = "2025.10.01"\nallow_tor = ${
      opts.allowTor ? "true" : "false"
    }\nprovider = ""\n`,
  );
  if (opts.torrc !== undefined) {
    // Checked here too, so a bad fragment fails the build, not the boot.
    await writeText(
      `${seedRoot}/etc/phase/torrc`,
      checkTorrcFragment(opts.torrc).join("\n") + "\n",
    );
  }
  const seedInitrd = `${opts.out}/${base}-seed.initramfs`;
  await makeCpio(seedRoot, seedInitrd, opts.epoch);
  mark("seed-initramfs", t);

  // 3. Squashfs seed.
  t = step(log, 3, TOTAL, "squashfs seed (Deno, bundled entrypoints, launchers)");
  const sqRoot = `${opts.work}/seed-squashfs`;
  await copyFile(deno, `${sqRoot}/deno`, 0o755);
  const launchers = await seedTree(opts, sqRoot);
  await clampTimes(sqRoot, opts.epoch);
  const squash = `${opts.out}/${base}-seed.squashfs`;
  await Deno.remove(squash).catch(() => {});
  await runTool("mksquashfs", [
    sqRoot,
    squash,
    "-noappend",
    "-no-xattrs",
    "-all-root",
    "-comp",
    "zstd",
    "-processors",
    "1",
    "-mkfs-time",
    String(opts.epoch),
    "-all-time",
    String(opts.epoch),
    "-quiet",
    "-no-progress",
  ]);
  log.info(`images: launchers: ${launchers.join(", ")}`);
  // Secure Boot: the partition holds the squashfs and its dm-verity hash tree.
  let seedPart = squash;
  let verity: Verity | undefined;
  if (sb) {
    seedPart = `${opts.work}/seed-verity.img`;
    verity = await verityFormat(
      squash,
      seedPart,
      sha256Hex(`phase-images:${opts.arch}:verity-salt`).slice(0, 64),
    );
    log.info(`images: dm-verity root hash ${verity.rootHash} (${verity.dataBlocks} data blocks)`);
  }
  mark("squashfs", t);

  // 4. ESP.
  t = step(
    log,
    4,
    TOTAL,
    sb
      ? "ESP (FAT32, signed systemd-boot, signed seed UKIs, loader entries)"
      : "ESP (FAT32, systemd-boot, loader entries, GRUB fallback)",
  );
  const espDir = `${opts.work}/esp`;
  await Deno.mkdir(espDir, { recursive: true });
  const extra = [
    opts.provider ? `phase.provider=${opts.provider}` : "",
    opts.extraCmdline ?? "",
    verity ? verityCmdline(verity) : "",
  ].filter(Boolean).join(" ");
  // One list of modes feeds both the systemd-boot entries and GRUB's menu.
  const modes: BootMode[] = ["internet", "local", "private"].map((mode) => ({
    id: mode,
    title: `Phase seed (${mode})`,
    options: [`console=${A.console}`, `phase.mode=${mode}`, extra].filter(Boolean).join(" "),
  }));
  const entries: [string, string][] = [];
  await writeText(`${espDir}/loader.conf`, loaderConf("internet.conf"));
  const espId = derivedUuid(`${opts.arch}:esp-id`).replaceAll("-", "").slice(0, 8);
  const espMib = sb ? SECURE_BOOT_ESP_MIB : ESP_MIB;
  let espFiles: [string, string][];
  if (sb) {
    // One signed UKI per mode: the firmware's check covers the kernel, the
    // seed initramfs and the command line (with the verity root hash).
    // systemd-stub ignores a loader's command line under Secure Boot.
    const sdboot = `${espDir}/systemd-boot.signed.efi`;
    await sbsign(sb, inp.sdboot, sdboot, opts.epoch);
    espFiles = [[`/EFI/BOOT/${A.efiName}`, sdboot], [
      "/loader/loader.conf",
      `${espDir}/loader.conf`,
    ]];
    const linuxBytes = (await Deno.stat(kernel)).size;
    for (const m of modes) {
      const parts = {
        osrel: `${espDir}/${m.id}.osrel`,
        cmdline: `${espDir}/${m.id}.cmdline`,
        linux: kernel,
        initrd: seedInitrd,
      };
      await writeText(parts.osrel, ukiOsRelease(m.id));
      await writeText(parts.cmdline, m.options);
      const raw = `${espDir}/${m.id}.unsigned.efi`;
      await Deno.remove(raw).catch(() => {});
      await runTool("objcopy", ukiObjcopyArgs(parts, linuxBytes, UKI_STUB, raw));
      await Deno.writeFile(raw, pinPeHeader(await Deno.readFile(raw), opts.epoch));
      const uki = `${espDir}/seed-${m.id}.efi`;
      await sbsign(sb, raw, uki, opts.epoch);
      const ukiEsp = `${UKI_ESP_DIR}/seed-${m.id}.efi`;
      const p = `${espDir}/${m.id}.conf`;
      await writeText(p, ukiLoaderEntry(m.title, ukiEsp));
      entries.push([`/loader/entries/${m.id}.conf`, p]);
      espFiles.push([ukiEsp, uki]);
    }
    espFiles.push(...entries);
    log.info(
      "images: Secure Boot: signed systemd-boot and seed UKIs; no GRUB fallback and no bare kernel on the ESP",
    );
  } else {
    for (const m of modes) {
      const p = `${espDir}/${m.id}.conf`;
      await writeText(p, loaderEntry(m.title, m.options));
      entries.push([`/loader/entries/${m.id}.conf`, p]);
    }
    // GRUB fallback: standalone EFI binary, grub.cfg in its memdisk, reachable
    // from systemd-boot's menu (grub.conf) or a firmware entry for its path.
    const G = GRUB_ARCH[opts.arch];
    const grubEfi = `${espDir}/${G.efi}`;
    const grubEsp = `${GRUB_ESP_DIR}/${G.efi}`;
    await writeText(
      `${espDir}/grub.cfg`,
      grubCfg(modes, "internet", `${espId.slice(0, 4)}-${espId.slice(4)}`, {
        linux: "/phase/linux",
        initrd: "/phase/initrd",
      }),
    );
    await Deno.writeFile(
      `${espDir}/memdisk.tar`,
      ustar([["boot/grub/grub.cfg", await Deno.readFile(`${espDir}/grub.cfg`)]], opts.epoch),
    );
    await runTool(
      "grub-mkimage",
      grubMkimageArgs(opts.arch, inp.grubDir, `${espDir}/memdisk.tar`, grubEfi),
    );
    await writeText(`${espDir}/grub.conf`, grubLoaderEntry(grubEsp));
    log.info(`images: GRUB fallback ${grubEsp} (${G.format}, embedded grub.cfg, entry grub.conf)`);
    espFiles = [
      [`/EFI/BOOT/${A.efiName}`, inp.sdboot],
      [grubEsp, grubEfi],
      ["/loader/loader.conf", `${espDir}/loader.conf`],
      ...entries,
      ["/loader/entries/grub.conf", `${espDir}/grub.conf`],
      ["/phase/linux", kernel],
      ["/phase/initrd", seedInitrd],
    ];
  }
  const espStage = `${opts.work}/esp-files`;
  const staged: [string, string][] = [];
  for (const [dst, src] of espFiles) {
    const s = `${espStage}${dst}`;
    await copyFile(src, s, 0o644);
    staged.push([dst, s]);
  }
  await clampTimes(espStage, opts.epoch);
  const esp = `${opts.work}/esp.img`;
  await makeEsp(esp, staged, opts.epoch, espId, espMib);
  mark("esp", t);

  // 5. Cache + GPT disk.
  t = step(log, 5, TOTAL, "ext4 cache and GPT disk image");
  const cache = `${opts.work}/cache.img`;
  await makeCache(
    cache,
    `${opts.work}/cache-tree`,
    opts.epoch,
    derivedUuid(`${opts.arch}:cache-fs`),
  );
  const squashSize = roundMiB((await Deno.stat(seedPart)).size) + MiB;
  const espStart = MiB;
  const seedStart = espStart + espMib * MiB;
  const cacheStart = seedStart + squashSize;
  const total = cacheStart + CACHE_MIB * MiB + MiB;
  const img = `${opts.out}/${base}.img`;
  await Deno.remove(img).catch(() => {});
  const f = await Deno.open(img, { write: true, create: true });
  await f.truncate(total);
  f.close();
  const sector = (n: number) => n / 512;
  const script = [
    "label: gpt",
    `label-id: ${derivedUuid(`${opts.arch}:disk`)}`,
    "unit: sectors",
    "first-lba: 2048",
    `start=${sector(espStart)}, size=${
      sector(espMib * MiB)
    }, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, uuid=${
      derivedUuid(`${opts.arch}:esp`)
    }, name="${PART_NAMES.esp}"`,
    `start=${sector(seedStart)}, size=${
      sector(squashSize)
    }, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, uuid=${
      derivedUuid(`${opts.arch}:seed`)
    }, name="${PART_NAMES.seed}"`,
    `start=${sector(cacheStart)}, size=${
      sector(CACHE_MIB * MiB)
    }, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, uuid=${
      derivedUuid(`${opts.arch}:cache`)
    }, name="${PART_NAMES.cache}"`,
    "",
  ].join("\n");
  await runTool("sfdisk", ["--quiet", "--no-reread", "--no-tell-kernel", img], {
    stdin: new TextEncoder().encode(script),
  });
  await writeAt(img, esp, espStart);
  await writeAt(img, seedPart, seedStart);
  await writeAt(img, cache, cacheStart);
  mark("disk", t);

  // 6. Conversions.
  t = step(log, 6, TOTAL, "QCOW2 and Parallels");
  const qcow = `${opts.out}/${base}.qcow2`;
  await runTool("qemu-img", ["convert", "-f", "raw", "-O", "qcow2", img, qcow]);
  const hdd = `${opts.out}/${base}.hdd`;
  await Deno.remove(hdd, { recursive: true }).catch(() => {});
  await Deno.mkdir(hdd, { recursive: true });
  const hds = `${base}.hdd.0.{5fbaabe3-6958-40ff-92a7-860e329aab41}.hds`;
  await runTool("qemu-img", ["convert", "-f", "raw", "-O", "parallels", img, `${hdd}/${hds}`]);
  await writeText(
    `${hdd}/DiskDescriptor.xml`,
    diskDescriptor(total, hds, derivedUuid(`${opts.arch}:parallels`)),
  );
  mark("convert", t);

  // 7. Target release.
  let release: string | undefined;
  let n = 7;
  if (!opts.skipRelease) {
    t = step(
      log,
      n++,
      TOTAL,
      `target release ${opts.channel}/${opts.arch} ${opts.version} (signed)`,
    );
    const tRoot = `${opts.work}/target-initramfs`;
    await baseTree(tRoot, inp, modules);
    await writeText(`${tRoot}/init`, targetInit(opts.version), 0o755);
    for (const lib of libs) await copyFile(lib.file, `${tRoot}${lib.path}`, 0o755);
    const relDir = `${opts.artifacts}/${opts.channel}/${opts.arch}`;
    await Deno.mkdir(relDir, { recursive: true });
    await makeCpio(tRoot, `${relDir}/initramfs`, opts.epoch);
    if (sb) {
      // kexec_file_load under lockdown accepts only a kernel signed by a key
      // the running kernel trusts; the firmware's db is its platform keyring.
      await signKernel(sb, kernel, `${relDir}/kernel`, opts.work, opts.epoch);
      log.info("images: target kernel signed with the db key (kexec -s under lockdown)");
    } else {
      await Deno.copyFile(kernel, `${relDir}/kernel`);
    }
    await Deno.chmod(`${relDir}/kernel`, 0o644);
    const key = await loadSigningKey(`${opts.keyDir}/release.pem`);
    const r = await signRelease({
      root: opts.artifacts,
      channel: opts.channel,
      arch: opts.arch,
      version: opts.version,
      expiresInMs: 30 * 86_400_000,
      now: opts.now,
      cmdline: `console=${A.console}`,
    }, key);
    release = r.path;
    log.info(`images: release ${r.path} cid ${r.cid}`);
    mark("release", t);
  }

  // 8. SHA256SUMS + signature.
  t = step(log, n, TOTAL, "SHA256SUMS and signature");
  const outputs: string[] = [];
  for (const e of await walk(opts.out)) {
    if (e.isDir || e.rel === "SHA256SUMS" || e.rel === "SHA256SUMS.sig") continue;
    outputs.push(e.rel);
  }
  const sums =
    (await Promise.all(outputs.map(async (o) => `${await sha256File(`${opts.out}/${o}`)}  ${o}`)))
      .join("\n") + "\n";
  await Deno.writeTextFile(`${opts.out}/SHA256SUMS`, sums);
  const key = await loadSigningKey(`${opts.keyDir}/release.pem`);
  await Deno.writeTextFile(
    `${opts.out}/SHA256SUMS.sig`,
    JSON.stringify({
      keyid: key.keyid,
      sig: encodeBase64(signEd25519(key.key, new TextEncoder().encode(sums))),
    }) + "\n",
  );
  mark("sums", t);
  return { outputs, release, timingsMs: timings };
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
