/**
 * A WASI preview1 subset for untrusted jobs: args, stdin/stdout/stderr,
 * clocks (with poll_oneoff on clocks and the standard streams, so sleep
 * works), random, exit. There is no preopened directory unless one was
 * granted (`--dir`, read-only, {@link ./_wasi_fs.ts}), so by default a job
 * sees no filesystem; filesystem and socket calls link (compilers import
 * them even when unused, as under wasmtime) and return ENOTCAPABLE or EBADF. Any import
 * outside `wasi_snapshot_preview1`, or a name that is not in preview1, is
 * refused before the job starts (TM-16).
 *
 * Runs inside the job's worker. Private to wasm/.
 *
 * @module
 */
import { type DirGrant, MAX_IOVS, ReadOnlyDir } from "./_wasi_fs.ts";

export { MAX_IOVS };

/** The only import module a core job may use. */
export const WASI_MODULE = "wasi_snapshot_preview1";

const ERRNO = {
  SUCCESS: 0,
  BADF: 8,
  FAULT: 21,
  INVAL: 28,
  NOSYS: 52,
  SPIPE: 70,
  NOTCAPABLE: 76,
} as const;

/** Preview1 calls that need a capability no job is granted here. */
const DENIED_CALLS = [
  "fd_advise",
  "fd_allocate",
  "fd_datasync",
  "fd_filestat_set_size",
  "fd_filestat_set_times",
  "fd_pread",
  "fd_pwrite",
  "fd_readdir",
  "fd_renumber",
  "fd_sync",
  "fd_tell",
  "fd_fdstat_set_flags",
  "fd_fdstat_set_rights",
  "path_create_directory",
  "path_filestat_get",
  "path_filestat_set_times",
  "path_link",
  "path_open",
  "path_readlink",
  "path_remove_directory",
  "path_rename",
  "path_symlink",
  "path_unlink_file",
  "proc_raise",
  "sock_accept",
  "sock_recv",
  "sock_send",
  "sock_shutdown",
] as const;

/** Thrown by `proc_exit`: unwinds the job with its exit status. */
export class WasiExit extends Error {
  constructor(readonly code: number) {
    super(`exit ${code}`);
    this.name = "WasiExit";
  }
}

/** Thrown when a job writes more than its output cap (TM-16). */
export class OutputLimit extends Error {
  constructor(readonly fd: number, readonly cap: number, readonly ops?: number) {
    const stream = fd === 1 ? "stdout" : "stderr";
    super(
      ops === undefined
        ? `the job wrote more than ${cap} bytes to ${stream}`
        : `the job made more than ${ops} write calls and iovecs on ${stream} (cap ${cap} bytes)`,
    );
    this.name = "OutputLimit";
  }
}

/** What a job is given. */
export interface WasiOptions {
  readonly args: readonly string[];
  readonly stdin: Uint8Array;
  readonly stdoutCap: number;
  readonly stderrCap: number;
  /** A directory granted read-only as fd 3; none by default. */
  readonly dir?: DirGrant;
  /**
   * Called once, at the job's first terminal event (`proc_exit`, or a write
   * past an output cap), before the job can catch it: the worker reports
   * then, and the host stops the job (TM-16, TM-17: nothing the job does
   * afterwards can change its outcome).
   */
  readonly onTerminal?: (event: TerminalEvent) => void;
}

/** The first thing that ended a job from the host's side. */
export type TerminalEvent =
  | { readonly kind: "exit"; readonly code: number }
  | { readonly kind: "output"; readonly error: OutputLimit };

/**
 * Write operations (one per fd_write call plus one per iovec, empty ones
 * included) a stream allows per byte of its cap, on top of
 * {@link WRITE_OPS_SLACK}. A job writing its whole cap one byte per call
 * uses 2 per byte; a flood of empty writes, which adds no output, runs out
 * here instead of only at the timeout (TM-16).
 */
export const WRITE_OPS_PER_BYTE = 2;
/** Write operations every stream allows whatever its cap (a job with a 0-byte cap may still try). */
export const WRITE_OPS_SLACK = 65_536;

