/**
 * Step 4 of the image build: the FAT32 EFI system partition. Without
 * Secure Boot: systemd-boot, one loader entry per boot mode, the kernel
 * and seed initramfs, and a GRUB fallback. With Secure Boot: signed
 * systemd-boot and one signed seed UKI per mode, no GRUB and no bare
 * kernel. Private to images/.
 *
 * @module
 */
import type { Logger } from "../core/mod.ts";
import { runTool } from "./_run.ts";
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
  pinPeHeader,
  sbsign,
  SECURE_BOOT_ESP_MIB,
  type SecureBootKeys,
  UKI_ESP_DIR,
  UKI_STUB,
  ukiLoaderEntry,
  ukiObjcopyArgs,
  ukiOsRelease,
  type Verity,
  verityCmdline,
} from "./_secureboot.ts";
import { loaderConf, loaderEntry } from "./_files.ts";
import { clampTimes, copyFile, derivedUuid, writeText } from "./_fs.ts";
import { ARCH, type Arch } from "./_inputs.ts";
import { SEED_ROOTFS_KEY } from "../client/mod.ts";

/** ESP size in MiB (FAT32 needs at least 65525 clusters). */
export const ESP_MIB = 64;

/** A file on the ESP: its ESP path, the host file to copy. */
type EspFile = [espPath: string, hostPath: string];

/** What the ESP is made of. */
export interface EspInput {
  readonly arch: Arch;
  /** Work folder (staging, the image). */
  readonly work: string;
  readonly epoch: number;
  readonly kernel: string;
  /** The seed initramfs. */
  readonly initrd: string;
  /** systemd-boot as shipped (signed here under Secure Boot). */
  readonly sdboot: string;
  /** GRUB EFI module directory (the fallback without Secure Boot). */
  readonly grubDir: string;
  readonly provider?: string;
  readonly extraCmdline?: string;
  /** The seed partition's verity parameters, put on the command line. */
  readonly verity?: Verity;
  /**
   * sha256 (hex) of the squashfs on the seed partition, which is also the
   * release's rootfs: `phase.seed_rootfs=`, so the seed does not download
   * it again (issue 17).
   */
  readonly seedRootfs?: string;
  readonly secureBoot?: SecureBootKeys;
  readonly log: Logger;
}

/** Step 4's result: the FAT image and its size. */
export interface Esp {
  readonly image: string;
  readonly mib: number;
}

/** What both kinds of ESP content are built from. */
interface EspContent {
  /** Folder of the generated files. */
  readonly dir: string;
  /** One entry per boot mode. */
  readonly modes: readonly BootMode[];
  /** FAT volume id (8 hex digits). */
  readonly id: string;
}

/** Step 4: generates the ESP's files and writes the FAT image. */
export async function buildEsp(inp: EspInput): Promise<Esp> {
  const dir = `${inp.work}/esp`;
  await Deno.mkdir(dir, { recursive: true });
  const modes = bootModes(ARCH[inp.arch].console, seedCmdline(inp));
  await writeText(`${dir}/loader.conf`, loaderConf("internet.conf"));
  const id = derivedUuid(`${inp.arch}:esp-id`).replaceAll("-", "").slice(0, 8);
  const mib = inp.secureBoot ? SECURE_BOOT_ESP_MIB : ESP_MIB;
  const content = { dir, modes, id };
  const files = inp.secureBoot
    ? await secureBootEspFiles(inp, inp.secureBoot, content)
    : await grubEspFiles(inp, content);
  const staged = await stageEspFiles(`${inp.work}/esp-files`, files, inp.epoch);
  const image = `${inp.work}/esp.img`;
  await makeEsp(image, staged, inp.epoch, id, mib);
  return { image, mib };
}

/** The seed's command line beyond console and mode: provider, extra, verity, own rootfs. */
function seedCmdline(inp: EspInput): string {
  return [
    inp.provider ? `phase.provider=${inp.provider}` : "",
    inp.extraCmdline ?? "",
    inp.verity ? verityCmdline(inp.verity) : "",
    inp.seedRootfs ? `${SEED_ROOTFS_KEY}=${inp.seedRootfs}` : "",
  ].filter(Boolean).join(" ");
}

/** One list of modes feeds both the systemd-boot entries and GRUB's menu. */
function bootModes(console: string, extra: string): BootMode[] {
  return ["internet", "local", "private"].map((mode) => ({
    id: mode,
    title: `Phase seed (${mode})`,
    options: [`console=${console}`, `phase.mode=${mode}`, extra].filter(Boolean).join(" "),
  }));
}

/**
 * Secure Boot: one signed UKI per mode: the firmware's check covers the
 * kernel, the seed initramfs and the command line (with the verity root
 * hash). systemd-stub ignores a loader's command line under Secure Boot.
 */
