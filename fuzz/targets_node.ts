/**
 * Fuzz targets for the Plasm job protocol (`/phase/job/1.0.0`, node/):
 * length-prefixed frames (node/frame.ts `FrameStream`) read from an
 * in-memory stream in any chunking, and the offer decoder
 * (node/protocol.ts `checkOffer`) on mutated signed offer frames.
 *
 * @module
 */
import fc from "fast-check";
import { FRAME_HEADER_BYTES, FrameStream, type Stream } from "../node/frame.ts";
import { NodeError } from "../node/errors.ts";
import {
  checkOffer,
  MAX_CONTROL_FRAME_BYTES,
  type Offer,
  OFFER_MEMBERS,
  offerBytes,
  RUNTIMES,
  signOffer,
} from "../node/protocol.ts";
import { encodeBase64 } from "../verify/mod.ts";
import { check, codeOf, type FuzzTarget, onlyAsync } from "./harness.ts";
import { memoryKey } from "./targets_verify.ts";
import { bytesNear, mutated } from "./mutate.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();
const protocolError = codeOf(NodeError, "E_PROTOCOL");

/**
 * A read deadline far above the harness's per-input deadline: a read that
 * waits for it instead of ending when the stream closes shows as a hang.
 */
const FUZZ_READ_TIMEOUT_MS = 60_000;

/**
 * An in-memory libp2p stream: what FrameStream uses of one (message,
 * close and remoteCloseWrite events; send, abort, close, onDrain). After
 * `abort` it delivers nothing more, as a real stream.
 */
class MemoryStream extends EventTarget {
  readonly sent: Uint8Array[] = [];
  aborted: unknown = undefined;
  closed = false;

  /** Delivers `bytes` as one message (nothing once aborted). */
  deliver(bytes: Uint8Array): void {
    if (this.aborted !== undefined) return;
    this.dispatchEvent(Object.assign(new Event("message"), { data: bytes }));
  }

  /** The remote end closes its writing side. */
  end(): void {
    this.dispatchEvent(new Event("remoteCloseWrite"));
  }

  send(bytes: Uint8Array): boolean {
    this.sent.push(bytes.slice());
    return true;
  }

  abort(err: unknown): void {
    this.aborted ??= err ?? new Error("aborted");
  }

  close(): Promise<void> {
    this.closed = true;
    return Promise.resolve();
  }

  onDrain(): Promise<void> {
    return Promise.resolve();
  }
}

function asStream(s: MemoryStream): Stream {
  return s as unknown as Stream;
}

/** `bytes` cut at the given chunk sizes (the rest in one last chunk). */
function chunks(bytes: Uint8Array, sizes: readonly number[]): Uint8Array[] {
  const out: Uint8Array[] = [];
  let off = 0;
  for (const n of sizes) {
    if (off >= bytes.length) break;
    out.push(bytes.subarray(off, off + n));
    off += n;
  }
  if (off < bytes.length) out.push(bytes.subarray(off));
  return out;
}

/** One frame as FrameStream.write puts it on the wire. */
function frame(payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(FRAME_HEADER_BYTES + payload.length);
  new DataView(out.buffer).setUint32(0, payload.length);
  out.set(payload, FRAME_HEADER_BYTES);
  return out;
}

function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

/**
 * The model: the frames a byte stream holds, in order, as far as whole
 * frames go (`announced`: the length each header announces).
 */
function modelFrames(wire: Uint8Array): { frames: Uint8Array[]; announced: number[] } {
  const frames: Uint8Array[] = [];
  const announced: number[] = [];
  let off = 0;
  while (off + FRAME_HEADER_BYTES <= wire.length) {
    const len = new DataView(wire.buffer, wire.byteOffset + off, FRAME_HEADER_BYTES).getUint32(0);
    announced.push(len);
    off += FRAME_HEADER_BYTES;
    if (off + len > wire.length) break;
    frames.push(wire.subarray(off, off + len));
    off += len;
  }
  return { frames, announced };
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/** Lets pending reads run (microtasks only: no timer per chunk). */
async function yieldTurns(n: number): Promise<void> {
  for (let i = 0; i < n; i++) await Promise.resolve();
}

const FRAME_SEEDS = [
  concat([frame(enc.encode('{"type":"accept","need_module":true}'))]),
  concat([
    frame(enc.encode('{"type":"reject","reason":"busy","message":"queue full"}')),
    frame(new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0])),
  ]),
  concat([frame(new Uint8Array(0)), frame(enc.encode("[1,2]")), frame(enc.encode("{}"))]),
  frame(
    enc.encode('{"type":"result","outcome":"ok","output":"AA==","stderr":"","receipt":"e30="}'),
  ),
];

