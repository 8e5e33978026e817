/**
 * Test fixtures: temp dirs under /tmp/phase, random artifacts, real keys
 * and real signed releases (made with sign/, never hand-written).
 *
 * @module
 */
import { keygen, loadSigningKey, type SigningKey, signRelease } from "../sign/mod.ts";

/** A fresh temp dir under /tmp/phase. */
export async function tempDir(prefix = "t"): Promise<string> {
  await Deno.mkdir("/tmp/phase", { recursive: true });
  return await Deno.makeTempDir({ dir: "/tmp/phase", prefix: `${prefix}-` });
}

/** Deterministic pseudo-random bytes (xorshift), so tests can compare. */
export function patternBytes(size: number, seed = 1): Uint8Array {
  const out = new Uint8Array(size);
  let x = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < size; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out[i] = x & 0xff;
  }
  return out;
}

/** Writes kernel/initramfs (and optionally rootfs) into `<root>/<channel>/<arch>`. */
export async function writeRelease(
  root: string,
  channel = "stable",
  arch = "amd64",
  sizes: { kernel?: number; initramfs?: number; rootfs?: number } = {},
  seed = 1,
): Promise<Record<string, Uint8Array>> {
  const dir = `${root}/${channel}/${arch}`;
  await Deno.mkdir(dir, { recursive: true });
  const out: Record<string, Uint8Array> = {};
  const all = {
    kernel: sizes.kernel ?? 70_000,
    initramfs: sizes.initramfs ?? 30_000,
    rootfs: sizes.rootfs,
  };
  let i = 0;
  for (const [name, size] of Object.entries(all)) {
    i++;
    if (size === undefined) continue;
    out[name] = patternBytes(size, seed * 16 + i);
    await Deno.writeFile(`${dir}/${name}`, out[name]);
  }
  await Deno.writeTextFile(`${dir}/cmdline`, "console=ttyS0\n");
  return out;
}

/** A real release key in `dir` (keygen writes `<name>.pem` and `trust.json`). */
export async function releaseKey(
  dir: string,
  name = "release",
): Promise<{ key: SigningKey; trustPath: string }> {
  const { paths } = await keygen(dir, name);
  return { key: await loadSigningKey(paths.privateKey), trustPath: paths.trust };
}

/** Signs a release with sign/ (writes manifest.json and record.json). */
export async function signFixture(
  root: string,
  key: SigningKey,
  opts: {
    channel?: string;
    arch?: string;
    version?: string;
    expiresInMs?: number;
    mirrors?: string[];
  } = {},
) {
  return await signRelease({
    root,
    channel: opts.channel ?? "stable",
    arch: opts.arch ?? "amd64",
    version: opts.version ?? "2026.11.20",
    expiresInMs: opts.expiresInMs ?? 30 * 86_400_000,
    now: new Date(),
    mirrors: opts.mirrors,
  }, key);
}

/** SHA-256 hex of bytes. */
export async function sha256Hex(bytes: Uint8Array): Promise<string> {
  const d = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>));
  return [...d].map((b) => b.toString(16).padStart(2, "0")).join("");
}