async function secureBootEspFiles(
  inp: EspInput,
  sb: SecureBootKeys,
  { dir, modes }: EspContent,
): Promise<EspFile[]> {
  const sdboot = `${dir}/systemd-boot.signed.efi`;
  await sbsign(sb, inp.sdboot, sdboot, inp.epoch);
  const files: EspFile[] = [
    [`/EFI/BOOT/${ARCH[inp.arch].efiName}`, sdboot],
    ["/loader/loader.conf", `${dir}/loader.conf`],
  ];
  const entries: EspFile[] = [];
  const linuxBytes = (await Deno.stat(inp.kernel)).size;
  for (const m of modes) {
    const parts = {
      osrel: `${dir}/${m.id}.osrel`,
      cmdline: `${dir}/${m.id}.cmdline`,
      linux: inp.kernel,
      initrd: inp.initrd,
    };
    await writeText(parts.osrel, ukiOsRelease(m.id));
    await writeText(parts.cmdline, m.options);
    const raw = `${dir}/${m.id}.unsigned.efi`;
    await Deno.remove(raw).catch(() => {});
    await runTool("objcopy", ukiObjcopyArgs(parts, linuxBytes, UKI_STUB, raw));
    await Deno.writeFile(raw, pinPeHeader(await Deno.readFile(raw), inp.epoch));
    const uki = `${dir}/seed-${m.id}.efi`;
    await sbsign(sb, raw, uki, inp.epoch);
    const ukiEsp = `${UKI_ESP_DIR}/seed-${m.id}.efi`;
    const p = `${dir}/${m.id}.conf`;
    await writeText(p, ukiLoaderEntry(m.title, ukiEsp));
    entries.push([`/loader/entries/${m.id}.conf`, p]);
    files.push([ukiEsp, uki]);
  }
  files.push(...entries);
  inp.log.info(
    "images: Secure Boot: signed systemd-boot and seed UKIs; no GRUB fallback and no bare kernel on the ESP",
  );
  return files;
}

/**
 * systemd-boot with a loader entry per mode, the kernel and seed initramfs,
 * and the GRUB fallback: a standalone EFI binary with grub.cfg in its
 * memdisk, reachable from systemd-boot's menu (grub.conf) or a firmware
 * entry for its path.
 */
async function grubEspFiles(inp: EspInput, { dir, modes, id }: EspContent): Promise<EspFile[]> {
  const entries: EspFile[] = [];
  for (const m of modes) {
    const p = `${dir}/${m.id}.conf`;
    await writeText(p, loaderEntry(m.title, m.options));
    entries.push([`/loader/entries/${m.id}.conf`, p]);
  }
  const G = GRUB_ARCH[inp.arch];
  const grubEfi = `${dir}/${G.efi}`;
  const grubEsp = `${GRUB_ESP_DIR}/${G.efi}`;
  await writeText(
    `${dir}/grub.cfg`,
    grubCfg(modes, "internet", `${id.slice(0, 4)}-${id.slice(4)}`, {
      linux: "/phase/linux",
      initrd: "/phase/initrd",
    }),
  );
  await Deno.writeFile(
    `${dir}/memdisk.tar`,
    ustar([["boot/grub/grub.cfg", await Deno.readFile(`${dir}/grub.cfg`)]], inp.epoch),
  );
  await runTool(
    "grub-mkimage",
    grubMkimageArgs(inp.arch, inp.grubDir, `${dir}/memdisk.tar`, grubEfi),
  );
  await writeText(`${dir}/grub.conf`, grubLoaderEntry(grubEsp));
  inp.log.info(
    `images: GRUB fallback ${grubEsp} (${G.format}, embedded grub.cfg, entry grub.conf)`,
  );
  return [
    [`/EFI/BOOT/${ARCH[inp.arch].efiName}`, inp.sdboot],
    [grubEsp, grubEfi],
    ["/loader/loader.conf", `${dir}/loader.conf`],
    ...entries,
    ["/loader/entries/grub.conf", `${dir}/grub.conf`],
    ["/phase/linux", inp.kernel],
    ["/phase/initrd", inp.initrd],
  ];
}

/** Copies `files` into `stage` under their ESP paths, 0644, times clamped. */
async function stageEspFiles(stage: string, files: EspFile[], epoch: number): Promise<EspFile[]> {
  const staged: EspFile[] = [];
  for (const [dst, src] of files) {
    const s = `${stage}${dst}`;
    await copyFile(src, s, 0o644);
    staged.push([dst, s]);
  }
  await clampTimes(stage, epoch);
  return staged;
}

/** Writes a FAT32 ESP image with `files` (ESP path -> host path). */
async function makeEsp(
  path: string,
  files: EspFile[],
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
