/**
 * Fuzz targets for verify/: strict JSON, JCS, manifests, discovery
 * records, trust files, CIDs.
 *
 * @module
 */
import fc from "fast-check";
import canonicalizeModule from "canonicalize";
import { CID } from "multiformats/cid";
import * as Digest from "multiformats/hashes/digest";
import { createHash, generateKeyPairSync } from "node:crypto";
import { buildRecord, formatDocument, signatureFor, type SigningKey } from "../sign/mod.ts";
import {
  buildManifestDocument,
  canonicalize,
  decodeManifest,
  decodeRecord,
  digestOfRawCid,
  formatTrust,
  isJsonObject,
  type JsonValue,
  keyidOf,
  MAX_JSON_DEPTH,
  MAX_MANIFEST_BYTES,
  MAX_TRUST_BYTES,
  parseDocument,
  parseStrictJson,
  parseTrust,
  rawCid,
  rawPublicKey,
  signedBytes,
  StrictJsonError,
  type Trust,
  VerifyError,
  verifyManifest,
} from "../verify/mod.ts";
import { check, codeOf, type FuzzTarget, only } from "./harness.ts";
import { bytesNear, textNear } from "./mutate.ts";

// A CommonJS module whose export is the function itself.
const jcsReference = canonicalizeModule as unknown as (v: unknown) => string | undefined;
const enc = new TextEncoder();
const dec = new TextDecoder();
const verifyError = codeOf(VerifyError);

/** A signing key made in memory (sign/'s type, without a key file). */
export function memoryKey(): SigningKey {
  const { privateKey } = generateKeyPairSync("ed25519");
  const publicRaw = rawPublicKey(privateKey);
  return { key: privateKey, publicRaw, keyid: keyidOf(publicRaw) };
}

function trustFor(keys: readonly SigningKey[], threshold = 1): Trust {
  return parseTrust(
    enc.encode(
      formatTrust(
        threshold,
        keys.map((k) => ({ keyid: k.keyid, publicKey: k.publicRaw, name: "fuzz" })),
        encodeB64,
      ),
    ),
  );
}

function encodeB64(b: Uint8Array): string {
  return btoa(String.fromCharCode(...b));
}

function depthOf(v: JsonValue): number {
  if (Array.isArray(v)) return 1 + Math.max(0, ...v.map(depthOf));
  if (isJsonObject(v)) return 1 + Math.max(0, ...Object.values(v).map(depthOf));
  return 0;
}

/** JSON values inside the strict profile: safe integers only, any UTF-16 strings. */
export const strictValue: fc.Arbitrary<JsonValue> = fc.letrec<{ value: JsonValue }>((tie) => ({
  value: fc.oneof(
    { depthSize: "small", withCrossShrink: true },
    fc.constant(null),
    fc.boolean(),
    fc.maxSafeInteger(),
    fc.string({ unit: "binary", maxLength: 24 }),
    fc.array(tie("value"), { maxLength: 5 }),
    fc.dictionary(fc.string({ unit: "binary", maxLength: 8 }), tie("value"), {
      maxKeys: 5,
      noNullPrototype: true,
    }),
  ),
})).value;

const JSON_SEEDS = [
  '{"a":1,"b":[true,false,null],"c":{"d":"e\\u00e9\\n"}}',
  '[1,-2,9007199254740991,"\\ud83d\\ude00",{}]',
  '{"__proto__":{"x":1},"constructor":0}',
  '  {"s" : "\\"\\\\\\/\\b\\f\\n\\r\\t" }  ',
  '"x"',
  "0",
];

