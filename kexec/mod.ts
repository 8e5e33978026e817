/**
 * Hands the machine over to exactly the verified kernel. The artifacts a
 * verified manifest names are copied into a private directory and
 * re-hashed there ({@link stageArtifacts}), so a file swapped after
 * verification is refused before anything is loaded (TM-11). The copies
 * are loaded with kexec-tools ({@link loadKernel}: `kexec -s`, the
 * kernel's signature-checking kexec_file_load, then `kexec -l`; on arm64
 * with the firmware device tree, KASLR seed zeroed, {@link stageDtb}) and
 * executed in a separate step ({@link execKernel}); both have a dry run that
 * returns the exact argv.
 *
 * When kexec cannot load or run the target, the chainload fallback puts the
 * re-checked copies and a systemd-boot entry on the ESP
 * ({@link installChainloadEntry}) and selects that entry for the next boot
 * only ({@link setOneShotEntry}); the firmware then boots it.
 *
 * {@link decodeKexecLoadResult} is the strict decoder of the result line
 * the `phase-kexec load` program prints, for an orchestrator that runs it.
 *
 * @example Stage a verified release and print the load command (dry run)
 * ```ts
 * import { loadKernel, stageArtifacts } from "./mod.ts";
 * import { keygen, loadSigningKey, signRelease } from "../sign/mod.ts";
 * import { parseTrust, verifyManifest } from "../verify/mod.ts";
 *
 * await Deno.mkdir("/tmp/phase", { recursive: true });
 * const dir = await Deno.makeTempDir({ dir: "/tmp/phase", prefix: "kexec-doc-" });
 * try {
 *   // A signed release, as the client leaves it in its cache.
 *   const { paths } = await keygen(`${dir}/keys`, "release");
 *   const release = `${dir}/artifacts/stable/amd64`;
 *   await Deno.mkdir(release, { recursive: true });
 *   await Deno.writeTextFile(`${release}/kernel`, "a kernel image");
 *   await Deno.writeTextFile(`${release}/initramfs`, "an initramfs");
 *   const signed = await signRelease({
 *     root: `${dir}/artifacts`,
 *     channel: "stable",
 *     arch: "amd64",
 *     version: "2026.1.1",
 *     now: new Date(),
 *     expiresInMs: 86_400_000,
 *     cmdline: "console=ttyS0",
 *   }, await loadSigningKey(paths.privateKey));
 *   const trust = parseTrust(await Deno.readFile(paths.trust));
 *   const verified = verifyManifest(await Deno.readFile(signed.path), trust, {
 *     channel: "stable",
 *     arch: "amd64",
 *   });
 *
 *   // Copy into a private directory, re-check the copies, then a dry-run load.
 *   const staged = await stageArtifacts(verified, {
 *     kernel: `${release}/kernel`,
 *     initramfs: `${release}/initramfs`,
 *   }, `${dir}/run`);
 *   const load = await loadKernel(staged, { mode: "local", kexec: "/sbin/kexec", dryRun: true });
 *   if (load.argv.at(-1) !== "--command-line=console=ttyS0 phase.mode=local") {
 *     throw new Error(`unexpected argv ${load.argv}`);
 *   }
 *   console.log(load.argv.join(" ")); // /sbin/kexec -s <dir>/run/kexec-.../kernel --initrd=...
 * } finally {
 *   await Deno.remove(dir, { recursive: true });
 * }
 * ```
 *
 * @module
 */
export { KexecError } from "./errors.ts";
export type { KexecCode } from "./errors.ts";
export {
  DEFAULT_STAGE_PARENT,
  execKernel,
  FDT_SOURCE,
  findKexec,
  KEXEC_BINARIES,
  loadKernel,
  parseSeedVerity,
  SEED_VERITY_WORDS,
  stageArtifacts,
  stageDtb,
} from "./kexec.ts";
export type {
  ExecOptions,
  KexecMethod,
  LoadOptions,
  LoadResult,
  Runner,
  SeedVerity,
  Staged,
  StagedDtb,
} from "./kexec.ts";
export { setOneShotEntry } from "./efivar.ts";
export type { OneShotOptions } from "./efivar.ts";
export { DEFAULT_EFIVARS, DEFAULT_ESP, installChainloadEntry } from "./chainload.ts";
export type { ChainloadOptions } from "./chainload.ts";
export { decodeKexecLoadResult, type KexecLoadResult } from "./result.ts";
export { DEFAULT_FALLBACK_ENTRY } from "./cli.ts";
