/**
 * The Deno runtime the package carries: npm's distribution packages
 * `@deno/linux-x64-glibc` and `@deno/linux-arm64-glibc`, pinned by version
 * and by the registry's sha512 integrity. The build is offline: the
 * tarballs are fetched beforehand (deb/fetch_runtime.sh, `npm pack`) into
 * ./.cache/deb/npm and checked here before a byte of them is used.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { DebError } from "./errors.ts";

/** Debian architectures the package is built for. */
export type DebArch = "amd64" | "arm64";

/** One pinned runtime tarball. */
export interface RuntimePin {
  /** npm package name. */
  readonly npm: string;
  /** Version (both architectures publish 2.9.6: ../shared/notes/deno-facts.md). */
  readonly version: string;
  /** The registry's `dist.integrity` (`npm view <pkg>@<v> dist.integrity`). */
  readonly integrity: string;
}

/** The pins, per Debian architecture. */
export const DENO_RUNTIME: Readonly<Record<DebArch, RuntimePin>> = {
  amd64: {
    npm: "@deno/linux-x64-glibc",
    version: "2.9.6",
    integrity:
      "sha512-3md4TKLCuzsLDmfOoC5KN7NAZaxSVkMgm64vg6foD00JBADCpYS2/5QqXfzgnP5ZQz3iLP9vBQJtEgc116OAoQ==",
  },
  arm64: {
    npm: "@deno/linux-arm64-glibc",
    version: "2.9.6",
    integrity:
      "sha512-poqhoH9B3nYloigEMPT5t8HY+wBeiuea1An5Q7fqgJzP0SYmWsoS/oUnWO/pEiA4ofzIBy1Elt/in58xKtxEoQ==",
  },
};

/** Where deb/fetch_runtime.sh puts the tarballs, relative to the repository. */
export const RUNTIME_CACHE_DIR = "./.cache/deb/npm";
/** Largest runtime tarball read, in bytes (2.9.6: about 40 MB). */
export const MAX_RUNTIME_TARBALL_BYTES = 256 * 1024 * 1024;

/** The file name `npm pack` gives a pin's tarball. */
export function tarballName(pin: RuntimePin): string {
  return `${pin.npm.replace(/^@/, "").replace("/", "-")}-${pin.version}.tgz`;
}

/** The command that fetches the pinned tarballs (what the error hints print). */
export const FETCH_HINT = "sh deb/fetch_runtime.sh (npm pack of the pinned " +
  `${DENO_RUNTIME.amd64.npm}@${DENO_RUNTIME.amd64.version} and ${DENO_RUNTIME.arm64.npm}@${DENO_RUNTIME.arm64.version} into ${RUNTIME_CACHE_DIR})`;

/** The npm `sha512-<base64>` integrity string of `bytes`. */
export function integrityOf(bytes: Uint8Array): string {
  return `sha512-${createHash("sha512").update(bytes).digest("base64")}`;
}

/**
 * Reads the pinned tarball of `arch` from `dir` and checks its integrity;
 * returns its bytes. A missing tarball is E_INPUT, a different one E_DIGEST.
 */
export async function verifiedRuntime(dir: string, arch: DebArch): Promise<Uint8Array> {
  const pin = DENO_RUNTIME[arch];
  const path = `${dir}/${tarballName(pin)}`;
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(path);
  } catch (err) {
    throw new DebError("E_INPUT", `no Deno runtime tarball at ${path}`, {
      cause: err,
      hint: `fetch it first: ${FETCH_HINT}`,
    });
  }
  if (info.size > MAX_RUNTIME_TARBALL_BYTES) {
    throw new DebError("E_DIGEST", `${path} is ${info.size} bytes, more than any Deno runtime`, {
      hint: `delete it and fetch again: ${FETCH_HINT}`,
    });
  }
  const bytes = await Deno.readFile(path);
  const got = integrityOf(bytes);
  if (got !== pin.integrity) {
    throw new DebError(
      "E_DIGEST",
      `${path} is not ${pin.npm}@${pin.version}: integrity ${got}, pinned ${pin.integrity}`,
      { hint: `delete it and fetch again: ${FETCH_HINT}; never edit the pin to match a download` },
    );
  }
  return bytes;
}
