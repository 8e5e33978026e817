/**
 * Secure Boot images (TM-14, docs/secure-boot.md): the seed as a signed
 * Unified Kernel Image (systemd-stub + kernel + seed initramfs + command
 * line in one PE image), systemd-boot and the target kernel signed with the
 * owner's db key, the seed squashfs under dm-verity with its root hash in
 * the signed command line. Private to images/.
 *
 * Reproducible: objcopy stamps the PE header with the current time, so the
 * build pins TimeDateStamp to SOURCE_DATE_EPOCH (and zeroes the optional
 * CheckSum, which no firmware checks); sbsign puts the current time into
 * the PKCS#7 signingTime attribute, so it runs under `faketime` at the
 * epoch (RSA PKCS#1 v1.5 signatures are deterministic for fixed input).
 *
 * @module
 */
import { ImagesError } from "./errors.ts";
import { runTool } from "./_run.ts";
import { SEED_VERITY_KEYS } from "../client/mod.ts";

/** Debian's test certificate in PK, KEK and db of OVMF_VARS_4M.snakeoil.fd (ovmf). */
export const SNAKEOIL_CERT = "/usr/share/ovmf/PkKek-1-snakeoil.pem";
/** Its private key (passphrase "snakeoil"; public in the ovmf package). */
export const SNAKEOIL_KEY = "/usr/share/ovmf/PkKek-1-snakeoil.key";
/** systemd-stub from systemd-boot-efi: the UKI's PE front. */
export const UKI_STUB = "/usr/lib/systemd/boot/efi/linuxx64.efi.stub";
/** ESP directory of the signed seed UKIs (not /EFI/Linux: systemd-boot would list them twice). */
export const UKI_ESP_DIR = "/phase";
/** ESP size of a Secure Boot image in MiB: three UKIs, each with the kernel and the seed initramfs. */
export const SECURE_BOOT_ESP_MIB = 128;
/** dm-verity data and hash block size in bytes. */
export const VERITY_BLOCK_BYTES = 4096;
/** Device-mapper modules the seed loads (with their dependencies) to open the verity seed. */
export const VERITY_MODULES = ["dm_mod", "dm_verity"] as const;

/**
 * systemd-stub (252) section addresses, as its documentation gives them;
 * `.initrd` goes after the kernel, rounded up to 1 MiB (a kernel over
 * 16 MiB would overlap the documented 0x3000000).
 */
export const UKI_VMA = { osrel: 0x20000, cmdline: 0x30000, linux: 0x2000000 } as const;

const MiB = 1024 * 1024;

/** The `.initrd` section address for a kernel of `linuxBytes`. */
export function initrdVma(linuxBytes: number): number {
  return Math.max(0x3000000, Math.ceil((UKI_VMA.linux + linuxBytes) / MiB) * MiB);
}

/** objcopy arguments adding the UKI sections onto the stub. */
export function ukiObjcopyArgs(
  files: { osrel: string; cmdline: string; linux: string; initrd: string },
  linuxBytes: number,
  stub: string,
  out: string,
): string[] {
  const hex = (n: number) => `0x${n.toString(16)}`;
  return [
    "--add-section",
    `.osrel=${files.osrel}`,
    "--change-section-vma",
    `.osrel=${hex(UKI_VMA.osrel)}`,
    "--add-section",
    `.cmdline=${files.cmdline}`,
    "--change-section-vma",
    `.cmdline=${hex(UKI_VMA.cmdline)}`,
    "--add-section",
    `.linux=${files.linux}`,
    "--change-section-vma",
    `.linux=${hex(UKI_VMA.linux)}`,
    "--add-section",
    `.initrd=${files.initrd}`,
    "--change-section-vma",
    `.initrd=${hex(initrdVma(linuxBytes))}`,
    stub,
    out,
  ];
}

/**
 * Pins the PE/COFF header's TimeDateStamp to `epoch` and zeroes the
 * optional header's CheckSum (objcopy writes the build time into both).
 * Throws ImagesError `E_BUILD` on a file that is not PE.
 */
