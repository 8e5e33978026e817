/**
 * `Verified<T>`: trust as a type. Only verify/ constructs one; `kexec/`,
 * cache promotion and `wasm/` accept nothing else, and re-check at run time
 * that a value came from here (a cast cannot forge membership of a
 * module-private WeakSet).
 *
 * @module
 */
import { VerifyError } from "./errors.ts";

/**
 * The brand of a {@link Verified} value. A class with a private member is
 * nominal in TypeScript and this one has no constructor at run time
 * (`declare`), so no object literal and no other module can produce the
 * type; {@link assertVerified} re-checks membership at run time.
 */
export declare abstract class VerifiedBrand {
  private readonly verified: true;
}

/** A value that passed verification in this process. */
export type Verified<T> = {
  /** The decoded value the signatures cover. */
  readonly value: T;
  /** Exact bytes the signature covered the parse of. */
  readonly bytes: Uint8Array;
  /** Trusted keyids whose valid signatures were counted. */
  readonly signers: readonly string[];
  /** Type-level only: never present at run time. */
  readonly brand: VerifiedBrand;
};

const issued = new WeakSet<object>();

/** Creates a Verified value. Module-private to verify/ by convention and by re-export. */
export function _seal<T>(
  value: T,
  bytes: Uint8Array,
  signers: readonly string[],
): Verified<T> {
  const v = Object.freeze({
    value,
    bytes: bytes.slice(),
    signers: Object.freeze([...signers]),
  }) as unknown as Verified<T>;
  issued.add(v);
  return v;
}

/** Throws unless `v` was created by verify/ in this process. */
export function assertVerified<T>(v: Verified<T>): Verified<T> {
  if (typeof v !== "object" || v === null || !issued.has(v)) {
    throw new VerifyError("E_SIGNATURE", "value was not produced by the verifier", {
      hint: "only verify/ can create a Verified value; pass the result of verifyManifest()",
    });
  }
  return v;
}
