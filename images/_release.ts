/**
 * Steps 7 and 8 of the image build: the signed target release (target
 * initramfs, the kernel, signed for kexec under lockdown with Secure Boot,
 * manifest and record) and SHA256SUMS of the outputs with its signature.
 * Private to images/.
 *
 * @module
 */
import type { Logger } from "../core/mod.ts";
import { encodeBase64, signEd25519 } from "../verify/mod.ts";
import { loadSigningKey, signRelease } from "../sign/mod.ts";
import { type SecureBootKeys, signKernel, VERITY_MODULES } from "./_secureboot.ts";
import { targetInit, udhcpcScript } from "./_files.ts";
import { rootfsCmdline } from "./_selfhost.ts";
import { copyFile, makeCpio, sha256File, walk, writeText } from "./_fs.ts";
import {
  ARCH,
  type Arch,
  baseTree,
  type ImageFile,
  initramfsLibs,
  type Inputs,
  moduleOrder,
  SEED_MODULES,
  SEED_ONLY_MODULES,
} from "./_inputs.ts";

/**
 * Modules the target loads beyond the seed's: `loop`, to mount the
 * verified rootfs copy (issue 12 §1).
 */
export const TARGET_EXTRA_MODULES = ["loop"] as const;

/** How long a release the build signs stays valid, in milliseconds (30 days). */
const RELEASE_EXPIRES_MS = 30 * 86_400_000;

/** What the target release is made of. */
export interface TargetReleaseInput {
  readonly arch: Arch;
  readonly channel: string;
  readonly version: string;
  /** The artifacts root (the release goes to `<root>/<channel>/<arch>`). */
  readonly artifacts: string;
  readonly work: string;
  readonly keyDir: string;
  readonly inputs: Inputs;
  /** Libraries the target initramfs holds (dmsetup's under Secure Boot); Deno's come from the seed partition. */
  readonly libs: readonly ImageFile[];
  /**
   * The squashfs seed (Deno, bundled entrypoints with their launchers):
   * shipped as the release's signed `rootfs` artifact, which the target
   * checks against `phase.rootfs=` on its signed command line and runs the
   * provider from (issue 12 §1).
   */
  readonly rootfs: string;
  /** The trust file baked into the seed; the target's provider verifies with it. */
  readonly trustPath: string;
  readonly secureBoot?: SecureBootKeys;
  readonly epoch: number;
  readonly now: Date;
  readonly log: Logger;
  /** DHT peers for the target's provider (`phase.bootstrap=`, signed with the manifest). */
  readonly bootstrap?: readonly string[];
}

/** Step 7: the target initramfs and kernel, signed with the release key. */
export async function targetRelease(
  inp: TargetReleaseInput,
): Promise<{ readonly manifest: string }> {
  const root = `${inp.work}/target-initramfs`;
  // The seed's drivers, what the target adds, and under Secure Boot
  // device-mapper (TM-14: it opens the seed partition through dm-verity).
  const modules = await moduleOrder(
    inp.inputs.kver,
    [
      ...SEED_MODULES.filter((m) => !SEED_ONLY_MODULES.includes(m)),
      ...TARGET_EXTRA_MODULES,
      ...(inp.secureBoot ? VERITY_MODULES : []),
    ],
    inp.inputs.sysroot,
  );
  await baseTree(root, inp.inputs, modules);
  await writeText(`${root}/init`, targetInit(inp.version), 0o755);
  await initramfsLibs(root, inp.libs, inp.inputs.denoLibs);
  // TM-14: the target opens the seed partition through dm-verity as the seed did.
  if (inp.secureBoot) await copyFile("/usr/sbin/dmsetup", `${root}/sbin/dmsetup`, 0o755);
  // Self-hosting: the network hook and the trust file the target's provider
  // verifies the cache with; both are inside the signed initramfs.
  await writeText(`${root}/usr/share/udhcpc/default.script`, udhcpcScript(), 0o755);
  await copyFile(inp.trustPath, `${root}/etc/phase/trust.json`, 0o644);
  const relDir = `${inp.artifacts}/${inp.channel}/${inp.arch}`;
  await Deno.mkdir(relDir, { recursive: true });
  await copyFile(inp.rootfs, `${relDir}/rootfs`, 0o644);
  const rootfsHex = await sha256File(`${relDir}/rootfs`);
  const rootfsBytes = (await Deno.stat(`${relDir}/rootfs`)).size;
  await makeCpio(root, `${relDir}/initramfs`, inp.epoch);
  if (inp.secureBoot) {
    // kexec_file_load under lockdown accepts only a kernel signed by a key
    // the running kernel trusts; the firmware's db is its platform keyring.
    await signKernel(inp.secureBoot, inp.inputs.kernel, `${relDir}/kernel`, inp.work, inp.epoch);
    inp.log.info("images: target kernel signed with the db key (kexec -s under lockdown)");
  } else {
    await Deno.copyFile(inp.inputs.kernel, `${relDir}/kernel`);
  }
  await Deno.chmod(`${relDir}/kernel`, 0o644);
  const key = await loadSigningKey(`${inp.keyDir}/release.pem`);
  const r = await signRelease({
    root: inp.artifacts,
    channel: inp.channel,
    arch: inp.arch,
    version: inp.version,
    expiresInMs: RELEASE_EXPIRES_MS,
    now: inp.now,
    // phase.rootfs: signed with the manifest, so the target can trust it.
    cmdline: `console=${ARCH[inp.arch].console} ${rootfsCmdline(rootfsHex, rootfsBytes)}${
      inp.bootstrap?.length ? ` phase.bootstrap=${inp.bootstrap.join(",")}` : ""
    }`,
  }, key);
  inp.log.info(`images: release ${r.path} cid ${r.cid}`);
  return { manifest: r.path };
}

/** Step 8: SHA256SUMS of every file under `out` and its Ed25519 signature. */
export async function writeSums(
  inp: { readonly out: string; readonly keyDir: string },
): Promise<{ readonly outputs: string[] }> {
  const outputs: string[] = [];
  for (const e of await walk(inp.out)) {
    if (e.isDir || e.rel === "SHA256SUMS" || e.rel === "SHA256SUMS.sig") continue;
    outputs.push(e.rel);
  }
  const sums =
    (await Promise.all(outputs.map(async (o) => `${await sha256File(`${inp.out}/${o}`)}  ${o}`)))
      .join("\n") + "\n";
  await Deno.writeTextFile(`${inp.out}/SHA256SUMS`, sums);
  const key = await loadSigningKey(`${inp.keyDir}/release.pem`);
  await Deno.writeTextFile(
    `${inp.out}/SHA256SUMS.sig`,
    JSON.stringify({
      keyid: key.keyid,
      sig: encodeBase64(signEd25519(key.key, new TextEncoder().encode(sums))),
    }) + "\n",
  );
  return { outputs };
}
