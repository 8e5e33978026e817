/**
 * sign/: release keys and signing, the offline half of Phase's trust. It
 * makes Ed25519 keys (PKCS#8, mode 0600) and trust files, signs a release
 * directory into `manifest.json` and a discovery `record.json`, and adds
 * further signatures for k-of-n releases without changing the signed bytes
 * (manifest signatures first, record signatures last: see `addSignature`).
 * It also creates and edits trust files (`trustInit`, `trustAdd`,
 * `trustRemove`, `trustThreshold`). Everything it writes is exactly what
 * `verify/` checks.
 *
 * @example Make a key, sign a release, add a second signer
 * ```ts
 * import { addSignature, keygen, loadSigningKey, signRelease } from "./mod.ts";
 *
 * await Deno.mkdir("/tmp/phase", { recursive: true });
 * const dir = await Deno.makeTempDir({ dir: "/tmp/phase", prefix: "sign-doc-" });
 * try {
 *   const a = await keygen(`${dir}/a`, "release-a");
 *   const b = await keygen(`${dir}/b`, "release-b");
 *   const release = `${dir}/artifacts/stable/arm64`;
 *   await Deno.mkdir(release, { recursive: true });
 *   await Deno.writeFile(`${release}/kernel`, new Uint8Array(1024));
 *   await Deno.writeFile(`${release}/initramfs`, new Uint8Array(512));
 *   const signed = await signRelease({
 *     root: `${dir}/artifacts`, channel: "stable", arch: "aarch64", version: "1.0",
 *     expiresInMs: 3_600_000, now: new Date(),
 *   }, await loadSigningKey(a.paths.privateKey));
 *   const two = await addSignature(
 *     `${dir}/artifacts`, "stable", "arm64", await loadSigningKey(b.paths.privateKey),
 *   );
 *   if (two.signatures !== 2) throw new Error("expected a 2-of-2 release");
 *   console.log(signed.cid, a.keyid, b.keyid);
 * } finally {
 *   await Deno.remove(dir, { recursive: true });
 * }
 * ```
 *
 * @module
 */
export { SignError } from "./errors.ts";
export type { SignCode } from "./errors.ts";
export { keygen, keyPaths, loadSigningKey } from "./keys.ts";
export type { KeygenOptions, KeygenResult, SigningKey } from "./keys.ts";
export {
  addRecordSignature,
  addSignature,
  buildManifest,
  buildRecord,
  formatDocument,
  newestTrustVersion,
  releaseDir,
  signatureFor,
  signRelease,
} from "./sign.ts";
export type { AddSignatureResult, ReleaseOptions } from "./sign.ts";
export {
  addKey,
  describeRotation,
  describeTrust,
  keyNameOf,
  readPublicKey,
  summarizeTrust,
  trustAdd,
  trustInit,
  trustRemove,
  trustRotate,
  trustShow,
  trustSign,
  trustThreshold,
} from "./trust.ts";
export type { RotationStatus, RotationSummary, TrustRotateOptions, TrustSummary } from "./trust.ts";
