/**
 * Trust files, made and edited offline: the keys a verifier trusts and how
 * many of them must sign (formats.md §1). Every verb reads the file with
 * the verifier's own parser, checks the result the same way, and replaces
 * the file atomically (temp + fsync + rename), so a trust file is never
 * half-written and never invalid on disk.
 *
 * @module
 */
import { readFileCapped, UsageError, writeFileAtomic } from "../core/mod.ts";
import {
  encodeBase64,
  formatTrust,
  keyidOf,
  loadTrust,
  MAX_KEY_FILE_BYTES,
  parseTrust,
  publicRawFromPem,
  type Trust,
  type TrustedKey,
  VerifyError,
} from "../verify/mod.ts";
import { SignError } from "./errors.ts";

/** A trust file as `trust show --json` prints it (the file's own shape plus its path). */
export interface TrustSummary {
  /** The trust file. */
  readonly path: string;
  /** How many distinct trusted keys must sign. */
  readonly threshold: number;
  /** The trusted keys, sorted by keyid. */
  readonly keys: readonly { readonly keyid: string; readonly name: string }[];
}

/** Summarises a parsed trust file for printing. */
export function summarizeTrust(path: string, trust: Trust): TrustSummary {
  const keys = [...trust.keys.values()].sort((a, b) => a.keyid < b.keyid ? -1 : 1)
    .map((k) => ({ keyid: k.keyid, name: k.name }));
  return { path, threshold: trust.threshold, keys };
}

/** The lines `trust show` prints for people. */
export function describeTrust(s: TrustSummary): string[] {
  return [
    `${s.path}: ${s.threshold} of ${s.keys.length} key(s) must sign`,
    ...s.keys.map((k) => `  ${k.keyid}${k.name ? `  ${k.name}` : ""}`),
  ];
}

/** Reads a public key PEM (SPKI), refusing a private key given by mistake. */
export async function readPublicKey(path: string): Promise<Uint8Array> {
  let pem: string;
  try {
    pem = new TextDecoder().decode(await readFileCapped(path, MAX_KEY_FILE_BYTES));
  } catch (err) {
    throw new SignError("E_KEY", `cannot read public key ${path}: ${(err as Error).message}`, {
      cause: err,
      hint: "give the .pub.pem that 'deno task keygen' wrote beside the private key",
    });
  }
  if (pem.includes("PRIVATE KEY")) {
    // A trust file holds public keys only; never copy a private key around.
    throw new SignError("E_KEY", `${path} is a private key`, {
      hint: `give its public half (${path.replace(/\.pem$/, ".pub.pem")})`,
    });
  }
  try {
    return publicRawFromPem(pem);
  } catch (err) {
    throw new SignError("E_KEY", `${path} is not an Ed25519 SPKI PEM public key`, {
      cause: err,
      hint: "openssl pkey -in KEY.pem -pubout -out KEY.pub.pem",
    });
  }
}

/** The name a key gets when none is given: its file name without `.pub.pem`. */
export function keyNameOf(path: string): string {
  const base = path.slice(path.lastIndexOf("/") + 1);
  return base.replace(/\.pub\.pem$/, "").replace(/\.pem$/, "");
}

function checkThresholdArg(threshold: number, keyCount: number): void {
  if (!Number.isInteger(threshold) || threshold < 1) {
    throw new UsageError(
      `a threshold must be a whole number of at least 1, got ${threshold}`,
      "k-of-n: K signatures of the N trusted keys; K >= 1",
    );
  }
  if (threshold > keyCount) {
    throw new UsageError(
      `threshold ${threshold} exceeds the ${keyCount} trusted key(s): no release could verify`,
      "add keys first ('deno task trust add FILE --key PUB.pem'), or choose a lower threshold",
    );
  }
}

/** Serialises, re-checks with the verifier's parser, and writes atomically. */
async function writeTrust(
  path: string,
  threshold: number,
  keys: readonly TrustedKey[],
  createNew: boolean,
): Promise<Trust> {
  checkThresholdArg(threshold, keys.length);
  const bytes = new TextEncoder().encode(formatTrust(threshold, keys, encodeBase64));
  const trust = parseTrust(bytes); // what we write is exactly what verifiers accept
  const cut = path.lastIndexOf("/");
  try {
    if (cut > 0) await Deno.mkdir(path.slice(0, cut), { recursive: true });
    await writeFileAtomic(path, bytes, { createNew });
  } catch (err) {
    if (err instanceof Deno.errors.AlreadyExists) {
      throw new SignError("E_EXISTS", `${path} already exists; refusing to overwrite it`, {
        cause: err,
        hint: `edit it with 'deno task trust add ${path} --key PUB.pem', or choose another --out`,
      });
    }
    throw new SignError("E_IO", `cannot write ${path}: ${(err as Error).message}`, {
      cause: err,
    });
  }
  return trust;
}

