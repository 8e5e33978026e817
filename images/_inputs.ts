/**
 * Step 1 of the image build: what it takes from the host (amd64) or an
 * arm64 sysroot (kernel, modules, busybox, kexec-tools, Deno and their
 * libraries), the Secure Boot keys, and the release key with its trust
 * file. Private to images/.
 *
 * @module
 */
import type { Logger } from "../core/mod.ts";
import { keygen } from "../sign/mod.ts";
import { ImagesError } from "./errors.ts";
import { runTool } from "./_run.ts";
import { neededClosure } from "./elf.ts";
import { GRUB_ARCH } from "./_grub.ts";
import { checkSecureBootKeys, type SecureBootKeys, VERITY_MODULES } from "./_secureboot.ts";
import { copyFile, writeText } from "./_fs.ts";
import { SEED_ROOT } from "./launcher.ts";

/** The architectures the build knows. */
export type Arch = "amd64" | "arm64";

/** Per-architecture names: removable-media EFI path, systemd-boot, console, libraries. */
export const ARCH = {
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

/**
 * Modules the seed loads, in this order after dependencies; the target
 * loads them too, but for {@link SEED_ONLY_MODULES}. Add a machine's disk
 * and network drivers here (docs/troubleshooting.md).
 */
export const SEED_MODULES = [
  "virtio_pci",
  "virtio_net",
  "virtio_blk",
  "virtio_rng",
  "squashfs",
  "vfat",
  "nls_cp437",
  "nls_iso8859_1",
  "nls_utf8",
  "nls_ascii",
  "efivarfs",
] as const;

/**
 * The ESP's filesystem and code pages: only the seed mounts the ESP (for
 * the chainload fallback), so the target's initramfs leaves them out
 * (issue 17: every byte of it is downloaded, hashed and unpacked after kexec).
 */
export const SEED_ONLY_MODULES: readonly string[] = [
  "vfat",
  "nls_cp437",
  "nls_iso8859_1",
  "nls_utf8",
  "nls_ascii",
];

/** How to fill an arm64 sysroot (rootless: apt-get download + dpkg-deb -x). */
export const ARM64_HINT =
  "run images/fetch_arm64.sh (after dpkg --add-architecture arm64 && apt-get update): it downloads the kernel linux-image-cloud-arm64 points at, busybox-static, kexec-tools and its libraries, systemd-boot-efi and grub-efi-arm64-bin for arm64, unpacks them with dpkg-deb -x into ./.cache/arm64/root (--sysroot) and Deno's arm64 build (npm pack @deno/linux-arm64-glibc) into ./.cache/arm64/deno/package/deno (--deno)";

/** A file to put into an image: its path there and the file to copy. */
export interface ImageFile {
  readonly path: string;
  readonly file: string;
}

/** What the build takes from the host (amd64) or from an arm64 sysroot. */
export interface Inputs {
  /** "" for the host. */
  readonly sysroot: string;
  readonly kernel: string;
  readonly kver: string;
  readonly kexec: string;
  readonly sdboot: string;
  /** GRUB EFI module directory (grub-efi-amd64-bin / grub-efi-arm64-bin). */
  readonly grubDir: string;
  readonly deno: string;
  /**
   * The libraries of the initramfs's own binaries (kexec-tools, tor): they
   * run before the seed partition is mounted. Loader path in the image ->
   * file to copy.
   */
  readonly libs: readonly ImageFile[];
  /**
   * Deno's libraries: they ride on the seed partition with Deno
   * ({@link SEED_RUNTIME}), so neither initramfs carries a copy that only
   * Deno needs (issue 17: the target's initramfs is downloaded, hashed
   * four times and unpacked after kexec).
   */
  readonly denoLibs: readonly ImageFile[];
  /** The tor binary to put into the seed (with `withTor`). */
  readonly tor?: string;
}

/** The build options step 1 reads (`BuildOptions` has them all). */
export interface InputsOptions {
  readonly arch: Arch;
  readonly keyDir: string;
  readonly trustFile?: string;
  readonly kernel?: string;
  readonly kver?: string;
  readonly sysroot?: string;
  readonly denoBin?: string;
  readonly withTor?: boolean;
  readonly secureBoot?: SecureBootKeys;
  readonly log: Logger;
}

/** Step 1's result: the inputs, what every initramfs holds, the trust file. */
export interface BuildInputs {
  readonly inputs: Inputs;
  /** Libraries the seed initramfs holds (with dmsetup's under Secure Boot). */
  readonly libs: readonly ImageFile[];
  /** Libraries the target initramfs holds: dmsetup's under Secure Boot, else none. */
  readonly targetLibs: readonly ImageFile[];
  /** Module files in load order. */
  readonly modules: string[];
  /** The trust file baked into the seed. */
  readonly trustPath: string;
}

/** Step 1: checks the Secure Boot keys, resolves the inputs, finds or makes the release key. */
export async function gatherInputs(opts: InputsOptions): Promise<BuildInputs> {
  const sb = opts.secureBoot;
  if (sb) await checkSecureBoot(opts.arch, sb, opts.log);
  const inputs = await resolveInputs(opts);
  // The seed and, under Secure Boot, the target open the seed partition
  // with dmsetup (verity) before it is mounted: it needs its own libraries.
  const dmsetupLibs = sb ? await lddFiles("/usr/sbin/dmsetup") : [];
  const libs = union(inputs.libs, dmsetupLibs);
  const modules = await moduleOrder(
    inputs.kver,
    sb ? [...SEED_MODULES, ...VERITY_MODULES] : SEED_MODULES,
    inputs.sysroot,
  );
  const trustPath = await releaseTrust(opts.keyDir, opts.trustFile, opts.log);
  return { inputs, libs, targetLibs: dmsetupLibs, modules, trustPath };
}

/** Refuses Secure Boot for arm64; warns loudly about the public test key. */
async function checkSecureBoot(arch: Arch, sb: SecureBootKeys, log: Logger): Promise<void> {
  if (arch !== "amd64") {
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

/** The files of `a` and `b`, each path once, sorted by path. */
function union(a: readonly ImageFile[], b: readonly ImageFile[]): ImageFile[] {
  const byPath = new Map([...a, ...b].map((l) => [l.path, l]));
  return [...byPath.values()].sort((x, y) => (x.path < y.path ? -1 : x.path > y.path ? 1 : 0));
}

/** Folder on the seed squashfs (below the seed root) holding Deno's libraries, each at `<folder><its path>`. */
export const RUNTIME_DIR = "runtime";
/** Where Deno's libraries sit at boot: {@link RUNTIME_DIR} on the mounted seed partition. */
export const SEED_RUNTIME = `${SEED_ROOT}/${RUNTIME_DIR}`;

/** The initramfs file listing the library paths its init links into {@link SEED_RUNTIME}. */
export const RUNTIME_LINKS = "/etc/phase/runtime-links";

/**
 * Puts an initramfs's libraries under `root`: a copy of each of `held`
 * (what runs before the seed partition is mounted needs them), and in
 * {@link RUNTIME_LINKS} the paths of Deno's other libraries, which the init
 * links to their copies on the seed partition.
 * Only Deno loads those, and Deno comes from that same partition: the
 * same medium, checked the same way (dm-verity under Secure Boot, TM-14).
 */
export async function initramfsLibs(
  root: string,
  held: readonly ImageFile[],
  denoLibs: readonly ImageFile[],
): Promise<void> {
  for (const lib of held) await copyFile(lib.file, `${root}${lib.path}`, 0o755);
  const paths = new Set(held.map((l) => l.path));
  const links = denoLibs.filter((l) => !paths.has(l.path)).map((l) => `${l.path}\n`);
  await writeText(`${root}${RUNTIME_LINKS}`, links.join(""));
}

/**
 * The trust file of the release key in `keyDir` (or `trustFile` when
 * `keyDir` has none); without a key, makes a development one.
 */
async function releaseTrust(
  keyDir: string,
  trustFile: string | undefined,
  log: Logger,
): Promise<string> {
  let trustPath = `${keyDir}/trust.json`;
  if (trustFile && !(await Deno.stat(trustPath).then(() => true, () => false))) {
    trustPath = trustFile;
  }
  try {
    await Deno.stat(`${keyDir}/release.pem`);
  } catch {
    log.warn(
      `images: no release key in ${keyDir}: generating a DEVELOPMENT key (never ship it)`,
    );
    // With the default key folder the trust file goes where `deno task
    // keygen` puts it (./.phase/trust, read by serve and fetch: TM-12).
    const k = await keygen(keyDir, "release", trustFile ? { trustPath: trustFile } : {});
    trustPath = k.paths.trust;
  }
  return trustPath;
}

/** The files `ldd` lists for `bin`, each at its own (absolute) path in the image. */
async function lddFiles(bin: string): Promise<ImageFile[]> {
  const text = new TextDecoder().decode(await runTool("ldd", [bin]));
  const libs = new Set<string>();
  for (const line of text.split("\n")) {
    const m = /=>\s*(\/\S+)/.exec(line) ?? /^\s*(\/\S+)\s+\(/.exec(line);
    if (m) libs.add(m[1]);
  }
  return [...libs].sort().map((p) => ({ path: p, file: p }));
}

/** Module files in load order (dependencies first, each once). */
export async function moduleOrder(
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
export async function baseTree(root: string, inp: Inputs, modules: string[]): Promise<void> {
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

/** The GRUB EFI module directory of `arch` (host, or the arm64 sysroot). */
async function grubModules(sysroot: string, arch: Arch): Promise<string> {
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
async function torBinary(sysroot: string, arch: Arch): Promise<string> {
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

/** The inputs of `opts.arch`: from the host (amd64) or the arm64 sysroot. */
function resolveInputs(opts: InputsOptions): Promise<Inputs> {
  const deno = denoBinary(opts);
  return opts.arch === "amd64" ? hostInputs(opts, deno) : sysrootInputs(opts, deno);
}

/** amd64: the host's kernel (or --kernel), kexec-tools, GRUB and the libraries `ldd` lists. */
async function hostInputs(opts: InputsOptions, deno: string): Promise<Inputs> {
  const { kernel, kver } = opts.kernel
    ? { kernel: opts.kernel, kver: opts.kver ?? "" }
    : await hostKernel();
  const tor = opts.withTor ? await torBinary("", "amd64") : undefined;
  const libs = union(await lddFiles("/usr/sbin/kexec"), tor ? await lddFiles(tor) : []);
  return {
    sysroot: "",
    kernel,
    kver,
    kexec: "/usr/sbin/kexec",
    sdboot: ARCH.amd64.sdboot,
    grubDir: await grubModules("", "amd64"),
    deno,
    libs,
    denoLibs: await lddFiles(deno),
    tor,
  };
}

/** arm64: kernel, kexec-tools, GRUB and the ELF library closure from the sysroot. */
async function sysrootInputs(opts: InputsOptions, deno: string): Promise<Inputs> {
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
  const dirs = ["/lib/aarch64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/lib"];
  const libs = await neededClosure(sysroot, [kexec, ...(tor ? [tor] : [])], dirs);
  const denoLibs = await neededClosure(sysroot, [deno], dirs);
  return {
    sysroot,
    kernel,
    kver,
    kexec,
    sdboot: `${sysroot}${ARCH.arm64.sdboot}`,
    grubDir: await grubModules(sysroot, "arm64"),
    deno,
    libs,
    denoLibs,
    tor,
  };
}

function denoBinary(opts: { readonly denoBin?: string }): string {
  return opts.denoBin ?? Deno.env.get("PHASE_DENO_BIN") ?? "/usr/lib/node_modules/deno/deno";
}