export function pinPeHeader(bytes: Uint8Array, epoch: number): Uint8Array {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.length < 0x40 || dv.getUint16(0, true) !== 0x5a4d) {
    throw new ImagesError("E_BUILD", "not a PE image (no MZ header)");
  }
  const pe = dv.getUint32(0x3c, true);
  if (pe + 24 + 68 > bytes.length || dv.getUint32(pe, true) !== 0x00004550) {
    throw new ImagesError("E_BUILD", "not a PE image (no PE signature)");
  }
  dv.setUint32(pe + 8, epoch >>> 0, true);
  dv.setUint32(pe + 24 + 64, 0, true);
  return bytes;
}

/** The DER bytes of the first certificate in a PEM text (undefined when there is none). */
export function pemDer(text: string): Uint8Array | undefined {
  const m = /-----BEGIN CERTIFICATE-----([\s\S]*?)-----END CERTIFICATE-----/.exec(text);
  if (!m) return undefined;
  const bin = atob(m[1].replace(/\s+/g, ""));
  return Uint8Array.from(bin, (c) => c.charCodeAt(0));
}

/** True when the certificate in `certPem` is Debian's snakeoil test certificate. */
export function isSnakeoilCert(certPem: string, snakeoilPem: string): boolean {
  const a = pemDer(certPem);
  const b = pemDer(snakeoilPem);
  return !!a && !!b && a.length === b.length && a.every((x, i) => x === b[i]);
}

/** The signing inputs of a Secure Boot build. */
export interface SecureBootKeys {
  /** PEM RSA private key of the db entry (unencrypted: sbsign cannot prompt here). */
  readonly key: string;
  /** PEM certificate enrolled in db. */
  readonly cert: string;
  /** Allow Debian's public snakeoil test key (tests only; logged loudly). */
  readonly unsafeTestKey?: boolean;
}

/**
 * Checks the key pair before anything is built: both readable, the
 * certificate PEM, and not the snakeoil test certificate unless
 * `unsafeTestKey`. Returns true when the snakeoil key is in use.
 */
export async function checkSecureBootKeys(
  k: SecureBootKeys,
  snakeoilPem = SNAKEOIL_CERT,
): Promise<boolean> {
  let cert: string;
  try {
    cert = await Deno.readTextFile(k.cert);
    await Deno.stat(k.key);
  } catch (err) {
    throw new ImagesError(
      "E_INPUT",
      `cannot read the db key or certificate: ${(err as Error).message}`,
      {
        cause: err,
        hint: "--db-key KEY.pem --db-cert CERT.pem (see docs/secure-boot.md: generating PK/KEK/db)",
      },
    );
  }
  if (!pemDer(cert)) {
    throw new ImagesError("E_INPUT", `--db-cert ${k.cert} holds no PEM certificate`, {
      hint: "openssl x509 -in CERT.der -inform der -out CERT.pem",
    });
  }
  const snake = await Deno.readTextFile(snakeoilPem).catch(() => "");
  const snakeoil = (snake !== "" && isSnakeoilCert(cert, snake)) || k.key === SNAKEOIL_KEY;
  if (snakeoil && !k.unsafeTestKey) {
    throw new ImagesError(
      "E_INPUT",
      "refusing Debian's snakeoil test key: its private key is public (ovmf package), so an image signed with it is signed by everyone",
      {
        hint: "generate your own PK/KEK/db (docs/secure-boot.md); tests pass --unsafe-test-key",
      },
    );
  }
  return snakeoil;
}

/** `faketime` date string of `epoch` (UTC: runTool sets TZ=UTC). */
export function faketimeDate(epoch: number): string {
  return new Date(epoch * 1000).toISOString().replace("T", " ").slice(0, 19);
}

