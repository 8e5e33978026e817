/**
 * Fuzz targets for the trust chain (formats.md §1.1, TM-09):
 * verify/trust_chain.ts `verifyTrustStep` on mutated next-version
 * documents, and `walkTrustChain` driven by hostile fetchers (wrong
 * versions, oversized documents, gaps, mutations).
 *
 * @module
 */
import fc from "fast-check";
import { formatDocument, signatureFor, type SigningKey } from "../sign/mod.ts";
import {
  canonicalize,
  encodeBase64,
  type JsonValue,
  MAX_TRUST_BYTES,
  MAX_TRUST_STEPS,
  parseTrust,
  type Trust,
  trustExpired,
  type TrustStep,
  VerifyError,
  verifyTrustStep,
  walkTrustChain,
} from "../verify/mod.ts";
import { check, codeOf, type FuzzTarget, only, onlyAsync } from "./harness.ts";
import { memoryKey } from "./targets_verify.ts";
import { bytesNear } from "./mutate.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();
const trustError = codeOf(VerifyError, "E_TRUST");

/** The fixed clock of the chain targets. */
const NOW = new Date("2026-11-22T00:00:00Z");
const FUTURE = "2027-11-22T00:00:00Z";
const PAST = "2026-01-01T00:00:00Z";

/** One genuine version of the fuzzed chain. */
interface Version {
  readonly trust: Trust;
  readonly bytes: Uint8Array;
  /** JCS of the document without `signatures`: what its signers signed. */
  readonly content: string;
}

/**
 * A genuine chain v1..v6 (index 0 = v1): v1 unsigned {K0}; v2 {K1};
 * v3 {K2} already expired (an expired intermediate); v4 {K3, K4} 2-of-2;
 * v5 {K5}; v6 {K1} again (a key that comes back). Each version N+1 is
 * signed by the first `threshold` keys of N and of N+1.
 */
function genuineChain(): Version[] {
  const k = Array.from({ length: 6 }, () => memoryKey());
  const plan: { keys: SigningKey[]; threshold: number; expires?: string }[] = [
    { keys: [k[0]], threshold: 1 },
    { keys: [k[1]], threshold: 1, expires: FUTURE },
    { keys: [k[2]], threshold: 1, expires: PAST },
    { keys: [k[3], k[4]], threshold: 2, expires: FUTURE },
    { keys: [k[5]], threshold: 1, expires: FUTURE },
    { keys: [k[1]], threshold: 1, expires: FUTURE },
  ];
  const out: Version[] = [];
  plan.forEach((p, i) => {
    const doc: Record<string, JsonValue> = {
      version: i + 1,
      threshold: p.threshold,
      keys: Object.fromEntries(
        p.keys.map((key, j) => [key.keyid, { public: encodeBase64(key.publicRaw), name: `k${j}` }]),
      ),
      ...(p.expires ? { expires_at: p.expires } : {}),
    };
    let bytes: Uint8Array;
    if (i === 0) bytes = formatDocument(doc);
    else {
      const prev = plan[i - 1];
      const signers = [...prev.keys.slice(0, prev.threshold), ...p.keys.slice(0, p.threshold)];
      const unique = [...new Map(signers.map((s) => [s.keyid, s])).values()];
      bytes = formatDocument({
        ...doc,
        signatures: unique.map((s) => signatureFor(doc, s, false)),
      });
    }
    out.push({ trust: parseTrust(bytes), bytes, content: canonicalize(doc) });
  });
  return out;
}

function contentOf(t: Trust): string {
  const { signatures: _s, ...rest } = t.document as Record<string, JsonValue>;
  return canonicalize(rest);
}

/** A genuine version with one member changed, its signatures kept. */
function tweak(v: Version, member: string, value: JsonValue, at: number): Uint8Array {
  const doc = JSON.parse(dec.decode(v.bytes));
  const sigs = doc.signatures as JsonValue[] | undefined;
  switch (member) {
    case "dup-signature":
      // The same key signing twice: must count once.
      if (sigs?.length) sigs.push(sigs[at % sigs.length]);
      break;
    case "drop-signature":
      if (sigs?.length) sigs.splice(at % sigs.length, 1);
      break;
    case "version+1":
      doc.version += 1;
      break;
    case "version-1":
      doc.version -= 1;
      break;
    case "extra":
      doc[`x${at % 3}`] = value;
      break;
    case "drop":
      delete doc[["version", "threshold", "keys", "expires_at", "signatures"][at % 5]];
      break;
    default:
      doc[member] = value;
  }
  return enc.encode(JSON.stringify(doc));
}

const anyValue = fc.oneof(
  fc.constantFrom<JsonValue>(null, true, 0, -1, 2, 1.5, 1e9, "", "1", [], {}, PAST, FUTURE),
  fc.integer(),
  fc.string({ unit: "binary", maxLength: 40 }),
);

