/**
 * sign/: release keys and signing. Produces exactly what verify/ checks:
 * keys, trust files, signed manifests and discovery records, k-of-n
 * signatures.
 *
 * @module
 */
export { SignError } from "./errors.ts";
export type { SignCode } from "./errors.ts";
export { keygen, keyPaths, loadSigningKey } from "./keys.ts";
export type { SigningKey } from "./keys.ts";
export {
  addRecordSignature,
  addSignature,
  buildManifest,
  buildRecord,
  formatDocument,
  releaseDir,
  signatureFor,
  signRelease,
} from "./sign.ts";
export type { ReleaseOptions } from "./sign.ts";
