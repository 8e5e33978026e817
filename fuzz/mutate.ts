/**
 * Mutation fuzzing on top of fast-check: a seed (a valid encoding) and a
 * list of byte edits, both shrinkable, so a failing input shrinks towards
 * the valid seed with the fewest, smallest edits.
 *
 * @module
 */
import fc from "fast-check";

/** Most edits applied to one seed. */
export const MAX_EDITS = 8;

/** Byte values that often sit on a boundary in a parser. */
const INTERESTING = [0x00, 0x01, 0x7f, 0x80, 0xff, 0x22, 0x5c, 0x2c, 0x3a, 0x7b, 0x7d, 0x5b, 0x5d];

/** One edit at a relative position (`at` in [0, 1)). */
export type Edit =
  | { kind: "flip"; at: number; bit: number }
  | { kind: "set"; at: number; value: number }
  | { kind: "insert"; at: number; bytes: Uint8Array }
  | { kind: "delete"; at: number; len: number }
  | { kind: "dup"; at: number; len: number; times: number }
  | { kind: "truncate"; at: number };

const at = fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true });
const byte = fc.oneof(fc.constantFrom(...INTERESTING), fc.integer({ min: 0, max: 255 }));

const edit: fc.Arbitrary<Edit> = fc.oneof(
  fc.record({ kind: fc.constant("flip" as const), at, bit: fc.integer({ min: 0, max: 7 }) }),
  fc.record({ kind: fc.constant("set" as const), at, value: byte }),
  fc.record({
    kind: fc.constant("insert" as const),
    at,
    bytes: fc.array(byte, { minLength: 1, maxLength: 16 }).map((a) => new Uint8Array(a)),
  }),
  fc.record({ kind: fc.constant("delete" as const), at, len: fc.integer({ min: 1, max: 32 }) }),
  fc.record({
    kind: fc.constant("dup" as const),
    at,
    len: fc.integer({ min: 1, max: 64 }),
    times: fc.integer({ min: 1, max: 4 }),
  }),
  fc.record({ kind: fc.constant("truncate" as const), at }),
);

/** Applies `edits` to a copy of `seed`. */
export function applyEdits(seed: Uint8Array, edits: readonly Edit[]): Uint8Array {
  let b = seed;
  for (const e of edits) {
    const i = Math.floor(e.at * (b.length + 1));
    switch (e.kind) {
      case "flip":
        if (i < b.length) (b = b.slice())[i] ^= 1 << e.bit;
        break;
      case "set":
        if (i < b.length) (b = b.slice())[i] = e.value;
        break;
      case "insert": {
        const c = new Uint8Array(b.length + e.bytes.length);
        c.set(b.subarray(0, i));
        c.set(e.bytes, i);
        c.set(b.subarray(i), i + e.bytes.length);
        b = c;
        break;
      }
      case "delete": {
        const c = new Uint8Array(Math.max(0, b.length - Math.min(e.len, b.length - i)));
        c.set(b.subarray(0, i));
        c.set(b.subarray(i + e.len), i);
        b = c;
        break;
      }
      case "dup": {
        const part = b.subarray(i, i + e.len);
        const c = new Uint8Array(b.length + part.length * e.times);
        c.set(b.subarray(0, i + part.length));
        for (let t = 1; t <= e.times; t++) c.set(part, i + part.length * t);
        c.set(b.subarray(i + part.length), i + part.length * (e.times + 1));
        b = c;
        break;
      }
      case "truncate":
        b = b.slice(0, i);
        break;
    }
  }
  return b;
}

/** Seeds mutated by up to {@link MAX_EDITS} edits (none: the seed itself). */
export function mutated(seeds: readonly Uint8Array[]): fc.Arbitrary<Uint8Array> {
  return fc.tuple(fc.constantFrom(...seeds), fc.array(edit, { maxLength: MAX_EDITS }))
    .map(([s, edits]) => applyEdits(s, edits));
}

/** Mutated seeds, or arbitrary bytes, or seeds spliced with arbitrary bytes. */
export function bytesNear(seeds: readonly Uint8Array[], maxLength = 512): fc.Arbitrary<Uint8Array> {
  return fc.oneof(
    { weight: 6, arbitrary: mutated(seeds) },
    { weight: 1, arbitrary: fc.uint8Array({ maxLength }) },
    {
      weight: 1,
      arbitrary: fc.tuple(mutated(seeds), fc.uint8Array({ maxLength: 64 }), at).map(
        ([s, junk, where]) => {
          const i = Math.floor(where * (s.length + 1));
          const c = new Uint8Array(s.length + junk.length);
          c.set(s.subarray(0, i));
          c.set(junk, i);
          c.set(s.subarray(i), i + junk.length);
          return c;
        },
      ),
    },
  );
}

const enc = new TextEncoder();
const dec = new TextDecoder();

/** Text near `seeds`: their UTF-8 mutated and decoded (lossily), or arbitrary strings. */
export function textNear(seeds: readonly string[], maxLength = 512): fc.Arbitrary<string> {
  return fc.oneof(
    {
      weight: 6,
      arbitrary: bytesNear(seeds.map((s) => enc.encode(s)), maxLength).map((b) => dec.decode(b)),
    },
    { weight: 1, arbitrary: fc.string({ unit: "binary", maxLength }) },
  );
}

/** Values of `arb` (as bytes) mutated by up to {@link MAX_EDITS} edits. */
export function mutatedFrom(arb: fc.Arbitrary<Uint8Array>): fc.Arbitrary<Uint8Array> {
  return fc.tuple(arb, fc.array(edit, { maxLength: MAX_EDITS }))
    .map(([s, edits]) => applyEdits(s, edits));
}
