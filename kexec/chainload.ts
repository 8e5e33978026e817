/**
 * The chainload fallback when kexec cannot load or run the target: the
 * re-checked staged copies go onto the ESP as `/phase/target/{linux,initrd}`
 * with a systemd-boot entry carrying the target's command line, then
 * `LoaderEntryOneShot` selects that entry for the next boot only. The
 * firmware (and, under Secure Boot, its signature check: TM-14) loads the
 * kernel from there. The window between writing the ESP and the reboot is
 * only reachable by root on this machine.
 *
 * @module
 */
import { checkEntryId, EFIVARS_DIR } from "./efivar.ts";
import { KexecError } from "./errors.ts";
import type { Mode } from "../verify/mod.ts";
import { type Staged, targetCmdline } from "./kexec.ts";

/** Where the seed's init mounts the ESP (read-write, non-private modes only). */
export const DEFAULT_ESP = "/run/phase/esp";
/** Where the seed's init mounts efivarfs (a second mount: Deno refuses scoped access under /sys). */
export const DEFAULT_EFIVARS: string = EFIVARS_DIR;
/** Command-line word that tells the target it came up through the fallback. */
export const CHAINLOAD_MARK = "phase.boot=chainload";

async function copyDurable(src: string, dst: string): Promise<void> {
  const tmp = `${dst}.tmp`;
  await Deno.remove(tmp).catch(() => {});
  await Deno.copyFile(src, tmp);
  const f = await Deno.open(tmp, { read: true, write: true });
  try {
    await f.sync();
  } finally {
    f.close();
  }
  await Deno.rename(tmp, dst);
}

/** The loader entry text for the staged target. */
export function chainloadEntry(staged: Staged, mode: Mode): string {
  return [
    `title Phase target ${staged.version} (chainload fallback)`,
    "linux /phase/target/linux",
    "initrd /phase/target/initrd",
    `options ${targetCmdline(staged.manifestCmdline, mode)} ${CHAINLOAD_MARK}`,
    "",
  ].join("\n");
}

/** Options of {@link installChainloadEntry}. */
export interface ChainloadOptions {
  /** The mounted ESP (it must hold `loader/loader.conf`), e.g. {@link DEFAULT_ESP}. */
  readonly esp: string;
  /** File name of the loader entry, e.g. `phase-chainload.conf`. */
  readonly entry: string;
  /** Boot mode passed to the target as `phase.mode=<mode>`. */
  readonly mode: Mode;
}

/**
 * Installs the staged target (`/phase/target/{linux,initrd}`) and its
 * systemd-boot entry on the ESP; returns the entry path. Throws
 * {@link KexecError} `E_FALLBACK` when the ESP is not mounted or not writable.
 */
export async function installChainloadEntry(
  staged: Staged,
  opts: ChainloadOptions,
): Promise<string> {
  const entry = checkEntryId(opts.entry);
  try {
    // Only onto a mounted ESP (it has /loader); never create one on tmpfs.
    await Deno.stat(`${opts.esp}/loader/loader.conf`);
    await Deno.mkdir(`${opts.esp}/phase/target`, { recursive: true });
    await Deno.mkdir(`${opts.esp}/loader/entries`, { recursive: true });
    await copyDurable(staged.kernel, `${opts.esp}/phase/target/linux`);
    await copyDurable(staged.initramfs, `${opts.esp}/phase/target/initrd`);
    const conf = `${opts.esp}/loader/entries/${entry}`;
    await Deno.writeTextFile(`${conf}.tmp`, chainloadEntry(staged, opts.mode));
    await Deno.rename(`${conf}.tmp`, conf);
    return conf;
  } catch (err) {
    throw new KexecError(
      "E_FALLBACK",
      `cannot install the chainload entry on ${opts.esp}: ${(err as Error).message}`,
      {
        cause: err,
        hint: "the seed mounts the ESP read-write at /run/phase/esp (not in private mode)",
      },
    );
  }
}