const strictJson: FuzzTarget = {
  name: "strict-json",
  parser: "verify/strict_json.ts: parseStrictJson",
  partner: "JSON.parse (on documents the strict parser accepts)",
  properties: [
    "any bytes: a value or StrictJsonError, nothing else (deep nesting too: no stack overflow)",
    "an accepted document means the same to JSON.parse (canonical forms equal)",
    `an accepted document nests at most MAX_JSON_DEPTH (${MAX_JSON_DEPTH}) levels`,
  ],
  build() {
    const nested = fc.tuple(fc.integer({ min: 1, max: 20_000 }), fc.constantFrom("[", '{"a":'))
      .map(([n, open]) => enc.encode(open.repeat(n)));
    const input = fc.oneof(
      { weight: 6, arbitrary: bytesNear(JSON_SEEDS.map((s) => enc.encode(s))) },
      { weight: 2, arbitrary: fc.json({ maxDepth: 4 }).map((s) => enc.encode(s)) },
      { weight: 1, arbitrary: nested },
    );
    return Promise.resolve(fc.property(input, (bytes) => {
      const v = only((e) => e instanceof StrictJsonError, () => parseStrictJson(bytes));
      if (v === undefined) return;
      const reference = JSON.parse(dec.decode(bytes));
      check(canonicalize(v) === canonicalize(reference), "JSON.parse reads another value");
      check(depthOf(v) <= MAX_JSON_DEPTH + 1, "accepted a document nested too deep");
    }));
  },
};

const jcs: FuzzTarget = {
  name: "jcs",
  parser: "verify/jcs.ts: canonicalize",
  partner: "npm canonicalize (RFC 8785 reference)",
  properties: [
    "canonicalize(v) equals the reference implementation's output",
    "round trip: parseStrictJson(canonicalize(v)) canonicalizes to the same text",
    "canonical text parses with JSON.parse to a value with the same canonical form",
  ],
  build() {
    return Promise.resolve(fc.property(strictValue, (v) => {
      const c = only(() => false, () => canonicalize(v))!;
      check(c === jcsReference(v), `differs from the reference: ${c.slice(0, 80)}`);
      const back = only(() => false, () => parseStrictJson(c))!;
      check(canonicalize(back) === c, "canonical text does not round-trip");
      check(canonicalize(JSON.parse(c)) === c, "JSON.parse reads the canonical text otherwise");
    }));
  },
};

/** The fixed clock of the manifest and record targets. */
const NOW = new Date("2026-11-22T00:00:00Z");

function manifestInput(over: { cmdline?: string; extra?: string } = {}) {
  const digest = "sha256:" + "ab".repeat(32);
  const artifacts: [string, { digest: string; size: number }][] = [
    ["kernel", { digest, size: 1 }],
    ["initramfs", { digest, size: 2 }],
  ];
  if (over.extra) artifacts.push([over.extra, { digest, size: 3 }]);
  return {
    channel: "stable",
    arch: "amd64",
    version: "2026.11.20",
    now: new Date("2026-11-20T00:00:00Z"),
    expiresInMs: 30 * 86_400_000,
    cmdline: over.cmdline ?? "console=ttyS0",
    artifacts,
  };
}

const manifest: FuzzTarget = {
  name: "manifest",
  parser: "verify/manifest.ts: parseDocument + decodeManifest; verify/verify.ts: verifyManifest",
  properties: [
    "mutated signed manifests: a manifest or VerifyError, nothing else",
    "a mutated manifest that still verifies signs exactly the seed's canonical bytes",
    `above MAX_MANIFEST_BYTES (${MAX_MANIFEST_BYTES}) bytes: E_SCHEMA before parsing`,
  ],
  build() {
    const key = memoryKey();
    const trust = trustFor([key]);
    const docs = [
      buildManifestDocument(manifestInput()),
      buildManifestDocument(
        manifestInput({ cmdline: "quiet \u00e9 \ud83d\ude00", extra: "rootfs" }),
      ),
    ];
    const seeds: Uint8Array[] = [];
    const signed = new Set<string>();
    for (const doc of docs) {
      const s = { ...doc, signatures: [signatureFor(doc, key, false)] };
      seeds.push(formatDocument(s), enc.encode(JSON.stringify(s)));
      signed.add(dec.decode(signedBytes(doc)));
    }
    const oversized = fc.nat({ max: 64 }).map((n) => {
      const b = new Uint8Array(MAX_MANIFEST_BYTES + 1 + n).fill(0x20);
      b.set(seeds[1]);
      return b;
    });
    const input = fc.oneof(
      { weight: 50, arbitrary: bytesNear(seeds, 2048) },
      { weight: 1, arbitrary: oversized },
    );
    return Promise.resolve(fc.property(input, (bytes) => {
      only(verifyError, () => decodeManifest(parseDocument(bytes, "manifest", MAX_MANIFEST_BYTES)));
      const m = only(verifyError, () => verifyManifest(bytes, trust, { now: NOW }));
      if (bytes.length > MAX_MANIFEST_BYTES) check(m === undefined, "accepted above the cap");
      if (m !== undefined) {
        check(signed.has(dec.decode(signedBytes(m.value.document))), "verified altered content");
      }
    }));
  },
};

