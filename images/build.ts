/**
 * `deno task images`: builds, without root and reproducibly, the seed
 * initramfs, the squashfs seed (Deno + bundled entrypoints + launchers),
 * the GPT USB image (ESP with systemd-boot and a GRUB fallback, seed, ext4
 * cache), QCOW2 and
 * Parallels conversions, a signed target release and SHA256SUMS + its
 * signature. Every timestamp is SOURCE_DATE_EPOCH, every id is derived.
 *
 * `buildImages` runs the steps in order; each is a function with a typed
 * input and result in a private file: inputs and keys (`_inputs.ts`), seed
 * initramfs and squashfs seed (`_seed.ts`), ESP (`_esp.ts`), cache, GPT
 * disk and conversions (`_disk.ts`), target release and SHA256SUMS
 * (`_release.ts`).
 *
 * @module
 */
import type { Logger } from "../core/mod.ts";
import type { SecureBootKeys } from "./_secureboot.ts";
import { gatherInputs } from "./_inputs.ts";
import {
  type NodePolicy,
  seedInitramfs,
  seedPolicy,
  seedSquashfs,
  targetNodeConfig,
} from "./_seed.ts";
import { buildEsp } from "./_esp.ts";
import { assembleDisk, buildCache, convertImages } from "./_disk.ts";
import { targetRelease, writeSums } from "./_release.ts";
import { sha256File } from "./_fs.ts";

export { ARM64_HINT, SEED_MODULES } from "./_inputs.ts";
export { bundledPath, denoBundle, EXTRA_BUNDLES, SEED_TASKS } from "./_seed.ts";
export type { NodePolicy } from "./_seed.ts";
export { ESP_MIB } from "./_esp.ts";
export { CACHE_MIB, diskDescriptor } from "./_disk.ts";
export { derivedUuid } from "./_fs.ts";

/** Default SOURCE_DATE_EPOCH (2026-01-01T00:00:00Z) when the env has none. */
export const DEFAULT_SOURCE_DATE_EPOCH = 1767225600;

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
   * The policy's `node_accept_jobs` / `unsafe_node_open`: the booted
   * target starts a Plasm node accepting jobs from these (none: no node).
   */
  readonly node?: NodePolicy;
  /** DHT peers signed into the release's command line (`phase.bootstrap=`) for the target's provider. */
  readonly targetBootstrap?: readonly string[];
  /**
   * Secure Boot image (TM-14, docs/secure-boot.md): signed UKIs, signed
   * systemd-boot, the seed under dm-verity, the target kernel signed; no
   * GRUB fallback and no bare kernel on the ESP.
   */
  readonly secureBoot?: SecureBootKeys;
}

/** What a build wrote. */
export interface BuildResult {
  readonly outputs: string[];
  readonly release?: string;
  readonly timingsMs: Record<string, number>;
}

/** Logs step `n` of `total`; returns its start time. */
function step(log: Logger, n: number, total: number, what: string): number {
  const t = performance.now();
  log.info(`images: [${n}/${total}] ${what}`);
  return t;
}

/** Runs the whole build. */
export async function buildImages(opts: BuildOptions): Promise<BuildResult> {
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
  const sb = opts.secureBoot;
  const epoch = opts.epoch;

  let t = step(log, 1, TOTAL, "inputs: kernel, modules, busybox, kexec-tools, deno");
  const { inputs, libs, targetLibs, modules, trustPath } = await gatherInputs(opts);
  mark("inputs", t);

  t = step(log, 2, TOTAL, "seed initramfs (busybox, kexec-tools + its libraries, init, modules)");
  const { initrd } = await seedInitramfs({
    root: `${opts.work}/seed-initramfs`,
    out: `${opts.out}/${base}-seed.initramfs`,
    inputs,
    libs,
    modules,
    trustPath,
    channel: opts.channel,
    allowTor: opts.allowTor,
    torrc: opts.torrc,
    secureBoot: !!sb,
    node: opts.node,
    epoch,
  });
  mark("seed-initramfs", t);

  t = step(log, 3, TOTAL, "squashfs seed (Deno, bundled entrypoints, launchers)");
  const seed = await seedSquashfs({
    arch: opts.arch,
    work: opts.work,
    out: `${opts.out}/${base}-seed.squashfs`,
    deno: inputs.deno,
    denoLibs: inputs.denoLibs,
    sysroot: inputs.sysroot,
    repo: opts.repo,
    secureBoot: !!sb,
    nodeConfig: targetNodeConfig(seedPolicy(opts.channel, !!opts.allowTor, opts.node)),
    epoch,
    log,
  });
  mark("squashfs", t);

  t = step(
    log,
    4,
    TOTAL,
    sb
      ? "ESP (FAT32, signed systemd-boot, signed seed UKIs, loader entries)"
      : "ESP (FAT32, systemd-boot, loader entries, GRUB fallback)",
  );
  const esp = await buildEsp({
    arch: opts.arch,
    work: opts.work,
    epoch,
    kernel: inputs.kernel,
    initrd,
    sdboot: inputs.sdboot,
    grubDir: inputs.grubDir,
    provider: opts.provider,
    extraCmdline: opts.extraCmdline,
    verity: seed.verity,
    // The squashfs is also the release's rootfs: the seed need not download it.
    seedRootfs: await sha256File(seed.squashfs),
    secureBoot: sb,
    log,
  });
  mark("esp", t);

  t = step(log, 5, TOTAL, "ext4 cache and GPT disk image");
  const cache = await buildCache({ arch: opts.arch, work: opts.work, epoch });
  const disk = await assembleDisk({
    arch: opts.arch,
    out: `${opts.out}/${base}.img`,
    esp,
    seed: seed.partition,
    cache: cache.image,
  });
  mark("disk", t);

  t = step(log, 6, TOTAL, "QCOW2 and Parallels");
  await convertImages({ arch: opts.arch, out: opts.out, base, ...disk });
  mark("convert", t);

  let release: string | undefined;
  let n = 7;
  if (!opts.skipRelease) {
    t = step(
      log,
      n++,
      TOTAL,
      `target release ${opts.channel}/${opts.arch} ${opts.version} (signed)`,
    );
    const r = await targetRelease({
      arch: opts.arch,
      channel: opts.channel,
      version: opts.version,
      artifacts: opts.artifacts,
      work: opts.work,
      keyDir: opts.keyDir,
      inputs,
      libs: targetLibs,
      rootfs: seed.squashfs,
      trustPath,
      secureBoot: sb,
      epoch,
      now: opts.now,
      log,
      bootstrap: opts.targetBootstrap,
    });
    release = r.manifest;
    mark("release", t);
  }

  t = step(log, n, TOTAL, "SHA256SUMS and signature");
  const { outputs } = await writeSums({ out: opts.out, keyDir: opts.keyDir });
  mark("sums", t);
  return { outputs, release, timingsMs: timings };
}
