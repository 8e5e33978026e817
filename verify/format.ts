/**
 * The wire format's names and values, defined once (formats.md §1, §5, §6):
 * artifact names, boot modes, the command-line file cap, time stamps, the
 * DHT record key, and the one builder of an unsigned manifest document that
 * the signer and the provider's catalog share.
 *
 * @module
 */
import { VerifyError } from "./errors.ts";
import { canonicalArch, isArtifactName, isChannel, REQUIRED_ARTIFACTS } from "./manifest.ts";
import type { JsonValue } from "./strict_json.ts";
import { isVersion } from "./version.ts";

/** Artifacts a release is made of, in order; only `rootfs` is optional. */
export const RELEASE_ARTIFACTS = [...REQUIRED_ARTIFACTS, "rootfs"] as const;

/** Boot modes, carried as `phase.mode=` on the kernel command line (formats.md §6). */
export const MODES = ["internet", "local", "private"] as const;
/** One boot mode. */
export type Mode = typeof MODES[number];

/** True for one of {@link MODES}. */
export function isMode(s: string): s is Mode {
  return (MODES as readonly string[]).includes(s);
}

/**
 * Largest command-line file read, in bytes: a release's `cmdline` file
 * (signed into the manifest) or the booted kernel's command line. A memory
 * bound on the read (TM-05), not the kernel's limit, which kexec enforces.
 */
export const MAX_CMDLINE_FILE_BYTES = 64 * 1024;

/** RFC 3339 UTC time to the second, as manifests and records carry it (`2026-11-22T00:00:00Z`). */
export function isoSeconds(d: Date): string {
  return d.toISOString().replace(/\.\d{3}Z$/, "Z");
}

/**
 * The DHT key of a channel/arch, `/phase/{channel}/{arch}/manifest`
 * (formats.md §5). The arch is canonicalised (`x86_64` and `amd64` name one
 * key); an unknown arch or invalid channel throws `RangeError`.
 */
export function dhtRecordKey(channel: string, arch: string): string {
  const a = canonicalArch(arch);
  if (!a) throw new RangeError(`unknown arch '${arch}'`);
  if (!isChannel(channel)) throw new RangeError(`invalid channel '${channel}'`);
  return `/phase/${channel}/${a}/manifest`;
}

/** What goes into an unsigned manifest document. */
export interface ManifestInput {
  /** Release version (formats.md §1: 1 to 8 dot-separated digit runs). */
  readonly version: string;
  /** Channel name. */
  readonly channel: string;
  /** Arch or alias; written canonical. */
  readonly arch: string;
  /** Issue time; `expires_at` is `now + expiresInMs`. */
  readonly now: Date;
  /** Validity, in milliseconds. */
  readonly expiresInMs: number;
  /** Kernel command line ("" for none). */
  readonly cmdline: string;
  /** Artifacts, in the order written: name → `sha256:<hex>` digest and size. */
  readonly artifacts: Iterable<
    readonly [string, { readonly digest: string; readonly size: number }]
  >;
}

/**
 * Builds the unsigned v1 manifest document (formats.md §1): the one place
 * a manifest is assembled, by the signer and by a provider that generates
 * its own. Sign its JCS bytes and add `signatures`. Throws `VerifyError`
 * (`E_SCHEMA`) for an invalid channel, arch or version, or a missing
 * required artifact.
 *
 * @example
 * ```ts
 * import { buildManifestDocument } from "./format.ts";
 * const doc = buildManifestDocument({
 *   version: "2026.11.20", channel: "stable", arch: "x86_64",
 *   now: new Date("2026-11-20T00:00:00Z"), expiresInMs: 86_400_000, cmdline: "",
 *   artifacts: [["kernel", { digest: "sha256:" + "0".repeat(64), size: 0 }],
 *               ["initramfs", { digest: "sha256:" + "0".repeat(64), size: 0 }]],
 * });
 * if (doc.arch !== "amd64" || doc.expires_at !== "2026-11-21T00:00:00Z") throw new Error();
 * ```
 */
export function buildManifestDocument(input: ManifestInput): Record<string, JsonValue> {
  const fail = (m: string) => new VerifyError("E_SCHEMA", m);
  if (!isChannel(input.channel)) throw fail(`invalid channel '${input.channel}'`);
  const arch = canonicalArch(input.arch);
  if (!arch) throw fail(`unknown arch '${input.arch}'`);
  if (!isVersion(input.version)) throw fail(`invalid version '${input.version}'`);
  const artifacts: Record<string, JsonValue> = {};
  for (const [name, { digest, size }] of input.artifacts) {
    // The name pattern also keeps `__proto__` out of this plain object.
    if (!isArtifactName(name)) throw fail(`artifact name '${name}' is not allowed`);
    artifacts[name] = { digest, size };
  }
  for (const name of REQUIRED_ARTIFACTS) {
    if (!Object.hasOwn(artifacts, name)) throw fail(`artifact '${name}' is required`);
  }
  return {
    schema: 1,
    version: input.version,
    channel: input.channel,
    arch,
    issued_at: isoSeconds(input.now),
    expires_at: isoSeconds(new Date(input.now.getTime() + input.expiresInMs)),
    cmdline: input.cmdline,
    artifacts,
  };
}