const VERSION = fc.array(fc.nat({ max: 99_999 }), { minLength: 1, maxLength: 8 }).map((a) =>
  a.join(".")
);

const manifestRoundTrip: FuzzTarget = {
  name: "manifest-roundtrip",
  parser: "verify/format.ts: buildManifestDocument -> sign -> verifyManifest / decodeManifest",
  properties: [
    "any valid release input, built, signed and written as sign writes it, verifies",
    "the verified manifest carries exactly the input (version, channel, arch, cmdline, artifacts, times)",
  ],
  build() {
    const key = memoryKey();
    const trust = trustFor([key]);
    const name = fc.stringMatching(/^[a-z0-9][a-z0-9._-]{0,63}$/);
    const input = fc.record({
      channel: fc.stringMatching(/^[a-z0-9][a-z0-9-]{0,31}$/),
      arch: fc.constantFrom("amd64", "x86_64", "arm64", "aarch64"),
      version: VERSION,
      now: fc.date({
        min: new Date("1971-01-01T00:00:00Z"),
        max: new Date("2200-01-01T00:00:00Z"),
        noInvalidDate: true,
      }),
      expiresInMs: fc.integer({ min: 1_000, max: 100 * 365 * 86_400_000 }),
      cmdline: fc.string({ unit: "binary", maxLength: 64 }),
      artifacts: fc.uniqueArray(
        fc.tuple(
          name,
          fc.record({
            digest: fc.uint8Array({ minLength: 32, maxLength: 32 }).map((d) =>
              "sha256:" + [...d].map((b) => b.toString(16).padStart(2, "0")).join("")
            ),
            size: fc.maxSafeNat(),
          }),
        ),
        { maxLength: 4, selector: ([n]) => n },
      ),
    }).map((i) => ({
      ...i,
      artifacts: [
        ["kernel", { digest: "sha256:" + "1".repeat(64), size: 1 }] as const,
        ["initramfs", { digest: "sha256:" + "2".repeat(64), size: 2 }] as const,
        ...i.artifacts.filter(([n]) => n !== "kernel" && n !== "initramfs"),
      ],
    }));
    return Promise.resolve(fc.property(input, (i) => {
      const doc = only(() => false, () => buildManifestDocument(i))!;
      const bytes = formatDocument({ ...doc, signatures: [signatureFor(doc, key, false)] });
      const m = only(() => false, () => verifyManifest(bytes, trust, { now: i.now }))!.value;
      check(m.version === i.version && m.channel === i.channel, "version or channel changed");
      check(
        m.arch === (i.arch === "x86_64" ? "amd64" : i.arch === "aarch64" ? "arm64" : i.arch),
        "arch",
      );
      check(m.cmdline === i.cmdline, "cmdline changed");
      check(m.issuedAt.getTime() === Math.floor(i.now.getTime() / 1000) * 1000, "issued_at");
      check(m.expiresAt > i.now, "expires_at not after issued_at");
      check(Object.keys(m.artifacts).length === i.artifacts.length, "artifact count");
      for (const [n, a] of i.artifacts) {
        check(m.artifacts[n]?.digest === a.digest && m.artifacts[n].size === a.size, n);
      }
      const again = decodeManifest(
        parseDocument(enc.encode(JSON.stringify(m.document)), "m", MAX_MANIFEST_BYTES),
      );
      check(canonicalize(again.document) === canonicalize(m.document), "re-decode differs");
    }));
  },
};

function recordSeeds(key: SigningKey) {
  const m = enc.encode('{"manifest":1}');
  const base = buildRecord(m, { version: "2026.11.20", expires_at: "2026-12-20T00:00:00Z" }, [
    "http://192.0.2.1:8080/stable/amd64/manifest.json",
  ], ["/ip4/127.0.0.1/tcp/4001/p2p/12D3KooWxyz"]);
  return [base, { ...base, mirrors: [], providers: [] }].map((doc) => ({
    doc,
    bytes: [
      formatDocument({ ...doc, signatures: [signatureFor(doc, key, true)] }),
      enc.encode(JSON.stringify({ ...doc, signatures: [signatureFor(doc, key, true)] })),
    ],
  }));
}

