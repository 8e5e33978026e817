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
  countValidSignatures,
  encodeBase64,
  formatTrust,
  isoSeconds,
  type JsonValue,
  keyidOf,
  loadTrust,
  MAX_KEY_FILE_BYTES,
  parseTrust,
  publicRawFromPem,
  signEd25519,
  signedBytes,
  type Trust,
  type TrustedKey,
  VerifyError,
} from "../verify/mod.ts";
import { SignError } from "./errors.ts";
import { loadSigningKey, type SigningKey } from "./keys.ts";
import { formatDocument } from "./sign.ts";

/** A trust file as `trust show --json` prints it (the file's own shape plus its path). */
export interface TrustSummary {
  /** The trust file. */
  readonly path: string;
  /** How many distinct trusted keys must sign. */
  readonly threshold: number;
  /** The trusted keys, sorted by keyid. */
  readonly keys: readonly { readonly keyid: string; readonly name: string }[];
  /** Its version in the trust chain (1 for a file without one). */
  readonly version: number;
  /** When it stops verifying releases by itself (RFC 3339), if it expires. */
  readonly expires_at?: string;
}

/** Summarises a parsed trust file for printing. */
export function summarizeTrust(path: string, trust: Trust): TrustSummary {
  const keys = [...trust.keys.values()].sort((a, b) => a.keyid < b.keyid ? -1 : 1)
    .map((k) => ({ keyid: k.keyid, name: k.name }));
  return {
    path,
    threshold: trust.threshold,
    keys,
    version: trust.version,
    ...(trust.expiresAt ? { expires_at: isoSeconds(trust.expiresAt) } : {}),
  };
}

