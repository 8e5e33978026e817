/**
 * Validator and selector of the `phase` DHT namespace. Every node checks a
 * record's self-consistency (schema, embedded-key signatures, expiry) and
 * that it sits under its own key; a node that holds a trust file also
 * refuses records its trust does not sign, so a forger cannot overwrite
 * the genuine record on honest nodes (TM-08). Selection prefers trusted
 * records, then the highest version.
 *
 * @module
 */
import {
  decodeRecord,
  type DiscoveryRecord,
  selectRecordIndex,
  type Trust,
  verifyRecord,
} from "../verify/mod.ts";
import { parseRecordKey } from "./keys.ts";

/** Builds the validator (throws on an invalid record). */
export function phaseValidator(trust?: Trust, now: () => Date = () => new Date()) {
  // deno-lint-ignore require-await
  return async (key: Uint8Array, value: Uint8Array): Promise<void> => {
    if (!parseRecordKey(key)) throw new Error("not a Phase record key");
    if (trust) verifyRecord(value, trust, now());
    else decodeRecord(value, now());
  };
}

/** Builds the selector: trusted records first (when a trust file is given), then highest version. */
export function phaseSelector(trust?: Trust, now: () => Date = () => new Date()) {
  return (_key: Uint8Array, values: Uint8Array[]): number => {
    const decoded: { i: number; r: DiscoveryRecord; trusted: boolean }[] = [];
    values.forEach((v, i) => {
      try {
        const r = decodeRecord(v, now());
        let trusted = false;
        if (trust) {
          try {
            verifyRecord(v, trust, now());
            trusted = true;
          } catch { /* untrusted: ranked below */ }
        }
        decoded.push({ i, r, trusted });
      } catch { /* invalid: never selected */ }
    });
    const pool = decoded.some((d) => d.trusted) ? decoded.filter((d) => d.trusted) : decoded;
    const best = selectRecordIndex(pool.map((d) => d.r));
    return best < 0 ? 0 : pool[best].i;
  };
}