const record: FuzzTarget = {
  name: "record",
  parser: "verify/record.ts: decodeRecord",
  properties: [
    "mutated signed records: a record or VerifyError, nothing else",
    "a mutated record that still decodes signs exactly the seed's canonical bytes",
  ],
  build() {
    const seeds = recordSeeds(memoryKey());
    const signed = new Set(seeds.map((s) => dec.decode(signedBytes(s.doc))));
    return Promise.resolve(
      fc.property(bytesNear(seeds.flatMap((s) => s.bytes), 1024), (bytes) => {
        const r = only(verifyError, () => decodeRecord(bytes, NOW));
        if (r) check(signed.has(dec.decode(signedBytes(r.document))), "decoded altered content");
      }),
    );
  },
};

const recordRoundTrip: FuzzTarget = {
  name: "record-roundtrip",
  parser: "sign/sign.ts: buildRecord + signatureFor -> verify/record.ts: decodeRecord",
  properties: [
    "any record sign builds (mirrors, providers, version, expiry) decodes to the same fields",
  ],
  build() {
    const key = memoryKey();
    const input = fc.record({
      manifest: fc.uint8Array({ maxLength: 64 }),
      version: VERSION,
      expires: fc.date({
        min: new Date("2026-11-23T00:00:00Z"),
        max: new Date("2200-01-01T00:00:00Z"),
        noInvalidDate: true,
      }),
      mirrors: fc.array(fc.webUrl({ validSchemes: ["http", "https"] }), { maxLength: 4 }),
      providers: fc.array(fc.string({ unit: "binary", maxLength: 40 }), { maxLength: 4 }),
    });
    return Promise.resolve(fc.property(input, (i) => {
      const expires = i.expires.toISOString().replace(/\.\d{3}Z$/, "Z");
      const doc = buildRecord(
        i.manifest,
        { version: i.version, expires_at: expires },
        i.mirrors,
        i.providers,
      );
      const bytes = formatDocument({ ...doc, signatures: [signatureFor(doc, key, true)] });
      const r = only(() => false, () => decodeRecord(bytes, NOW))!;
      check(r.manifestCid === rawCid(i.manifest) && r.version === i.version, "cid or version");
      check(JSON.stringify(r.mirrors) === JSON.stringify(i.mirrors), "mirrors changed");
      check(JSON.stringify(r.providers) === JSON.stringify(i.providers), "providers changed");
      check(r.expiresAt.getTime() === Date.parse(expires), "expiry changed");
    }));
  },
};

const trust: FuzzTarget = {
  name: "trust",
  parser: "verify/trust.ts: parseTrust",
  properties: [
    "mutated trust files: a trust or VerifyError(E_TRUST), nothing else",
    "every accepted file: 1 <= threshold <= keys, each keyid the hash of its key",
    "round trip: formatTrust -> parseTrust gives the same threshold, keys and names",
    `above MAX_TRUST_BYTES (${MAX_TRUST_BYTES}) bytes: E_TRUST before parsing`,
  ],
  build() {
    const pub = fc.uint8Array({ minLength: 32, maxLength: 32 });
    const entries = fc.uniqueArray(
      fc.record({ publicKey: pub, name: fc.string({ unit: "binary", maxLength: 16 }) }),
      { minLength: 1, maxLength: 4, selector: (k) => k.publicKey.join() },
    );
    const roundTrip = fc.tuple(entries, fc.nat()).map(([ks, t]) => {
      const keys = ks.map((k) => ({ ...k, keyid: keyidOf(k.publicKey) }));
      return { threshold: 1 + (t % keys.length), keys };
    });
    const seeds = [1, 2, 3].map((n) => {
      const keys = Array.from({ length: n }, (_, i) => {
        const publicKey = new Uint8Array(32).fill(i + 1);
        return { publicKey, keyid: keyidOf(publicKey), name: `k${i}` };
      });
      return enc.encode(formatTrust(n, keys, encodeB64));
    });
    const oversized = fc.constant(0).map(() => {
      const b = new Uint8Array(MAX_TRUST_BYTES + 1).fill(0x20);
      b.set(seeds[0]);
      return b;
    });
    return Promise.resolve(fc.property(
      fc.oneof(
        {
          weight: 20,
          arbitrary: bytesNear(seeds, 1024).map((b) => ({ bytes: b, want: undefined })),
        },
        {
          weight: 5,
          arbitrary: roundTrip.map((w) => ({
            bytes: enc.encode(formatTrust(w.threshold, w.keys, encodeB64)),
            want: w,
          })),
        },
        { weight: 1, arbitrary: oversized.map((b) => ({ bytes: b, want: undefined })) },
      ),
      ({ bytes, want }) => {
        const t = only(codeOf(VerifyError, "E_TRUST"), () => parseTrust(bytes));
        if (bytes.length > MAX_TRUST_BYTES) check(t === undefined, "accepted above the cap");
        if (t) {
          check(t.threshold >= 1 && t.threshold <= t.keys.size, "threshold out of range");
          for (const [id, k] of t.keys) check(keyidOf(k.publicKey) === id, "keyid mismatch");
        }
        if (want) {
          check(t !== undefined && t.threshold === want.threshold, "threshold changed");
          for (const k of want.keys) check(t!.keys.get(k.keyid)?.name === k.name, "key lost");
          check(t!.keys.size === want.keys.length, "key count changed");
        }
      },
    ));
  },
};