const trustStep: FuzzTarget = {
  name: "trust-step",
  parser: "verify/trust_chain.ts: verifyTrustStep",
  properties: [
    "mutated next-version documents, against any earlier version: a step or VerifyError(E_TRUST), nothing else",
    "an accepted step is exactly version prev + 1 and has the genuine document's signed content (a signature binds every member)",
    "an accepted step has a threshold of distinct old and of distinct new signers (a key that signed twice counts once)",
    "expired is trustExpired(next, now): an expired version still verifies its successor",
    `above MAX_TRUST_BYTES (${MAX_TRUST_BYTES}) bytes: E_TRUST before parsing`,
  ],
  build() {
    const chain = genuineChain();
    const idx = fc.integer({ min: 1, max: chain.length - 1 });
    const members = fc.constantFrom(
      "dup-signature",
      "drop-signature",
      "version+1",
      "version-1",
      "extra",
      "drop",
      "threshold",
      "keys",
      "expires_at",
      "signatures",
    );
    const next = fc.oneof(
      {
        weight: 5,
        arbitrary: fc.tuple(idx, fc.nat()).chain(([i]) =>
          bytesNear([chain[i].bytes], 2048).map((b) => ({ i, b }))
        ),
      },
      {
        weight: 4,
        arbitrary: fc.tuple(idx, members, anyValue, fc.nat()).map(([i, m, v, at]) => ({
          i,
          b: tweak(chain[i], m, v, at),
        })),
      },
      { weight: 1, arbitrary: idx.map((i) => ({ i, b: chain[i].bytes })) },
      {
        weight: 1,
        arbitrary: idx.map((i) => {
          const b = new Uint8Array(MAX_TRUST_BYTES + 1).fill(0x20);
          b.set(chain[i].bytes);
          return { i, b };
        }),
      },
    );
    // The previous version: usually the right one, sometimes any other.
    const prevOf = fc.oneof(
      { weight: 3, arbitrary: fc.constant(-1) },
      { weight: 1, arbitrary: fc.integer({ min: 0, max: chain.length - 1 }) },
    );
    return Promise.resolve(fc.property(next, prevOf, ({ i, b }, p) => {
      const prevIdx = p < 0 ? i - 1 : p;
      const prev = chain[prevIdx].trust;
      const step = only(trustError, () => verifyTrustStep(prev, b, NOW));
      if (b.length > MAX_TRUST_BYTES) check(step === undefined, "accepted above the cap");
      if (b === chain[i].bytes && prevIdx === i - 1) {
        check(step !== undefined, `genuine version ${i + 1} refused`);
      }
      if (!step) return;
      check(step.trust.version === prev.version + 1, "accepted another version than prev + 1");
      check(prevIdx === i - 1, "accepted a step against another previous version");
      check(contentOf(step.trust) === chain[i].content, "accepted content nobody signed");
      checkSigners(step, prev);
      check(step.expired === trustExpired(step.trust, NOW), "expired flag");
      check(step.bytes === b, "the step's bytes are not the bytes verified");
    }));
  },
};

function checkSigners(step: TrustStep, prev: Trust): void {
  check(new Set(step.oldSigners).size === step.oldSigners.length, "an old key counted twice");
  check(new Set(step.newSigners).size === step.newSigners.length, "a new key counted twice");
  check(step.oldSigners.length >= prev.threshold, "old threshold not met");
  check(step.newSigners.length >= step.trust.threshold, "new threshold not met");
  check(step.oldSigners.every((k) => prev.keys.has(k)), "an old signer is not an old key");
  check(step.newSigners.every((k) => step.trust.keys.has(k)), "a new signer is not a new key");
}

/** What a hostile (or honest) provider answers for one requested version. */
type Answer =
  | { readonly kind: "genuine" }
  | { readonly kind: "none" }
  | { readonly kind: "version"; readonly v: number }
  | { readonly kind: "oversized" }
  | { readonly kind: "mutated"; readonly edit: Uint8Array };