/** What one read of the fuzzed session asks for. */
interface ReadSpec {
  readonly json: boolean;
  readonly max: number;
}

const jobFrames: FuzzTarget = {
  name: "job-frames",
  parser: "node/frame.ts: FrameStream read, readJson, write",
  properties: [
    "any bytes in any chunking, read as up to 3 frames of any caps: frames or NodeError(E_PROTOCOL), nothing else, and no read outlives the stream's close (hang)",
    "every frame read is the next whole frame of the byte stream, and never longer than its cap; readJson gives only JSON objects",
    "a header announcing more than the cap is E_PROTOCOL and aborts the stream (TM-22)",
    "round trip: write(payload) puts a 4-byte big-endian length and the payload on the wire; read gives the payload back whatever the chunking",
  ],
  build() {
    const readSpec: fc.Arbitrary<ReadSpec> = fc.record({
      json: fc.boolean(),
      max: fc.oneof(
        fc.integer({ min: 0, max: 300 }),
        fc.constantFrom(MAX_CONTROL_FRAME_BYTES, 2 ** 32 - 1),
      ),
    });
    const wire = fc.oneof(
      { weight: 6, arbitrary: bytesNear(FRAME_SEEDS, 600) },
      {
        weight: 2,
        arbitrary: fc.array(fc.uint8Array({ maxLength: 120 }), { minLength: 1, maxLength: 4 })
          .map((ps) => concat(ps.map(frame))),
      },
      {
        // A header announcing a huge frame, then a few bytes.
        weight: 1,
        arbitrary: fc.tuple(
          fc.integer({ min: 0, max: 2 ** 32 - 1 }),
          fc.uint8Array({ maxLength: 16 }),
        )
          .map(([n, rest]) => {
            const h = new Uint8Array(FRAME_HEADER_BYTES);
            new DataView(h.buffer).setUint32(0, n);
            return concat([h, rest]);
          }),
      },
    );
    const session = fc.record({
      wire,
      sizes: fc.array(fc.integer({ min: 1, max: 64 }), { maxLength: 6 }),
      reads: fc.array(readSpec, { minLength: 1, maxLength: 3 }),
      gap: fc.integer({ min: 0, max: 3 }),
    });
    const roundTrip = fc.record({
      payload: fc.oneof(
        fc.uint8Array({ maxLength: 400 }),
        fc.dictionary(fc.string({ maxLength: 6 }), fc.string({ unit: "binary", maxLength: 12 }), {
          maxKeys: 4,
          noNullPrototype: true,
        }).map((o) => enc.encode(JSON.stringify(o))),
      ),
      sizes: fc.array(fc.integer({ min: 1, max: 64 }), { maxLength: 6 }),
      slack: fc.integer({ min: 0, max: 8 }),
    });
    return Promise.resolve(fc.asyncProperty(
      fc.oneof({ weight: 3, arbitrary: session.map((s) => ({ s, r: undefined })) }, {
        weight: 1,
        arbitrary: roundTrip.map((r) => ({ s: undefined, r })),
      }),
      async ({ s, r }) => {
        if (s) await checkSession(s.wire, s.sizes, s.reads, s.gap);
        if (r) await checkRoundTrip(r.payload, r.sizes, r.slack);
      },
    ));
  },
};