/** The lines `trust show` prints for people. */
export function describeTrust(s: TrustSummary): string[] {
  return [
    `${s.path}: version ${s.version}${
      s.expires_at ? `, expires ${s.expires_at}` : ""
    }: ${s.threshold} of ${s.keys.length} key(s) must sign`,
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
  const trust = await readEditableTrust(path);
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
  if (trust.version > 1 || trust.signatures.length > 0) {
    throw new UsageError(
      `${path} is trust version ${trust.version}, signed: adding a key would break its signatures`,
      `make the next version instead: deno task trust rotate --from ${path} --add-key PUB.pem ...`,
    );
  }
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
  const trust = await readEditableTrust(path);
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
  const trust = await readEditableTrust(path);
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
  return await readTrustFileAny(path);
}

/**
 * Reads a trust file to edit it in place: only an unsigned version-1 file.
 * Editing a signed version would drop it from the chain (TM-09): the next
 * version is made with `trust rotate` instead.
 */
async function readEditableTrust(path: string): Promise<Trust> {
  const trust = await readTrustFileAny(path);
  if (trust.version > 1 || trust.signatures.length > 0) {
    throw new UsageError(
      `${path} is trust version ${trust.version}, signed: editing it would break its signatures`,
      `make the next version instead: deno task trust rotate --from ${path} --out NEXT.json ...`,
    );
  }
  return trust;
}

async function readTrustFileAny(path: string): Promise<Trust> {
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

/** How far a rotation is signed: each threshold it must meet (formats.md §1.1). */
export interface RotationStatus {
  /** The previous version. */
  readonly from: number;
  /** Keyids of the previous version that signed, each once. */
  readonly oldSigners: readonly string[];
  /** How many of them must sign. */
  readonly oldThreshold: number;
  /** Keyids of the new version that signed, each once. */
  readonly newSigners: readonly string[];
  /** How many of them must sign. */
  readonly newThreshold: number;
  /** True when both thresholds are met: devices will accept it. */
  readonly complete: boolean;
}

/** A rotated trust file as `trust rotate`/`trust sign` print it. */
export interface RotationSummary extends TrustSummary {
  /** Its signing status against the previous version. */
  readonly rotation: RotationStatus;
}

/** Options of {@link trustRotate}. */
export interface TrustRotateOptions {
  /** The current version's file. */
  readonly from: string;
  /** Where the next version is written (never overwritten). */
  readonly out: string;
  /** Public key files to add. */
  readonly addKeys?: readonly string[];
  /** Keyids to remove. */
  readonly removeKeys?: readonly string[];
  /** The new threshold (default: the current one). */
  readonly threshold?: number;
  /** Validity of the new version, in milliseconds. */
  readonly expiresInMs: number;
  /** Private key files to sign with now (others sign later with `trust sign`). */
  readonly signWith?: readonly string[];
  /** The clock (default: now). */
  readonly now?: Date;
}

function statusOf(prev: Trust, next: Trust): RotationStatus {
  const message = signedBytes(next.document);
  const oldSigners = countValidSignatures(message, next.signatures, prev);
  const newSigners = countValidSignatures(message, next.signatures, next);
  return {
    from: prev.version,
    oldSigners,
    oldThreshold: prev.threshold,
    newSigners,
    newThreshold: next.threshold,
    complete: oldSigners.length >= prev.threshold && newSigners.length >= next.threshold,
  };
}

/** The lines `trust rotate`/`trust sign` print for people. */
export function describeRotation(s: RotationSummary): string[] {
  const r = s.rotation;
  const lines = describeTrust(s);
  lines.push(
    `  signed by ${r.oldSigners.length} of ${r.oldThreshold} required key(s) of version ${r.from}` +
      ` and ${r.newSigners.length} of ${r.newThreshold} of its own`,
    r.complete
      ? "  complete: devices that trust the previous version will accept it"
      : `  incomplete: more holders must sign: deno task trust sign ${s.path} --prev PREV.json --key KEY.pem`,
  );
  return lines;
}

function signingFail(path: string, keyid: string, from: number): SignError {
  return new SignError("E_KEY", `${path}: ${keyid} is in neither version ${from} nor ${from + 1}`, {
    hint: "only keys of the previous version or of the new one count toward a rotation",
  });
}

function sigFor(doc: { readonly [k: string]: JsonValue }, key: SigningKey) {
  return { keyid: key.keyid, sig: encodeBase64(signEd25519(key.key, signedBytes(doc))) };
}

/**
 * Writes the next version of a trust file (formats.md §1.1): the keys of
 * `from` plus `addKeys` minus `removeKeys`, the threshold, an expiry, and
 * the signatures of `signWith` (keys of either version). The result may
 * still need more signatures: its status says which thresholds are met.
 *
 * @example
 * ```ts ignore
 * await trustRotate({ from: "trust.json", out: "2.json", addKeys: ["b.pub.pem"],
 *   removeKeys: ["ed25519:..."], expiresInMs: 365 * 86_400_000, signWith: ["a.pem", "b.pem"] });
 * ```
 */
export async function trustRotate(o: TrustRotateOptions): Promise<RotationSummary> {
  const prev = await readTrustFile(o.from);
  const keys = new Map<string, TrustedKey>(prev.keys);
  for (const path of o.addKeys ?? []) {
    const publicKey = await readPublicKey(path);
    const keyid = keyidOf(publicKey);
    if (keys.has(keyid)) {
      throw new UsageError(`${path} (${keyid}) is already trusted`, "each key is listed once");
    }
    keys.set(keyid, { keyid, publicKey, name: keyNameOf(path) });
  }
  for (const keyid of o.removeKeys ?? []) {
    if (!prev.keys.has(keyid)) {
      throw new UsageError(
        `${o.from} does not trust ${keyid}`,
        `'deno task trust show ${o.from}' lists its keyids`,
      );
    }
    keys.delete(keyid);
  }
  const threshold = o.threshold ?? prev.threshold;
  checkThresholdArg(threshold, keys.size);
  if (!Number.isFinite(o.expiresInMs) || o.expiresInMs <= 0) {
    throw new UsageError("--expires must be a positive duration", "e.g. --expires 365d");
  }
  const expires = new Date((o.now ?? new Date()).getTime() + o.expiresInMs);
  const body: Record<string, JsonValue> = JSON.parse(
    formatTrust(threshold, [...keys.values()], encodeBase64),
  );
  const doc: Record<string, JsonValue> = {
    version: prev.version + 1,
    expires_at: isoSeconds(expires),
    ...body,
  };
  const signatures: JsonValue[] = [];
  const signed = new Set<string>();
  for (const path of o.signWith ?? []) {
    const key = await loadSigningKey(path);
    if (signed.has(key.keyid)) continue; // a key signs once
    if (!prev.keys.has(key.keyid) && !keys.has(key.keyid)) {
      throw signingFail(o.out, key.keyid, prev.version);
    }
    signatures.push(sigFor(doc, key));
    signed.add(key.keyid);
  }
  const bytes = formatDocument({ ...doc, signatures });
  const next = parseTrust(bytes); // what we write is what verifiers accept
  try {
    const cut = o.out.lastIndexOf("/");
    if (cut > 0) await Deno.mkdir(o.out.slice(0, cut), { recursive: true });
    await writeFileAtomic(o.out, bytes, { createNew: true });
  } catch (err) {
    if (err instanceof Deno.errors.AlreadyExists) {
      throw new SignError("E_EXISTS", `${o.out} already exists; refusing to overwrite it`, {
        cause: err,
        hint:
          `add a signature with 'deno task trust sign ${o.out} --prev ${o.from} --key KEY.pem', or choose another --out`,
      });
    }
    throw new SignError("E_IO", `cannot write ${o.out}: ${(err as Error).message}`, { cause: err });
  }
  return { ...summarizeTrust(o.out, next), rotation: statusOf(prev, next) };
}

/**
 * Adds one key holder's signature to the next version of a trust file,
 * keeping every signature already there (as `sign --add-signature` does
 * for manifests). Refuses a file that is not the version after `prev`, a
 * key of neither version, and a key that already signed.
 *
 * @example
 * ```ts ignore
 * await trustSign("2.json", "trust.json", "./.phase/keys/other.pem");
 * ```
 */
export async function trustSign(
  path: string,
  prevPath: string,
  keyPath: string,
): Promise<RotationSummary> {
  const prev = await readTrustFile(prevPath);
  const next = await readTrustFile(path);
  if (next.version !== prev.version + 1) {
    throw new UsageError(
      `${path} is version ${next.version}, not the version after ${prevPath} (${prev.version})`,
      "--prev names the version it rotates from",
    );
  }
  const key = await loadSigningKey(keyPath);
  if (!prev.keys.has(key.keyid) && !next.keys.has(key.keyid)) {
    throw signingFail(path, key.keyid, prev.version);
  }
  if (next.signatures.some((s) => s.keyid === key.keyid)) {
    throw new SignError("E_EXISTS", `${path} is already signed by ${key.keyid}`, {
      hint: "each key signs a trust version once",
    });
  }
  const doc = next.document;
  const sigs = Array.isArray(doc.signatures) ? doc.signatures : [];
  const bytes = formatDocument({ ...doc, signatures: [...sigs, sigFor(doc, key)] });
  const signed = parseTrust(bytes);
  try {
    await writeFileAtomic(path, bytes);
  } catch (err) {
    throw new SignError("E_IO", `cannot write ${path}: ${(err as Error).message}`, { cause: err });
  }
  return { ...summarizeTrust(path, signed), rotation: statusOf(prev, signed) };
}
