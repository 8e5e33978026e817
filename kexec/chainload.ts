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
/** Where the seed's init mounts efivarfs (see efivar.ts). */
export const DEFAULT_EFIVARS = EFIVARS_DIR;
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

/** Installs the staged target and its entry on the ESP; returns the entry path. */
export async function installChainloadEntry(
  staged: Staged,
  opts: { esp: string; entry: string; mode: Mode },
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