async function checkSession(
  wire: Uint8Array,
  sizes: readonly number[],
  reads: readonly ReadSpec[],
  gap: number,
): Promise<void> {
  const stream = new MemoryStream();
  const fs = new FrameStream(asStream(stream));
  const model = modelFrames(wire);
  const got: Uint8Array[] = [];
  let failed: unknown;
  // The reader: strict alternation, as both sides of the protocol read.
  const reader = (async () => {
    for (const spec of reads) {
      const i = got.length;
      const out = await onlyAsync(protocolError, async () => {
        if (!spec.json) return await fs.read(spec.max, FUZZ_READ_TIMEOUT_MS, "frame");
        const v = await fs.readJson(spec.max, FUZZ_READ_TIMEOUT_MS, "frame");
        check(typeof v === "object" && v !== null && !Array.isArray(v), "readJson: not an object");
        return enc.encode(JSON.stringify(v));
      });
      if (out === undefined) {
        failed = true;
        const announced = model.announced[i];
        if (announced !== undefined && announced > spec.max) {
          check(stream.aborted !== undefined, "an oversized frame did not abort the stream");
        }
        if (stream.aborted === undefined && !spec.json) {
          check(model.frames[i] === undefined, `whole frame ${i} within its cap was refused`);
        }
        return;
      }
      const want = model.frames[i];
      check(want !== undefined, `frame ${i} is not in the byte stream`);
      check(want!.length <= spec.max, `frame of ${want!.length} bytes above its cap ${spec.max}`);
      if (spec.json) {
        const v = JSON.parse(dec.decode(want!));
        check(dec.decode(out) === JSON.stringify(v), `JSON frame ${i} differs`);
      } else {
        check(equalBytes(out, want!), `frame ${i} differs`);
      }
      got.push(out);
    }
  })();
  // The peer: chunks with a few turns between them, then it closes.
  for (const c of chunks(wire, sizes)) {
    await yieldTurns(gap);
    stream.deliver(c);
  }
  await yieldTurns(gap);
  stream.end();
  await reader;
  check(failed !== undefined || got.length === reads.length, "a read neither ended nor failed");
}

async function checkRoundTrip(
  payload: Uint8Array,
  sizes: readonly number[],
  slack: number,
): Promise<void> {
  const out = new MemoryStream();
  await new FrameStream(asStream(out)).write(payload);
  const w = concat(out.sent);
  check(equalBytes(w, frame(payload)), "write: not a 4-byte length and the payload");
  const stream = new MemoryStream();
  const fs = new FrameStream(asStream(stream));
  const read = onlyAsync(
    () => false,
    () => fs.read(payload.length + slack, FUZZ_READ_TIMEOUT_MS, "frame"),
  );
  for (const c of chunks(w, sizes)) {
    await yieldTurns(1);
    stream.deliver(c);
  }
  const back = await read;
  check(back !== undefined && equalBytes(back, payload), "round trip changed the payload");
  check(stream.aborted === undefined, "a well-formed frame aborted the stream");
}

/** A signed offer frame and the canonical bytes its signature covers. */
interface OfferSeed {
  readonly bytes: Uint8Array;
  readonly canonical: string;
}

const HEX = "0123456789abcdef";

const offerFields: fc.Arbitrary<FieldValues> = fc.record({
  runtime: fc.oneof(fc.constantFrom(...RUNTIMES), fc.string({ maxLength: 16 })),
  module: fc.string({ unit: fc.constantFrom(...HEX), minLength: 64, maxLength: 64 }),
  module_size: fc.integer({ min: 0, max: 2 ** 40 }),
  input: fc.string({ unit: fc.constantFrom(...HEX), minLength: 64, maxLength: 64 }),
  input_size: fc.integer({ min: 0, max: 2 ** 40 }),
  limits: fc.record({
    memory_bytes: fc.integer({ min: 0, max: 2 ** 40 }),
    timeout_ms: fc.integer({ min: 0, max: 2 ** 40 }),
    output_bytes: fc.integer({ min: 0, max: 2 ** 40 }),
  }),
  deadline: fc.maxSafeNat(),
  nonce: fc.string({ unit: fc.constantFrom(...HEX), minLength: 32, maxLength: 32 }),
  node: fc.string({ unit: "binary", maxLength: 60 }),
  input_b64: fc.uint8Array({ maxLength: 48 }),
});