function partnerDigest(s: string): string | undefined {
  if (!s.startsWith("b")) return undefined;
  let cid: CID;
  try {
    cid = CID.parse(s);
  } catch {
    return undefined;
  }
  // Deliberate: multiformats reads base32 in any case; Phase accepts one
  // spelling only, the one multiformats writes.
  // (CID.parse keeps the source text for toString: re-encode from scratch.)
  if (CID.create(cid.version, cid.code, cid.multihash).toString() !== s) return undefined;
  if (cid.version !== 1 || cid.code !== 0x55 || cid.multihash.code !== 0x12) return undefined;
  if (cid.multihash.digest.length !== 32) return undefined;
  return [...cid.multihash.digest].map((b) => b.toString(16).padStart(2, "0")).join("");
}

const cid: FuzzTarget = {
  name: "cid",
  parser: "verify/cid.ts: digestOfRawCid, rawCid",
  partner: "multiformats (CID.parse, CID.create)",
  properties: [
    "any string: digestOfRawCid never throws",
    "it accepts exactly the strings multiformats parses as a CIDv1 raw sha2-256 and writes back the same (base32 'b'), with the same digest",
    "rawCid(bytes) equals multiformats' CIDv1 raw sha2-256 of the same digest",
  ],
  build() {
    const seeds = ["", "a", "phase", "\u0000"].map((s) => rawCid(enc.encode(s)));
    const base32 = fc.string({
      unit: fc.constantFrom(..."abcdefghijklmnopqrstuvwxyz234567"),
      minLength: 50,
      maxLength: 66,
    }).map((s) => "b" + s);
    const text = fc.oneof(
      { weight: 4, arbitrary: textNear(seeds, 80) },
      { weight: 2, arbitrary: base32 },
      {
        weight: 2,
        arbitrary: fc.tuple(
          fc.constantFrom(...seeds),
          fc.nat({ max: 57 }),
          fc.constantFrom(..."abcdefghijklmnopqrstuvwxyz234567="),
        )
          .map(([s, i, c]) => s.slice(0, 1 + i) + c + s.slice(2 + i)),
      },
    );
    return Promise.resolve(fc.property(text, fc.uint8Array({ maxLength: 64 }), (s, bytes) => {
      const mine = only(() => false, () => digestOfRawCid(s));
      const theirs = partnerDigest(s);
      check(mine === theirs, `'${s}': Phase reads ${mine}, multiformats reads ${theirs}`);
      const d = createHash("sha256").update(bytes).digest();
      const ref = CID.create(1, 0x55, Digest.create(0x12, new Uint8Array(d))).toString();
      check(only(() => false, () => rawCid(bytes)) === ref, "rawCid differs from multiformats");
    }));
  },
};

/** verify/'s targets. */
export const VERIFY_TARGETS: readonly FuzzTarget[] = [
  strictJson,
  jcs,
  manifest,
  manifestRoundTrip,
  record,
  recordRoundTrip,
  trust,
  cid,
];
