/**
 * The GRUB fallback on the USB image's ESP: a standalone GRUB EFI binary
 * whose memdisk carries a grub.cfg offering the same three modes as the
 * systemd-boot loader entries (same kernel, initramfs and command lines).
 *
 * Reproducible and rootless: `grub-mkstandalone` (GRUB 2.06) stamps its
 * memdisk tar with the current time and ignores SOURCE_DATE_EPOCH, so the
 * build writes the memdisk tar itself (ustar, every mtime = the epoch,
 * owner 0:0) and runs `grub-mkimage` (deterministic for fixed inputs) with
 * the modules built into the core image.
 *
 * How firmware reaches it: systemd-boot (EFI/BOOT/BOOTX64.EFI) lists the
 * entry `grub.conf`, which chainloads `/EFI/phase/grubx64.efi` (pick it in
 * the menu, or make it the default/one-shot entry). When systemd-boot itself
 * cannot start, add a firmware boot entry for the binary, e.g.
 * `efibootmgr -c -d /dev/sdX -p 1 -L "Phase (GRUB)" -l '\EFI\phase\grubx64.efi'`,
 * or pick the file in the firmware's boot-from-file menu. Private to images/.
 *
 * @module
 */

/** Modules built into the GRUB core image (grub-mkimage adds their dependencies). */
export const GRUB_MODULES = [
  "memdisk",
  "tar",
  "normal",
  "configfile",
  "echo",
  "test",
  "part_gpt",
  "fat",
  "search",
  "search_fs_uuid",
  "linux",
  "efi_gop",
  "regexp",
] as const;

/** Seconds GRUB shows its menu before booting the default entry. */
export const GRUB_MENU_TIMEOUT_S = 3;
/** Console line GRUB prints as it boots an entry (`<prefix> <mode>`; tests grep it). */
export const GRUB_BOOT_MARKER = "phase-grub: booting";
/** GRUB's prefix: the memdisk holding grub.cfg. */
export const GRUB_PREFIX = "(memdisk)/boot/grub";

/** Per-architecture GRUB target, module directory and ESP file name. */
export const GRUB_ARCH = {
  amd64: { format: "x86_64-efi", efi: "grubx64.efi", package: "grub-efi-amd64-bin" },
  arm64: { format: "arm64-efi", efi: "grubaa64.efi", package: "grub-efi-arm64-bin" },
} as const;

/** ESP directory the GRUB binary lives in. */
export const GRUB_ESP_DIR = "/EFI/phase";

/** One boot mode: the same data feeds the loader entry and the GRUB menu entry. */
export interface BootMode {
  readonly id: string;
  readonly title: string;
  /** Kernel command line (the loader entry's `options`). */
  readonly options: string;
}