/** sbsign `input` into `output` with `keys`, the PKCS#7 signing time pinned to `epoch`. */
export async function sbsign(
  keys: SecureBootKeys,
  input: string,
  output: string,
  epoch: number,
): Promise<void> {
  await Deno.remove(output).catch(() => {});
  // -f freezes the clock: without it faketime starts the clock at `epoch`
  // and lets it run, and a signature made past the first second carries
  // another signing time (two builds differed on a busy machine).
  await runTool("faketime", [
    "-f",
    faketimeDate(epoch),
    "sbsign",
    "--key",
    keys.key,
    "--cert",
    keys.cert,
    "--output",
    output,
    input,
  ]);
  // A signature that does not verify against the same certificate is a build error.
  await runTool("sbverify", ["--cert", keys.cert, output]);
}

/**
 * A kernel signed only with `keys`: any signature it carries (Debian's) is
 * removed first, so `kexec -s` accepts it because of the db key and for no
 * other reason.
 */
export async function signKernel(
  keys: SecureBootKeys,
  kernel: string,
  output: string,
  work: string,
  epoch: number,
): Promise<void> {
  const bare = `${work}/kernel.unsigned`;
  await Deno.copyFile(kernel, bare);
  await Deno.chmod(bare, 0o644);
  const list = new TextDecoder().decode(await runTool("sbverify", ["--list", bare]));
  if (/signature \d+/.test(list)) await runTool("sbattach", ["--remove", bare]);
  await sbsign(keys, bare, output, epoch);
}

/** dm-verity parameters of the seed partition, carried in the signed command line. */
export interface Verity {
  /** sha256 root hash of the hash tree (hex). */
  readonly rootHash: string;
  /** Salt (hex), derived from a label so builds repeat. */
  readonly salt: string;
  /** Data blocks (VERITY_BLOCK_BYTES each); the hash tree starts right after them. */
  readonly dataBlocks: number;
}

/** The command-line words the seed's init reads to open the verity seed. */
export function verityCmdline(v: Verity): string {
  const k = SEED_VERITY_KEYS;
  return `${k.rootHash}=${v.rootHash} ${k.salt}=${v.salt} ${k.blocks}=${v.dataBlocks}`;
}

/**
 * Writes `out`: `squashfs` padded to whole blocks followed by its dm-verity
 * hash tree (no superblock, hash device = data device at offset
 * dataBlocks * 4096); returns the parameters.
 */
export async function verityFormat(squashfs: string, out: string, salt: string): Promise<Verity> {
  const size = (await Deno.stat(squashfs)).size;
  const dataBlocks = Math.ceil(size / VERITY_BLOCK_BYTES);
  await Deno.copyFile(squashfs, out);
  const f = await Deno.open(out, { write: true });
  try {
    await f.truncate(dataBlocks * VERITY_BLOCK_BYTES);
  } finally {
    f.close();
  }
  const text = new TextDecoder().decode(
    await runTool("veritysetup", [
      "format",
      "--no-superblock",
      "--hash=sha256",
      `--data-block-size=${VERITY_BLOCK_BYTES}`,
      `--hash-block-size=${VERITY_BLOCK_BYTES}`,
      `--data-blocks=${dataBlocks}`,
      `--hash-offset=${dataBlocks * VERITY_BLOCK_BYTES}`,
      `--salt=${salt}`,
      out,
      out,
    ]),
  );
  const m = /^Root hash:\s+([0-9a-f]{64})$/m.exec(text);
  if (!m) throw new ImagesError("E_BUILD", `veritysetup format printed no root hash:\n${text}`);
  return { rootHash: m[1], salt, dataBlocks };
}

/**
 * The UKI's .osrel (os-release of the seed, not of the build host). No
 * version: `--version` defaults to the build's minute, which would make two
 * builds of the same seed differ.
 */
export function ukiOsRelease(mode: string): string {
  return `ID=phase\nNAME="Phase seed"\nPRETTY_NAME="Phase seed (${mode})"\n`;
}

/** A systemd-boot entry that starts one signed UKI (its command line is inside it). */
export function ukiLoaderEntry(title: string, efiPath: string): string {
  return `title ${title}\nefi ${efiPath}\n`;
}
