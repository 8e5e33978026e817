/**
 * The chainload fallback: when kexec fails, set systemd-boot's
 * `LoaderEntryOneShot` EFI variable (Boot Loader Interface) to the entry
 * that chainloads the target, then reboot. efivarfs files are 4 bytes of
 * little-endian attributes followed by the data; systemd-boot reads the
 * entry id as NUL-terminated UTF-16LE.
 *
 * @module
 */
import { KexecError } from "./errors.ts";

/** systemd-boot's loader vendor GUID. */
export const LOADER_GUID = "4a67b082-0a4c-41cf-b6c7-440b29bb8c4f";
/** Where the seed mounts efivarfs (a second mount: Deno refuses scoped access under /sys). */
export const EFIVARS_DIR = "/run/phase/efivars";
/** NON_VOLATILE | BOOTSERVICE_ACCESS | RUNTIME_ACCESS. */
export const EFI_VARIABLE_NV_BS_RT = 0x7;
/** Longest entry id accepted (systemd-boot ids are file names). */
export const MAX_ENTRY_ID_CHARS = 255;

const ENTRY_ID_RE = /^[A-Za-z0-9][A-Za-z0-9@._+-]*$/;

/** efivarfs bytes for a UTF-16LE string variable: attributes + string + NUL. */
export function encodeEfiString(value: string, attributes = EFI_VARIABLE_NV_BS_RT): Uint8Array {
  const out = new Uint8Array(4 + (value.length + 1) * 2);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, attributes, true);
  for (let i = 0; i < value.length; i++) dv.setUint16(4 + i * 2, value.charCodeAt(i), true);
  return out;
}

/** Inverse of {@link encodeEfiString}. */
export function decodeEfiString(bytes: Uint8Array): { attributes: number; value: string } {
  if (bytes.length < 4 || (bytes.length - 4) % 2) {
    throw new KexecError("E_FALLBACK", "EFI variable is not attributes + UTF-16LE");
  }
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let value = "";
  for (let o = 4; o < bytes.length; o += 2) {
    const c = dv.getUint16(o, true);
    if (c === 0) break;
    value += String.fromCharCode(c);
  }
  return { attributes: dv.getUint32(0, true), value };
}

/** Checks an entry id the way systemd-boot names entries (`phase-chainload.conf`). */
export function checkEntryId(id: string): string {
  if (id.length === 0 || id.length > MAX_ENTRY_ID_CHARS || !ENTRY_ID_RE.test(id)) {
    throw new KexecError("E_FALLBACK", `invalid boot loader entry id '${id}'`, {
      hint: "use the file name of a loader entry, e.g. phase-chainload.conf",
    });
  }
  return id;
}

/** Path of a loader variable in efivarfs. */
export function loaderVariablePath(name: string, dir = EFIVARS_DIR): string {
  return `${dir}/${name}-${LOADER_GUID}`;
}

/** Options of {@link setOneShotEntry}. */
export interface OneShotOptions {
  /** Where efivarfs is mounted (default `/run/phase/efivars`). */
  readonly dir?: string;
  /** Makes an existing variable file deletable (efivarfs marks it immutable; busybox `chattr -i`). */
  readonly unlinkImmutable?: (path: string) => Promise<void>;
}

/**
 * Writes systemd-boot's `LoaderEntryOneShot` EFI variable so that the next
 * boot, and only that one, starts entry `entryId`; returns the variable's
 * path. An existing variable file is immutable in efivarfs: it is removed
 * first through `unlinkImmutable`. Throws {@link KexecError} `E_FALLBACK`.
 */
export async function setOneShotEntry(
  entryId: string,
  opts: OneShotOptions = {},
): Promise<string> {
  const path = loaderVariablePath("LoaderEntryOneShot", opts.dir);
  const bytes = encodeEfiString(checkEntryId(entryId));
  try {
    await Deno.lstat(path);
    if (opts.unlinkImmutable) await opts.unlinkImmutable(path);
    await Deno.remove(path);
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) {
      throw new KexecError("E_FALLBACK", `cannot replace ${path}: ${(err as Error).message}`, {
        cause: err,
      });
    }
  }
  try {
    // efivarfs wants the whole variable in one write().
    const f = await Deno.open(path, { write: true, create: true, truncate: true, mode: 0o644 });
    try {
      const n = await f.write(bytes);
      if (n !== bytes.length) throw new Error(`short write (${n} of ${bytes.length} bytes)`);
    } finally {
      f.close();
    }
  } catch (err) {
    throw new KexecError("E_FALLBACK", `cannot write ${path}: ${(err as Error).message}`, {
      cause: err,
      hint:
        "is efivarfs mounted read-write at /run/phase/efivars? (BIOS boots have no EFI variables)",
    });
  }
  return path;
}

/** The EFI global variable GUID (SecureBoot, SetupMode, ...). */
export const EFI_GLOBAL_GUID = "8be4df61-93ca-11d2-aa0d-00e098032b8c";
/** Largest efivarfs file read for a one-byte variable. */
const MAX_FLAG_VARIABLE_BYTES = 64;

/**
 * True when the firmware booted with Secure Boot enforced: the SecureBoot
 * variable (4 attribute bytes, then one byte) holds 1. False when it is 0,
 * absent, or unreadable (no efivarfs: a BIOS boot).
 */
export async function secureBootEnabled(dir: string = EFIVARS_DIR): Promise<boolean> {
  try {
    const f = await Deno.open(`${dir}/SecureBoot-${EFI_GLOBAL_GUID}`, { read: true });
    try {
      const buf = new Uint8Array(MAX_FLAG_VARIABLE_BYTES);
      let n = 0;
      while (n < buf.length) {
        const r = await f.read(buf.subarray(n));
        if (r === null) break;
        n += r;
      }
      return n === 5 && buf[4] === 1;
    } finally {
      f.close();
    }
  } catch {
    return false;
  }
}
