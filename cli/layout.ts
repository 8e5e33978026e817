/**
 * Where Phase keeps its own files under `./.phase`, one folder per purpose,
 * so each permission set names only the folder it needs (TM-12):
 *
 * - `./.phase/keys`: offline signing keys. Only the offline `sign` set (and
 *   the offline image build) may read or write it; no set that holds `net`
 *   may read it, so a compromised provider or DHT stack cannot steal a
 *   release key.
 * - `./.phase/trust`: trust files. Written only by `sign` (`keygen`), read
 *   by every verifier; no set that holds `net` may write it, so a
 *   compromised networked component cannot add its own key.
 * - `./.phase/provider`: `serve`'s state (its own key, snapshots).
 * - `./.phase/wasm`: the WASM node's key and receipts.
 *
 * The audit checks the table against these folders, and each command's
 * default paths against its set ({@link DEFAULT_PATHS}).
 *
 * @module
 */

/** Offline signing keys: no networked set reads them. */
export const KEYS_DIR = "./.phase/keys";
/** Trust files: no networked set writes them. */
export const TRUST_DIR = "./.phase/trust";
/** The trust file `keygen` writes by default and verifiers read by default. */
export const TRUST_FILE = `${TRUST_DIR}/trust.json`;
/** The provider's state: its own key and snapshots. */
export const PROVIDER_STATE_DIR = "./.phase/provider";
/** The WASM node's state: its key and receipts. */
export const WASM_STATE_DIR = "./.phase/wasm";
/** The trust file of an installed system (the seed carries one). */
export const SYSTEM_TRUST_FILE = "/etc/phase/trust.json";

/** Folders that hold signing keys: no set with `net` may read them. */
export const KEY_DIRS: readonly string[] = [KEYS_DIR];
/** Folders that hold trust files: no set with `net` may write them. */
export const TRUST_DIRS: readonly string[] = [TRUST_DIR, "/etc/phase"];

/**
 * The paths each command uses when the user names none, by permission set
 * (issue 11: every default must lie inside the command's own set). The
 * CLIs take their defaults from these constants; the audit checks them.
 */
export const DEFAULT_PATHS: Readonly<
  Record<string, { readonly read: readonly string[]; readonly write: readonly string[] }>
> = {
  sign: { read: [KEYS_DIR, TRUST_DIR], write: [KEYS_DIR, TRUST_FILE] },
  // ./.cache: `serve --mirror` fills it (and `--from-cache` reads it) by default.
  serve: {
    read: ["./artifacts", PROVIDER_STATE_DIR, TRUST_FILE, "./.cache"],
    write: [PROVIDER_STATE_DIR, "./.cache"],
  },
  discover: {
    read: [SYSTEM_TRUST_FILE, "/etc/phase/policy.toml", "/run/phase/cmdline", TRUST_FILE],
    write: [],
  },
  fetch: { read: [TRUST_FILE, SYSTEM_TRUST_FILE, "./.cache"], write: ["./.cache"] },
  verify: { read: [TRUST_FILE, SYSTEM_TRUST_FILE, "./artifacts"], write: [] },
  kexec: { read: [TRUST_FILE, SYSTEM_TRUST_FILE, "./.cache"], write: ["/run/phase"] },
  floor: {
    read: ["./.cache/state", "/var/cache/phase/state"],
    write: ["./.cache/state", "/var/cache/phase/state"],
  },
  wasm: { read: [WASM_STATE_DIR, "./wasm/examples"], write: [WASM_STATE_DIR] },
  receipt: { read: [WASM_STATE_DIR, TRUST_FILE], write: [] },
};