const trustWalk: FuzzTarget = {
  name: "trust-walk",
  parser: "verify/trust_chain.ts: walkTrustChain",
  properties: [
    "hostile fetchers (wrong versions, rollbacks, gaps, oversized or mutated documents, answers past the chain's end): a walk or VerifyError(E_TRUST), nothing else",
    "without mutations the outcome is the model's: the genuine prefix is accepted, the walk stops at the first missing version or throws at the first wrong one",
    "every accepted step is the next version with the genuine signed content, given to onAccept in order before the next is fetched",
    "at most maxSteps versions are accepted and at most maxSteps + 1 fetched, each asked with maxBytes <= MAX_TRUST_BYTES; capped exactly when the cap stopped it",
    "the walk never ends below the trust-version floor",
  ],
  build() {
    const chain = genuineChain();
    const answer: fc.Arbitrary<Answer> = fc.oneof(
      { weight: 6, arbitrary: fc.constant({ kind: "genuine" as const }) },
      { weight: 1, arbitrary: fc.constant({ kind: "none" as const }) },
      {
        weight: 2,
        arbitrary: fc.integer({ min: 1, max: chain.length }).map((v) => ({
          kind: "version" as const,
          v,
        })),
      },
      { weight: 1, arbitrary: fc.constant({ kind: "oversized" as const }) },
      {
        weight: 1,
        arbitrary: fc.uint8Array({ minLength: 1, maxLength: 3 }).map((edit) => ({
          kind: "mutated" as const,
          edit,
        })),
      },
    );
    const walk = fc.record({
      start: fc.integer({ min: 0, max: chain.length - 1 }),
      answers: fc.array(answer, { maxLength: 8 }),
      maxSteps: fc.oneof(fc.integer({ min: 0, max: 6 }), fc.constant(MAX_TRUST_STEPS)),
      maxBytes: fc.oneof(
        fc.constant(undefined),
        fc.integer({ min: 0, max: 2048 }),
        fc.constant(MAX_TRUST_BYTES * 4),
      ),
      floor: fc.option(fc.integer({ min: 1, max: chain.length + 1 }), { nil: undefined }),
    });
    return Promise.resolve(fc.asyncProperty(walk, async (w) => {
      const pinned = chain[w.start].trust;
      const cap = Math.min(w.maxBytes ?? MAX_TRUST_BYTES, MAX_TRUST_BYTES);
      const asked: number[] = [];
      const accepted: TrustStep[] = [];
      const fetchVersion = (v: number, max: number): Promise<Uint8Array | undefined> => {
        check(max === cap, `asked with maxBytes ${max}, expected ${cap}`);
        check(accepted.length === asked.length, "fetched before the previous step was accepted");
        asked.push(v);
        const a = w.answers[asked.length - 1] ?? { kind: "genuine" };
        const genuine = chain[v - 1]?.bytes;
        switch (a.kind) {
          case "genuine":
            return Promise.resolve(genuine);
          case "none":
            return Promise.resolve(undefined);
          case "version":
            return Promise.resolve(chain[a.v - 1].bytes);
          case "oversized":
            return Promise.resolve(new Uint8Array(cap + 1).fill(0x7b));
          case "mutated": {
            if (!genuine) return Promise.resolve(undefined);
            const b = genuine.slice();
            for (let j = 0; j < a.edit.length; j++) {
              b[(a.edit[j] * 7919 + j * 104729) % b.length] ^= a.edit[j] || 1;
            }
            return Promise.resolve(b);
          }
        }
      };
      const res = await onlyAsync(trustError, () =>
        walkTrustChain(pinned, fetchVersion, {
          maxSteps: w.maxSteps,
          maxBytes: w.maxBytes,
          now: NOW,
          floor: w.floor,
          onAccept: (step) => {
            accepted.push(step);
            return Promise.resolve();
          },
        }));
      // Every accepted step: the next version, genuine content, a threshold of each side.
      let prev = pinned;
      for (const step of accepted) {
        check(step.trust.version === prev.version + 1, "a step skipped or repeated a version");
        check(
          contentOf(step.trust) === chain[step.trust.version - 1].content,
          "accepted content nobody signed",
        );
        checkSigners(step, prev);
        prev = step.trust;
      }
      check(accepted.length <= w.maxSteps, "more steps than maxSteps");
      check(asked.length <= w.maxSteps + 1, "fetched more than maxSteps + 1 versions");
      if (res) {
        check(res.steps.length === accepted.length, "steps differ from what onAccept saw");
        check(res.trust.version === pinned.version + accepted.length, "ended on another version");
        check(w.floor === undefined || res.trust.version >= w.floor, "ended below the floor");
        check(res.capped === (accepted.length === w.maxSteps), "capped flag");
      }
      // The model, when no answer is a mutation (a mutation may or may not verify).
      const used = w.answers.slice(0, asked.length);
      if (used.some((a) => a.kind === "mutated")) return;
      let v = pinned.version;
      let steps = 0;
      let fails = false;
      for (let n = 0; steps < w.maxSteps; n++) {
        const a = w.answers[n] ?? { kind: "genuine" };
        const want = v + 1;
        const served = a.kind === "genuine"
          ? (want <= chain.length ? want : undefined)
          : a.kind === "version"
          ? a.v
          : a.kind === "none"
          ? undefined
          : -1;
        if (served === undefined) break;
        if (served !== want || chain[served - 1].bytes.length > cap) {
          fails = true;
          break;
        }
        v = want;
        steps++;
      }
      if (!fails && w.floor !== undefined && v < w.floor) fails = true;
      check(fails === (res === undefined), `model ${fails ? "throws" : "accepts"}, walk differs`);
      check(accepted.length === steps, `model accepts ${steps} steps, walk ${accepted.length}`);
    }));
  },
};

/** The trust chain's targets. */
export const TRUST_CHAIN_TARGETS: readonly FuzzTarget[] = [trustStep, trustWalk];
