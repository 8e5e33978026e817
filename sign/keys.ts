/**
 * Release keys on disk: PKCS#8 PEM private keys (mode 0600, what
 * `openssl genpkey -algorithm ed25519` writes) and SPKI PEM public keys.
 *
 * @module
 */
import { generateKeyPairSync, type KeyObject } from "node:crypto";
import { readFileCapped, writeFileAtomic } from "../core/mod.ts";
import {
  encodeBase64,
  formatTrust,
  keyidOf,
  loadTrust,
  MAX_KEY_FILE_BYTES,
  privateKeyFromPem,
  rawPublicKey,
} from "../verify/mod.ts";
import { SignError } from "./errors.ts";
import { addKey } from "./trust.ts";

/** A loaded signing key. */
export interface SigningKey {
  /** The private key, for `node:crypto` signing. */
  readonly key: KeyObject;
  /** The 32-byte raw public key. */
  readonly publicRaw: Uint8Array;
  /** Its keyid (`ed25519:<hex>`). */
  readonly keyid: string;
}

/**
 * Loads a private key, refusing one readable by group or other (TM-09: a
 * release key others can read is as good as published).
 */
export async function loadSigningKey(path: string): Promise<SigningKey> {
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(path);
  } catch (err) {
    throw new SignError("E_KEY", `cannot read key ${path}: ${(err as Error).message}`, {
      cause: err,
      hint: "create one with 'deno task keygen --out DIR' or 'openssl genpkey -algorithm ed25519'",
    });
  }
  if (info.mode !== null && (info.mode & 0o077) !== 0) {
    throw new SignError(
      "E_KEY_MODE",
      `key ${path} is readable by group or other (mode ${(info.mode & 0o777).toString(8)})`,
      { hint: `chmod 600 ${path}` },
    );
  }
  let pem: string;
  try {
    pem = new TextDecoder().decode(await readFileCapped(path, MAX_KEY_FILE_BYTES));
  } catch (err) {
    throw new SignError("E_KEY", `cannot read key ${path}: ${(err as Error).message}`, {
      cause: err,
    });
  }
  let key: KeyObject;
  try {
    key = privateKeyFromPem(pem);
  } catch (err) {
    throw new SignError("E_KEY", `${path} is not an Ed25519 PKCS#8 PEM private key`, {
      cause: err,
      hint: "openssl genpkey -algorithm ed25519 -out key.pem",
    });
  }
  const publicRaw = rawPublicKey(key);
  return { key, publicRaw, keyid: keyidOf(publicRaw) };
}

/**
 * Paths keygen writes under `dir` for key `name`; the trust file goes to
 * `trust` when given (TM-12: beside the key only when the folder is private).
 */
export function keyPaths(
  dir: string,
  name: string,
  trust?: string,
): { privateKey: string; publicKey: string; trust: string } {
  return {
    privateKey: `${dir}/${name}.pem`,
    publicKey: `${dir}/${name}.pub.pem`,
    trust: trust ?? `${dir}/trust.json`,
  };
}

const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/** Options of {@link keygen}. */
export interface KeygenOptions {
  /** Where the trust file goes (default: `dir/trust.json`). */
  readonly trustPath?: string;
  /**
   * What to do when the trust file exists: `refuse` (default: write nothing),
   * `keep` (write the key, leave the trust file as it is) or `add` (write the
   * key and add it to the trust file, keeping its threshold).
   */
  readonly existingTrust?: "refuse" | "keep" | "add";
}

/** What {@link keygen} wrote. */
export interface KeygenResult {
  /** The new key's keyid. */
  readonly keyid: string;
  /** The files of the new key and the trust file. */
  readonly paths: ReturnType<typeof keyPaths>;
  /** What happened to the trust file. */
  readonly trust: "created" | "added" | "kept";
}

async function exists(p: string): Promise<boolean> {
  try {
    await Deno.lstat(p);
    return true;
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return false;
    throw new SignError("E_IO", `cannot check ${p}: ${(err as Error).message}`, { cause: err });
  }
}

/**
 * Generates a key pair into `dir`: private PEM (0600), public PEM and a
 * trust file with threshold 1 (in `dir`, or at `opts.trustPath`: a folder
 * that network-facing sets may read, TM-12). Never overwrites a key: when
 * one exists, nothing is written. An existing trust file is refused, kept
 * or extended with the new key, as `opts.existingTrust` says.
 */
export async function keygen(
  dir: string,
  name: string,
  opts: KeygenOptions = {},
): Promise<KeygenResult> {
  if (!NAME_RE.test(name)) {
    throw new SignError("E_KEY", `invalid key name '${name}'`, { hint: "letters, digits, . _ -" });
  }
  const paths = keyPaths(dir, name, opts.trustPath);
  for (const p of [paths.privateKey, paths.publicKey]) {
    if (await exists(p)) {
      throw new SignError("E_EXISTS", `${p} already exists; refusing to overwrite a key`, {
        hint: "choose another --out directory or --name",
      });
    }
  }
  const onTrust = opts.existingTrust ?? "refuse";
  const trustExists = await exists(paths.trust);
  if (trustExists && onTrust === "refuse") {
    throw new SignError("E_EXISTS", `${paths.trust} already exists; refusing to overwrite it`, {
      hint: "add the new key to it with --add-to-trust, or choose another --trust",
    });
  }
  // Check the trust file to extend before any key is written: a broken one
  // must not leave a new key behind that nobody trusts.
  const existing = trustExists && onTrust === "add" ? await loadTrust(paths.trust) : undefined;
  const { privateKey, publicKey } = generateKeyPairSync("ed25519");
  const publicRaw = rawPublicKey(publicKey);
  const keyid = keyidOf(publicRaw);
  const enc = new TextEncoder();
  const written: string[] = [];
  try {
    await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
    await writeFileAtomic(
      paths.privateKey,
      enc.encode(privateKey.export({ format: "pem", type: "pkcs8" }) as string),
      { mode: 0o600, createNew: true },
    );
    written.push(paths.privateKey);
    await Deno.chmod(paths.privateKey, 0o600);
    await writeFileAtomic(
      paths.publicKey,
      enc.encode(publicKey.export({ format: "pem", type: "spki" }) as string),
      { createNew: true },
    );
    written.push(paths.publicKey);
    if (existing) {
      await addKey(paths.trust, existing, publicRaw, name);
      return { keyid, paths, trust: "added" };
    }
    if (trustExists) return { keyid, paths, trust: "kept" };
    if (opts.trustPath !== undefined) {
      const cut = opts.trustPath.lastIndexOf("/");
      if (cut > 0) await Deno.mkdir(opts.trustPath.slice(0, cut), { recursive: true });
    }
    await writeFileAtomic(
      paths.trust,
      enc.encode(formatTrust(1, [{ keyid, publicKey: publicRaw, name }], encodeBase64)),
      { createNew: true },
    );
  } catch (err) {
    // Nothing half-written stays behind.
    for (const p of written) await Deno.remove(p).catch(() => {});
    if (err instanceof SignError) throw err;
    if (err instanceof Deno.errors.AlreadyExists) {
      throw new SignError("E_EXISTS", `a key appeared in ${dir} while writing`, { cause: err });
    }
    throw new SignError("E_IO", `cannot write keys to ${dir}: ${(err as Error).message}`, {
      cause: err,
    });
  }
  return { keyid, paths, trust: "created" };
}