const jobOffer: FuzzTarget = {
  name: "job-offer",
  parser: "node/frame.ts: readJson's decoding + node/protocol.ts: checkOffer",
  properties: [
    "mutated signed offer frames: checkOffer returns the offer or a reason, never throws",
    "an accepted offer has exactly the signed canonical bytes of the seed and its submitter (the signature binds every member)",
    "an offer signed for another peer than the one connected is refused",
    "round trip: any well-formed offer, signed and framed, decodes and is accepted with the same canonical bytes",
  ],
  build() {
    const key = memoryKey();
    const other = memoryKey();
    const sign = (v: FieldValues): OfferSeed => {
      const offer: Offer = {
        schema: 1,
        runtime: v.runtime,
        module: `sha256:${v.module}`,
        module_size: v.module_size,
        input: `sha256:${v.input}`,
        input_size: v.input_size,
        limits: v.limits,
        deadline: v.deadline,
        nonce: v.nonce,
        node: v.node,
        submitter: encodeBase64(key.publicRaw),
      };
      const msg = {
        type: "offer",
        offer,
        sig: signOffer(offer, key.key),
        input: encodeBase64(v.input_b64),
      };
      return { bytes: enc.encode(JSON.stringify(msg)), canonical: dec.decode(offerBytes(offer)) };
    };
    const seeds = fc.sample(offerFields, { numRuns: 4, seed: 20261122 }).map(sign);
    // Structured mutations: one member of a signed offer changed, the signature kept.
    const tweaked = fc.tuple(
      offerFields.map(sign),
      fc.constantFrom(...OFFER_MEMBERS, "limits.memory_bytes", "limits.timeout_ms", "sig", "extra"),
      fc.oneof(
        fc.constantFrom(null, true, 0, -1, 1.5, 2 ** 40 + 1, 2 ** 53, "", "1", [], {}),
        fc.integer(),
        fc.string({ unit: "binary", maxLength: 70 }),
      ),
      fc.nat(),
    ).map(([s, member, value, at]) => {
      const msg = JSON.parse(dec.decode(s.bytes));
      const o = msg.offer;
      if (member === "sig") msg.sig = value;
      else if (member === "extra") o[`x${at % 3}`] = value;
      else if (member.startsWith("limits.")) o.limits[member.slice(7)] = value;
      else if (at % 4 === 0) delete o[member];
      else if (typeof o[member] === "string" && at % 4 === 1 && o[member].length > 0) {
        // One character changed: still well-formed more often than not.
        const k = at % o[member].length;
        const c = "0123456789abcdef+/=A"[at % 20];
        o[member] = o[member].slice(0, k) + c + o[member].slice(k + 1);
      } else if (typeof o[member] === "number" && at % 4 === 2) o[member] += 1;
      else o[member] = value;
      return { b: enc.encode(JSON.stringify(msg)), signed: [s.canonical], whole: undefined };
    });
    const seedCanonicals = seeds.map((s) => s.canonical);
    // Each input carries the canonical bytes that were signed for it.
    const input = fc.oneof(
      {
        weight: 6,
        arbitrary: bytesNear(seeds.map((s) => s.bytes), 1024).map((b) => ({
          b,
          signed: seedCanonicals,
          whole: undefined as OfferSeed | undefined,
        })),
      },
      {
        weight: 2,
        arbitrary: offerFields.map(sign).chain((s) =>
          mutated([s.bytes]).map((b) => ({ b, signed: [s.canonical], whole: undefined }))
        ),
      },
      {
        weight: 2,
        arbitrary: offerFields.map(sign).map((s) => ({
          b: s.bytes,
          signed: [s.canonical],
          whole: s,
        })),
      },
      { weight: 4, arbitrary: tweaked },
    );
    return Promise.resolve(fc.asyncProperty(input, fc.boolean(), async (i, wrongPeer) => {
      // Through a real FrameStream: the frame as the node reads it.
      const stream = new MemoryStream();
      const fs = new FrameStream(asStream(stream));
      const reading = onlyAsync(
        protocolError,
        () => fs.readJson(i.b.length, FUZZ_READ_TIMEOUT_MS, "offer"),
      );
      stream.deliver(frame(i.b));
      stream.end();
      const msg = await reading;
      if (msg === undefined) {
        check(i.whole === undefined, "a signed offer frame was not read");
        return;
      }
      const connected = wrongPeer ? other.publicRaw : key.publicRaw;
      const res = await onlyAsync(
        () => false,
        () => Promise.resolve(checkOffer(msg.offer, msg.sig, connected)),
      );
      if (typeof res !== "object") {
        check(i.whole === undefined || wrongPeer, `a well-formed offer was refused: ${res}`);
        return;
      }
      check(!wrongPeer, "an offer signed for another peer than the connected one passed");
      check(
        i.signed.includes(dec.decode(offerBytes(res.offer))),
        "an accepted offer's canonical bytes are not what was signed",
      );
      check(res.submitter === key.keyid, "accepted under another submitter");
    }));
  },
};

type FieldValues = {
  runtime: string;
  module: string;
  module_size: number;
  input: string;
  input_size: number;
  limits: { memory_bytes: number; timeout_ms: number; output_bytes: number };
  deadline: number;
  nonce: string;
  node: string;
  input_b64: Uint8Array;
};

/** node/'s targets. */
export const NODE_TARGETS: readonly FuzzTarget[] = [jobFrames, jobOffer];