/**
 * Creates a trust file from public key files with a threshold (k-of-n).
 * Refuses to replace an existing file, a duplicate key, and a threshold
 * below 1 or above the key count.
 *
 * @example
 * ```ts ignore
 * await trustInit("./.phase/trust/trust.json", [
 *   { path: "./.phase/keys/release.pub.pem" },
 *   { path: "./.phase/keys/other.pub.pem" },
 * ], 2);
 * ```
 */
export async function trustInit(
  out: string,
  keys: readonly { readonly path: string; readonly name?: string }[],
  threshold: number,
): Promise<TrustSummary> {
  if (keys.length === 0) {
    throw new UsageError("a trust file needs at least one --key PUB.pem", "deno task trust --help");
  }
  const entries: TrustedKey[] = [];
  for (const k of keys) {
    const publicKey = await readPublicKey(k.path);
    const keyid = keyidOf(publicKey);
    if (entries.some((e) => e.keyid === keyid)) {
      throw new UsageError(`${k.path} is given twice (${keyid})`, "each key counts once");
    }
    entries.push({ keyid, publicKey, name: k.name ?? keyNameOf(k.path) });
  }
  return summarizeTrust(out, await writeTrust(out, threshold, entries, true));
}

/**
 * Adds one public key to an existing trust file, keeping its threshold.
 * Refuses a key that is already trusted.
 *
 * @example
 * ```ts ignore
 * await trustAdd("./.phase/trust/trust.json", "./.phase/keys/other.pub.pem");
 * ```
 */
export async function trustAdd(
  path: string,
  publicKeyPath: string,
  name?: string,
): Promise<TrustSummary> {
  const trust = await readTrustFile(path);
  const publicKey = await readPublicKey(publicKeyPath);
  return summarizeTrust(
    path,
    await addKey(path, trust, publicKey, name ?? keyNameOf(publicKeyPath)),
  );
}

/** Adds a raw public key to a loaded trust file and writes it (keygen --add-to-trust). */
export async function addKey(
  path: string,
  trust: Trust,
  publicKey: Uint8Array,
  name: string,
): Promise<Trust> {
  const keyid = keyidOf(publicKey);
  if (trust.keys.has(keyid)) {
    throw new SignError("E_EXISTS", `${path} already trusts ${keyid}`, {
      hint: `'deno task trust show ${path}' lists its keys`,
    });
  }
  return await writeTrust(
    path,
    trust.threshold,
    [...trust.keys.values(), { keyid, publicKey, name }],
    false,
  );
}

/**
 * Removes a key from a trust file. Refuses an unknown keyid, the last key,
 * and a removal that would leave fewer keys than the threshold (lower the
 * threshold first: a verifier must never be left unable to verify).
 *
 * @example
 * ```ts ignore
 * await trustRemove("./.phase/trust/trust.json", "ed25519:0123...");
 * ```
 */
export async function trustRemove(path: string, keyid: string): Promise<TrustSummary> {
  const trust = await readTrustFile(path);
  if (!trust.keys.has(keyid)) {
    throw new UsageError(
      `${path} does not trust ${keyid}`,
      `'deno task trust show ${path}' lists its keyids`,
    );
  }
  const rest = [...trust.keys.values()].filter((k) => k.keyid !== keyid);
  if (rest.length === 0) {
    throw new UsageError(
      `refusing to remove the last key of ${path}`,
      "add its successor first ('deno task trust add'), then remove it",
    );
  }
  if (trust.threshold > rest.length) {
    throw new UsageError(
      `removing ${keyid} would leave ${rest.length} key(s) for threshold ${trust.threshold}`,
      `lower the threshold first: deno task trust threshold ${path} ${rest.length}`,
    );
  }
  return summarizeTrust(path, await writeTrust(path, trust.threshold, rest, false));
}

/**
 * Sets how many trusted keys must sign (k of n). Refuses a threshold below
 * 1 or above the number of keys.
 *
 * @example
 * ```ts ignore
 * await trustThreshold("./.phase/trust/trust.json", 2);
 * ```
 */
export async function trustThreshold(path: string, threshold: number): Promise<TrustSummary> {
  const trust = await readTrustFile(path);
  return summarizeTrust(
    path,
    await writeTrust(path, threshold, [...trust.keys.values()], false),
  );
}

/**
 * Reads and checks a trust file with the verifier's own parser.
 *
 * @example
 * ```ts ignore
 * const s = await trustShow("./.phase/trust/trust.json");
 * console.log(s.threshold, s.keys.length);
 * ```
 */
export async function trustShow(path: string): Promise<TrustSummary> {
  return summarizeTrust(path, await readTrustFile(path));
}

/**
 * Reads a trust file to edit or show it. loadTrust's hint speaks of a
 * `--trust` flag, which `deno task trust` does not have: say what to do here.
 */
async function readTrustFile(path: string): Promise<Trust> {
  try {
    return await loadTrust(path);
  } catch (err) {
    if (err instanceof VerifyError && err.code === "E_TRUST") {
      throw new VerifyError("E_TRUST", err.message, {
        cause: err,
        hint: `check the path; to create a trust file: deno task trust init --out ${path} ` +
          "--key PUB.pem --threshold 1",
      });
    }
    throw err;
  }
}
