/**
 * Length-prefixed frames over a libp2p stream: a 4-byte big-endian length,
 * then that many bytes. Every read names its byte cap and its deadline; a
 * peer that announces a larger frame, sends bytes nobody asked for, or
 * stalls past the deadline gets its stream aborted (TM-22).
 *
 * @module
 */
import type { PhaseNode } from "../p2p/mod.ts";
import { NodeError } from "./errors.ts";

/** A libp2p stream (the type of `dialProtocol`'s result). */
export type Stream = Awaited<ReturnType<PhaseNode["dialProtocol"]>>;

/** Bytes of the length prefix. */
export const FRAME_HEADER_BYTES = 4;
/** Longest one write may wait for the peer to drain, in ms. */
export const WRITE_TIMEOUT_MS = 10_000;

/** A frame stream: strict alternation, one expected frame at a time. */
export class FrameStream {
  /** The libp2p stream underneath. */
  readonly stream: Stream;
  #chunks: Uint8Array[] = [];
  #buffered = 0;
  #ended = false;
  #wake: (() => void) | undefined;
  /** Bytes the peer may have in flight now (header included); more aborts the stream. */
  #allowance = 0;

  /** Wraps `stream`; `allowance` is what the peer may send before the first read. */
  constructor(stream: Stream, allowance = 0) {
    this.stream = stream;
    this.#allowance = allowance;
    stream.addEventListener("message", (e) => {
      const d = e.data;
      const bytes = d instanceof Uint8Array ? d : d.subarray();
      this.#chunks.push(bytes);
      this.#buffered += bytes.length;
      // TM-22: never buffer more than the frame being waited for.
      if (this.#buffered > this.#allowance) {
        this.#ended = true;
        this.stream.abort(new Error("peer sent more than the protocol allows"));
      }
      this.#wake?.();
    });
    const end = () => {
      this.#ended = true;
      this.#wake?.();
    };
    stream.addEventListener("close", end);
    stream.addEventListener("remoteCloseWrite", end);
  }

  /** Sets what the peer may send next (bytes, header included). */
  allow(bytes: number): void {
    this.#allowance = bytes;
  }

  #take(n: number): Uint8Array {
    const out = new Uint8Array(n);
    let off = 0;
    while (off < n) {
      const c = this.#chunks[0];
      const k = Math.min(c.length, n - off);
      out.set(c.subarray(0, k), off);
      off += k;
      if (k === c.length) this.#chunks.shift();
      else this.#chunks[0] = c.subarray(k);
    }
    this.#buffered -= n;
    this.#allowance -= n;
    return out;
  }

  async #waitFor(n: number, deadline: number, what: string, signal?: AbortSignal): Promise<void> {
    while (this.#buffered < n) {
      if (this.#ended) {
        throw new NodeError("E_PROTOCOL", `the peer closed the stream before ${what}`, {
          hint: "the peer went away or refused the stream",
        });
      }
      const left = deadline - performance.now();
      if (left <= 0 || signal?.aborted) {
        const err = signal?.aborted
          ? new NodeError("E_CANCELLED", `cancelled while waiting for ${what}`)
          : new NodeError("E_PROTOCOL", `no ${what} within its deadline`, {
            hint: "the peer stalled; the stream was cut",
          });
        this.stream.abort(err);
        throw err;
      }
      await new Promise<void>((resolve) => {
        const t = setTimeout(done, left);
        const onAbort = () => done();
        signal?.addEventListener("abort", onAbort, { once: true });
        function done() {
          clearTimeout(t);
          signal?.removeEventListener("abort", onAbort);
          resolve();
        }
        this.#wake = done;
      });
      this.#wake = undefined;
    }
  }

  /**
   * Reads one frame of at most `maxBytes` within `timeoutMs`. Throws
   * {@link NodeError} `E_PROTOCOL` (and aborts the stream) on a larger
   * frame, a stall or an early close; `E_CANCELLED` when `signal` aborts.
   */
  async read(
    maxBytes: number,
    timeoutMs: number,
    what: string,
    signal?: AbortSignal,
  ): Promise<Uint8Array> {
    const deadline = performance.now() + timeoutMs;
    this.#allowance = Math.max(this.#allowance, FRAME_HEADER_BYTES + maxBytes);
    await this.#waitFor(FRAME_HEADER_BYTES, deadline, what, signal);
    const len = new DataView(this.#take(FRAME_HEADER_BYTES).buffer).getUint32(0);
    if (len > maxBytes) {
      const err = new NodeError(
        "E_PROTOCOL",
        `${what} of ${len} bytes is above its cap of ${maxBytes}`,
        {
          hint: "the peer sent an oversized frame; the stream was cut",
        },
      );
      this.stream.abort(err);
      throw err;
    }
    this.#allowance = Math.min(this.#allowance, len);
    await this.#waitFor(len, deadline, what, signal);
    const out = this.#take(len);
    this.#allowance = 0;
    return out;
  }

  /** Reads one JSON frame (an object) of at most `maxBytes`. */
  async readJson(
    maxBytes: number,
    timeoutMs: number,
    what: string,
    signal?: AbortSignal,
  ): Promise<Record<string, unknown>> {
    const bytes = await this.read(maxBytes, timeoutMs, what, signal);
    let v: unknown;
    try {
      v = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
    } catch {
      v = undefined;
    }
    if (!v || typeof v !== "object" || Array.isArray(v)) {
      const err = new NodeError("E_PROTOCOL", `${what} is not a JSON object`, {
        hint: "the peer does not speak /phase/job/1.0.0",
      });
      this.stream.abort(err);
      throw err;
    }
    return v as Record<string, unknown>;
  }

  /** Writes one frame, waiting at most {@link WRITE_TIMEOUT_MS} for the peer to drain. */
  async write(bytes: Uint8Array): Promise<void> {
    const header = new Uint8Array(FRAME_HEADER_BYTES);
    new DataView(header.buffer).setUint32(0, bytes.length);
    const frame = new Uint8Array(FRAME_HEADER_BYTES + bytes.length);
    frame.set(header);
    frame.set(bytes, FRAME_HEADER_BYTES);
    if (!this.stream.send(frame)) {
      await this.stream.onDrain({ signal: AbortSignal.timeout(WRITE_TIMEOUT_MS) });
    }
  }

  /** Writes one JSON frame. */
  writeJson(v: unknown): Promise<void> {
    return this.write(new TextEncoder().encode(JSON.stringify(v)));
  }

  /** Closes the stream gracefully, or aborts it if that does not finish in time. */
  async close(): Promise<void> {
    try {
      await this.stream.close({ signal: AbortSignal.timeout(WRITE_TIMEOUT_MS) });
    } catch {
      this.stream.abort(new Error("close timed out"));
    }
  }
}