/** GRUB-script quoting of one command-line word (single quotes when not plain). */
export function grubWord(w: string): string {
  return /^[A-Za-z0-9._,:/=+@%-]+$/.test(w) ? w : `'${w.replaceAll("'", `'\\''`)}'`;
}

/**
 * The embedded grub.cfg. `espUuid` is the ESP's FAT volume id as GRUB prints
 * it (`xxxx-xxxx`): GRUB finds the kernel on the ESP it came from by that id.
 */
export function grubCfg(
  modes: readonly BootMode[],
  defaultId: string,
  espUuid: string,
  paths: { linux: string; initrd: string },
): string {
  const lines = [
    "# Phase GRUB fallback (embedded in the EFI binary's memdisk): the same",
    "# kernel, initramfs and command lines as the systemd-boot loader entries.",
    `set default=${grubWord(defaultId)}`,
    `set timeout=${GRUB_MENU_TIMEOUT_S}`,
    "set timeout_style=menu",
    "# Like systemd-boot's `editor no`: a superuser with no password locks the",
    "# entry editor and the GRUB shell; the entries stay bootable (--unrestricted).",
    "set superusers=phase-locked",
    "# The ESP this binary was loaded from ($cmdpath is `(hdX,gptN)/EFI/phase`);",
    "# by the image's FAT volume id only when that device lacks the kernel.",
    `regexp --set=1:root '^\\((.*)\\)' "$cmdpath"`,
    `if [ ! -f ${grubWord(paths.linux)} ]; then`,
    `  search --no-floppy --fs-uuid --set=root ${grubWord(espUuid)}`,
    "fi",
    `echo "${GRUB_BOOT_MARKER.replace("booting", "ESP")} ($root)"`,
    "",
  ];
  for (const m of modes) {
    lines.push(
      `menuentry ${grubWord(m.title)} --id ${grubWord(m.id)} --unrestricted {`,
      `  echo ${grubWord(`${GRUB_BOOT_MARKER} ${m.id}`)}`,
      `  linux ${grubWord(paths.linux)} ${
        m.options.split(/\s+/).filter(Boolean).map(grubWord).join(" ")
      }`,
      `  initrd ${grubWord(paths.initrd)}`,
      "}",
    );
  }
  return lines.join("\n") + "\n";
}

/** The systemd-boot entry that chainloads the GRUB fallback. */
export function grubLoaderEntry(efiPath: string): string {
  return `title Phase seed (GRUB fallback)\nefi ${efiPath}\n`;
}

function octal(n: number, width: number): string {
  return n.toString(8).padStart(width - 1, "0") + "\0";
}

/**
 * A ustar archive of `files` (path -> bytes): mode 0644, owner 0:0, every
 * mtime `epoch`, in the given order, two zero blocks at the end.
 */
export function ustar(files: readonly [string, Uint8Array][], epoch: number): Uint8Array {
  const enc = new TextEncoder();
  const blocks: Uint8Array[] = [];
  for (const [path, data] of files) {
    const name = enc.encode(path);
    if (name.length > 100) throw new RangeError(`tar path too long: ${path}`);
    const h = new Uint8Array(512);
    const put = (off: number, s: string) => h.set(enc.encode(s), off);
    h.set(name, 0);
    put(100, octal(0o644, 8));
    put(108, octal(0, 8));
    put(116, octal(0, 8));
    put(124, octal(data.length, 12));
    put(136, octal(epoch, 12));
    put(148, "        ");
    put(156, "0");
    put(257, "ustar\0");
    put(263, "00");
    put(265, "root");
    put(297, "root");
    let sum = 0;
    for (const b of h) sum += b;
    put(148, sum.toString(8).padStart(6, "0") + "\0 ");
    blocks.push(h, data, new Uint8Array((512 - (data.length % 512)) % 512));
  }
  blocks.push(new Uint8Array(1024));
  const out = new Uint8Array(blocks.reduce((n, b) => n + b.length, 0));
  let o = 0;
  for (const b of blocks) {
    out.set(b, o);
    o += b.length;
  }
  return out;
}

/** grub-mkimage arguments for a standalone EFI binary with `memdisk` as its memdisk. */
export function grubMkimageArgs(
  arch: keyof typeof GRUB_ARCH,
  moduleDir: string,
  memdisk: string,
  out: string,
): string[] {
  return [
    "-O",
    GRUB_ARCH[arch].format,
    "-d",
    moduleDir,
    "-p",
    GRUB_PREFIX,
    "-m",
    memdisk,
    "-o",
    out,
    ...GRUB_MODULES,
  ];
}

/**
 * The contents of the ustar member `name` found anywhere in `bytes` (GRUB's
 * memdisk is stored uncompressed in the EFI binary), or undefined.
 */
export function findUstarMember(bytes: Uint8Array, name: string): Uint8Array | undefined {
  const want = new TextEncoder().encode(name + "\0");
  const dec = new TextDecoder();
  outer: for (let i = 0; i + 512 <= bytes.length; i++) {
    for (let j = 0; j < want.length; j++) if (bytes[i + j] !== want[j]) continue outer;
    if (dec.decode(bytes.subarray(i + 257, i + 262)) !== "ustar") continue;
    const size = parseInt(dec.decode(bytes.subarray(i + 124, i + 135)), 8);
    return bytes.slice(i + 512, i + 512 + size);
  }
  return undefined;
}

/** Splits one GRUB script line into words (plain and single-quoted words only). */
export function grubSplit(line: string): string[] {
  const words: string[] = [];
  let cur = "";
  let inWord = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (c === "'") {
      const end = line.indexOf("'", i + 1);
      if (end < 0) throw new SyntaxError(`unterminated quote in: ${line}`);
      cur += line.slice(i + 1, end);
      inWord = true;
      i = end;
    } else if (c === "\\" && i + 1 < line.length) {
      cur += line[++i];
      inWord = true;
    } else if (/\s/.test(c)) {
      if (inWord) words.push(cur);
      cur = "";
      inWord = false;
    } else {
      cur += c;
      inWord = true;
    }
  }
  if (inWord) words.push(cur);
  return words;
}

/** What a grub.cfg menu entry boots: id, kernel, initrd and command line. */
export interface GrubEntry {
  readonly id: string;
  readonly title: string;
  readonly linux: string;
  readonly initrd: string;
  readonly options: string;
}

/** Parses the menu entries of a grub.cfg written by grubCfg. */
export function parseGrubCfg(text: string): { default?: string; entries: GrubEntry[] } {
  const entries: GrubEntry[] = [];
  let def: string | undefined;
  let cur:
    | { id?: string; title?: string; linux?: string; initrd?: string; options?: string }
    | null = null;
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (!line || line.startsWith("#")) continue;
    const w = grubSplit(line);
    if (w[0] === "set" && w[1]?.startsWith("default=")) def = w[1].slice("default=".length);
    if (w[0] === "menuentry") {
      cur = { title: w[1], id: w[w.indexOf("--id") + 1] };
    } else if (cur && w[0] === "linux") {
      cur.linux = w[1];
      cur.options = w.slice(2).join(" ");
    } else if (cur && w[0] === "initrd") {
      cur.initrd = w[1];
    } else if (cur && w[0] === "}") {
      entries.push({
        id: cur.id ?? "",
        title: cur.title ?? "",
        linux: cur.linux ?? "",
        initrd: cur.initrd ?? "",
        options: cur.options ?? "",
      });
      cur = null;
    }
  }
  return { default: def, entries };
}
