/**
 * kexec/: hands over to exactly the verified kernel. Artifacts are copied
 * into a private directory and re-checked there (TM-11), loaded with
 * `kexec -s` (kexec_file_load) or `kexec -l` (arm64: with the firmware DTB,
 * KASLR seed zeroed), executed in a separate step; when kexec fails, a
 * systemd-boot one-shot entry chainloads the target after a reboot.
 *
 * @module
 */
export { KexecError } from "./errors.ts";
export type { KexecCode } from "./errors.ts";
export {
  DEFAULT_STAGE_PARENT,
  EXEC_TIMEOUT_MS,
  execArgv,
  execKernel,
  FDT_SOURCE,
  findKexec,
  formatArgv,
  KEXEC_BINARIES,
  kexecLoaded,
  LOAD_TIMEOUT_MS,
  loadArgv,
  loadKernel,
  MAX_KERNEL_CMDLINE_BYTES,
  parseMode,
  runProgram,
  stageArtifacts,
  stageDtb,
  targetCmdline,
} from "./kexec.ts";
export type { KexecMethod, LoadResult, Runner, Staged } from "./kexec.ts";
export { findNode, MAX_FDT_BYTES, parseFdt, writeFdt, zeroKaslrSeed } from "./fdt.ts";
export type { Fdt, FdtNode, FdtProperty } from "./fdt.ts";
export {
  checkEntryId,
  decodeEfiString,
  EFI_VARIABLE_NV_BS_RT,
  EFIVARS_DIR,
  encodeEfiString,
  LOADER_GUID,
  loaderVariablePath,
  setOneShotEntry,
} from "./efivar.ts";
export {
  CHAINLOAD_MARK,
  chainloadEntry,
  DEFAULT_EFIVARS,
  DEFAULT_ESP,
  installChainloadEntry,
} from "./chainload.ts";
export { decodeKexecLoadResult, type KexecLoadResult } from "./result.ts";
export { DEFAULT_FALLBACK_ENTRY, KEXEC_PERMISSION_SET, runKexec } from "./cli.ts";