class Sink {
  /**
   * One contiguous buffer, grown by doubling up to the cap: the host keeps
   * at most `cap` bytes per stream, however many writes made them (an
   * object per write let a flood of empty iovecs grow the heap without
   * bound, TM-16).
   */
  #buf = new Uint8Array(0);
  size = 0;
  /** Write operations so far (calls and iovecs). */
  ops = 0;
  readonly maxOps: number;
  /** Set once the job tried to write past the cap, even if it caught the error. */
  overflow: OutputLimit | undefined;
  constructor(
    readonly fd: number,
    readonly cap: number,
    readonly onOverflow: (e: OutputLimit) => void,
  ) {
    this.maxOps = cap * WRITE_OPS_PER_BYTE + WRITE_OPS_SLACK;
  }
  #overflow(e: OutputLimit): never {
    this.overflow = e;
    this.onOverflow(e);
    throw e;
  }
  /** Counts `n` write operations against the budget; throws past it. */
  charge(n: number): void {
    if (this.overflow) throw this.overflow;
    this.ops += n;
    if (this.ops > this.maxOps) {
      this.#overflow(new OutputLimit(this.fd, this.cap, this.maxOps));
    }
  }
  push(bytes: Uint8Array): void {
    if (this.overflow) throw this.overflow;
    const room = this.cap - this.size;
    const take = Math.min(bytes.length, room);
    if (take > 0) {
      if (this.size + take > this.#buf.length) {
        const grown = new Uint8Array(
          Math.min(this.cap, Math.max(this.size + take, this.#buf.length * 2, 4096)),
        );
        grown.set(this.#buf.subarray(0, this.size));
        this.#buf = grown;
      }
      this.#buf.set(bytes.subarray(0, take), this.size);
      this.size += take;
    }
    if (bytes.length > room) {
      this.#overflow(new OutputLimit(this.fd, this.cap));
    }
  }
  bytes(): Uint8Array {
    return this.#buf.slice(0, this.size);
  }
}

let IMPORTABLE: Set<string> | undefined;

/** The preview1 host of one job. */
export class Wasi {
  memory: WebAssembly.Memory | undefined;
  readonly stdout: Sink;
  readonly stderr: Sink;
  #stdinOffset = 0;
  readonly #argBytes: Uint8Array[];
  readonly #enc = new TextEncoder();

  constructor(readonly options: WasiOptions) {
    const output = (error: OutputLimit) => this.#terminal({ kind: "output", error });
    this.stdout = new Sink(1, options.stdoutCap, output);
    this.stderr = new Sink(2, options.stderrCap, output);
    this.#argBytes = options.args.map((a) => this.#enc.encode(a + "\0"));
  }

  /** Names a job may import from {@link WASI_MODULE}. */
  static importable(name: string): boolean {
    IMPORTABLE ??= new Set(
      Object.keys(
        new Wasi({ args: [], stdin: new Uint8Array(0), stdoutCap: 0, stderrCap: 0 }).imports(),
      ),
    );
    return IMPORTABLE.has(name);
  }

  #view(): DataView | undefined {
    return this.memory ? new DataView(this.memory.buffer) : undefined;
  }

  #inBounds(ptr: number, len: number): boolean {
    const size = this.memory?.buffer.byteLength ?? 0;
    return ptr >= 0 && len >= 0 && ptr + len <= size;
  }

  /** The import object for {@link WASI_MODULE}. */
  imports(): Record<string, (...args: never[]) => number | void> {
    const fns: Record<string, (...args: never[]) => number | void> = {
      args_sizes_get: (argc: number, bufSize: number) => {
        const v = this.#view();
        if (!v || !this.#inBounds(argc, 4) || !this.#inBounds(bufSize, 4)) return ERRNO.FAULT;
        v.setUint32(argc, this.#argBytes.length, true);
        v.setUint32(bufSize, this.#argBytes.reduce((n, a) => n + a.length, 0), true);
        return ERRNO.SUCCESS;
      },
      args_get: (argv: number, buf: number) => {
        const v = this.#view();
        const total = this.#argBytes.reduce((n, a) => n + a.length, 0);
        if (!v || !this.#inBounds(argv, 4 * this.#argBytes.length) || !this.#inBounds(buf, total)) {
          return ERRNO.FAULT;
        }
        let off = buf;
        this.#argBytes.forEach((a, i) => {
          v.setUint32(argv + 4 * i, off, true);
          new Uint8Array(this.memory!.buffer, off, a.length).set(a);
          off += a.length;
        });
        return ERRNO.SUCCESS;
      },
      environ_sizes_get: (count: number, size: number) => {
        const v = this.#view();
        if (!v || !this.#inBounds(count, 4) || !this.#inBounds(size, 4)) return ERRNO.FAULT;
        v.setUint32(count, 0, true);
        v.setUint32(size, 0, true);
        return ERRNO.SUCCESS;
      },
      environ_get: () => ERRNO.SUCCESS,
      clock_res_get: (id: number, out: number) => {
        const v = this.#view();
        if (id < 0 || id > 3) return ERRNO.INVAL;
        if (!v || !this.#inBounds(out, 8)) return ERRNO.FAULT;
        v.setBigUint64(out, 1000n, true);
        return ERRNO.SUCCESS;
      },
      clock_time_get: (id: number, _precision: bigint, out: number) => {
        const v = this.#view();
        if (id < 0 || id > 3) return ERRNO.INVAL;
        if (!v || !this.#inBounds(out, 8)) return ERRNO.FAULT;
        const ns = id === 0
          ? BigInt(Date.now()) * 1_000_000n
          : BigInt(Math.round(performance.now() * 1e6));
        v.setBigUint64(out, ns, true);
        return ERRNO.SUCCESS;
      },
      random_get: (buf: number, len: number) => {
        if (!this.#inBounds(buf, len)) return ERRNO.FAULT;
        // getRandomValues fills at most 65536 bytes per call.
        for (let off = 0; off < len; off += 65536) {
          crypto.getRandomValues(
            new Uint8Array(this.memory!.buffer, buf + off, Math.min(65536, len - off)),
          );
        }
        return ERRNO.SUCCESS;
      },
      fd_read: (fd: number, iovs: number, iovsLen: number, nread: number) => {
        if (fd !== 0) return ERRNO.BADF;
        if (iovsLen > MAX_IOVS) return ERRNO.INVAL;
        const v = this.#view();
        if (!v || !this.#inBounds(iovs, 8 * iovsLen) || !this.#inBounds(nread, 4)) {
          return ERRNO.FAULT;
        }
        let total = 0;
        for (let i = 0; i < iovsLen; i++) {
          const ptr = v.getUint32(iovs + 8 * i, true);
          const len = v.getUint32(iovs + 8 * i + 4, true);
          if (!this.#inBounds(ptr, len)) return ERRNO.FAULT;
          const chunk = this.options.stdin.subarray(this.#stdinOffset, this.#stdinOffset + len);
          new Uint8Array(this.memory!.buffer, ptr, chunk.length).set(chunk);
          this.#stdinOffset += chunk.length;
          total += chunk.length;
          if (chunk.length < len) break;
        }
        v.setUint32(nread, total, true);
        return ERRNO.SUCCESS;
      },
      fd_write: (fd: number, iovs: number, iovsLen: number, nwritten: number) => {
        if (fd !== 1 && fd !== 2) return ERRNO.BADF;
        const sink = fd === 1 ? this.stdout : this.stderr;
        // TM-16: every call and every iovec costs, even when it adds no byte.
        sink.charge(1);
        if (iovsLen > MAX_IOVS) return ERRNO.INVAL;
        sink.charge(iovsLen);
        const v = this.#view();
        if (!v || !this.#inBounds(iovs, 8 * iovsLen) || !this.#inBounds(nwritten, 4)) {
          return ERRNO.FAULT;
        }
        let total = 0;
        for (let i = 0; i < iovsLen; i++) {
          const ptr = v.getUint32(iovs + 8 * i, true);
          const len = v.getUint32(iovs + 8 * i + 4, true);
          if (!this.#inBounds(ptr, len)) return ERRNO.FAULT;
          sink.push(new Uint8Array(this.memory!.buffer, ptr, len));
          total += len;
        }
        v.setUint32(nwritten, total, true);
        return ERRNO.SUCCESS;
      },
      fd_close: (fd: number) => fd >= 0 && fd <= 2 ? ERRNO.SUCCESS : ERRNO.BADF,
      fd_fdstat_get: (fd: number, out: number) => {
        if (fd < 0 || fd > 2) return ERRNO.BADF;
        const v = this.#view();
        if (!v || !this.#inBounds(out, 24)) return ERRNO.FAULT;
        v.setUint8(out, 2); // character device
        v.setUint16(out + 2, 0, true);
        v.setBigUint64(out + 8, fd === 0 ? 1n << 1n : 1n << 6n, true); // fd_read | fd_write
        v.setBigUint64(out + 16, 0n, true);
        return ERRNO.SUCCESS;
      },
      fd_filestat_get: (fd: number, out: number) => {
        if (fd < 0 || fd > 2) return ERRNO.BADF;
        if (!this.#inBounds(out, 64)) return ERRNO.FAULT;
        new Uint8Array(this.memory!.buffer, out, 64).fill(0);
        this.#view()!.setUint8(out + 16, 2);
        return ERRNO.SUCCESS;
      },
      fd_seek: (fd: number) => fd >= 0 && fd <= 2 ? ERRNO.SPIPE : ERRNO.BADF,
      // No preopened directory: libc concludes there is no filesystem.
      fd_prestat_get: () => ERRNO.BADF,
      fd_prestat_dir_name: () => ERRNO.BADF,
      proc_exit: (code: number) => {
        if (this.exited === undefined) {
          this.exited = code >>> 0;
          this.#terminal({ kind: "exit", code: this.exited });
        }
        throw new WasiExit(this.exited);
      },
      sched_yield: () => ERRNO.SUCCESS,
      poll_oneoff: (inPtr: number, outPtr: number, n: number, nevents: number) =>
        this.#poll(inPtr, outPtr, n, nevents),
    };
    for (const name of DENIED_CALLS) fns[name] = () => ERRNO.NOTCAPABLE;
    if (this.options.dir) this.#grantDir(fns, this.options.dir);
    // A job can catch the exceptions proc_exit and the output cap throw
    // (exception handling's catch_all); once it has exited, every call
    // throws again, so an exited job cannot act any more.
    for (const [name, fn] of Object.entries(fns)) {
      fns[name] = (...args: never[]) => {
        if (this.exited !== undefined) throw new WasiExit(this.exited);
        return fn(...args);
      };
    }
    return fns;
  }

  /**
   * poll_oneoff for clocks and the standard streams: stdin is always
   * readable (its bytes are all there), stdout/stderr always writable, and
   * a clock subscription sleeps (Atomics.wait in the worker) until the
   * earliest deadline; the job's wall-clock timeout still ends it.
   */
  #poll(inPtr: number, outPtr: number, n: number, nevents: number): number {
    const v = this.#view();
    if (n === 0) return ERRNO.INVAL;
    if (
      !v || !this.#inBounds(inPtr, 48 * n) || !this.#inBounds(outPtr, 32 * n) ||
      !this.#inBounds(nevents, 4)
    ) {
      return ERRNO.FAULT;
    }
    const nowNs = () => BigInt(Math.round(performance.now() * 1e6));
    const wallNs = () => BigInt(Date.now()) * 1_000_000n;
    const events: { userdata: bigint; error: number; type: number; nbytes: bigint }[] = [];
    const clocks: { userdata: bigint; deadline: bigint; realtime: boolean }[] = [];
    for (let i = 0; i < n; i++) {
      const at = inPtr + 48 * i;
      const userdata = v.getBigUint64(at, true);
      const tag = v.getUint8(at + 8);
      if (tag === 0) {
        const id = v.getUint32(at + 16, true);
        const timeout = v.getBigUint64(at + 24, true);
        const abs = (v.getUint16(at + 40, true) & 1) === 1;
        if (id > 3) {
          events.push({ userdata, error: ERRNO.INVAL, type: 0, nbytes: 0n });
          continue;
        }
        const realtime = id === 0;
        const now = realtime ? wallNs() : nowNs();
        const deadline = abs ? timeout : now + timeout;
        clocks.push({ userdata, deadline, realtime });
      } else if (tag === 1 || tag === 2) {
        const fd = v.getUint32(at + 16, true);
        const ok = (tag === 1 && fd === 0) || (tag === 2 && (fd === 1 || fd === 2));
        const left = BigInt(this.options.stdin.length - this.#stdinOffset);
        events.push({
          userdata,
          error: ok ? ERRNO.SUCCESS : ERRNO.BADF,
          type: tag,
          nbytes: tag === 1 ? left : 0n,
        });
      } else {
        return ERRNO.INVAL;
      }
    }
    // Sleep until the earliest clock fires (re-checked: a wait may end early).
    const sleeper = new Int32Array(new SharedArrayBuffer(4));
    while (events.length === 0 && clocks.length > 0) {
      let waitNs = -1n;
      for (const c of clocks) {
        const left = c.deadline - (c.realtime ? wallNs() : nowNs());
        if (left <= 0n) {
          events.push({ userdata: c.userdata, error: ERRNO.SUCCESS, type: 0, nbytes: 0n });
        } else if (waitNs < 0n || left < waitNs) waitNs = left;
      }
      if (events.length === 0) Atomics.wait(sleeper, 0, 0, Number(waitNs / 1_000_000n) + 1);
    }
    events.forEach((e, i) => {
      const at = outPtr + 32 * i;
      new Uint8Array(this.memory!.buffer, at, 32).fill(0);
      v.setBigUint64(at, e.userdata, true);
      v.setUint16(at + 8, e.error, true);
      v.setUint8(at + 10, e.type);
      v.setBigUint64(at + 16, e.nbytes, true);
    });
    v.setUint32(nevents, events.length, true);
    return ERRNO.SUCCESS;
  }

  /** The status of the job's first `proc_exit`, if it called it. */
  exited: number | undefined;

  /** The job's first terminal event, if any (TM-17: the outcome is this one). */
  first: TerminalEvent | undefined;

  #terminal(event: TerminalEvent): void {
    if (this.first) return;
    this.first = event;
    this.options.onTerminal?.(event);
  }

  /** The granted directory, once imports() made it. */
  dir: ReadOnlyDir | undefined;

  #grantDir(fns: Record<string, (...args: never[]) => number | void>, grant: DirGrant): void {
    const dir = new ReadOnlyDir(grant, {
      view: () => this.#view(),
      inBounds: (p, l) => this.#inBounds(p, l),
      buffer: () => this.memory!.buffer as ArrayBuffer,
    });
    this.dir = dir;
    const std = { ...fns } as Record<string, (...args: number[]) => number>;
    const own = (fd: number) => fd >= 3;
    Object.assign(fns, {
      fd_prestat_get: (fd: number, out: number) => dir.prestatGet(fd, out),
      fd_prestat_dir_name: (fd: number, p: number, l: number) => dir.prestatDirName(fd, p, l),
      path_open: (
        d: number,
        df: number,
        p: number,
        l: number,
        of: number,
        rb: bigint,
        ri: bigint,
        ff: number,
        out: number,
      ) => dir.pathOpen(d, df, p, l, of, rb, ri, ff, out),
      path_filestat_get: (d: number, f: number, p: number, l: number, out: number) =>
        dir.pathFilestat(d, f, p, l, out),
      fd_readdir: (fd: number, b: number, l: number, c: bigint, u: number) =>
        dir.readdir(fd, b, l, c, u),
      fd_read: (fd: number, i: number, n: number, r: number) =>
        own(fd) ? dir.read(fd, i, n, r) : std.fd_read(fd, i, n, r),
      fd_seek: (fd: number, off: bigint, w: number, out: number) =>
        own(fd) ? dir.seek(fd, off, w, out) : std.fd_seek(fd),
      fd_tell: (fd: number, out: number) => own(fd) ? dir.seek(fd, 0n, 1, out) : ERRNO.SPIPE,
      fd_close: (fd: number) => own(fd) ? dir.close(fd) : std.fd_close(fd),
      fd_fdstat_get: (fd: number, out: number) =>
        own(fd) ? dir.fdstat(fd, out) : std.fd_fdstat_get(fd, out),
      fd_filestat_get: (fd: number, out: number) =>
        own(fd) ? dir.filestat(fd, out) : std.fd_filestat_get(fd, out),
    });
  }
}
