/**
 * A read-only preopened directory for WASI preview1 jobs, granted with
 * `--dir`. The worker's read permission is scoped to that directory; on
 * top of it every path is resolved here component by component: absolute
 * paths, `..` and symlinks are refused, and an opened file must be the same
 * inode that was checked (TM-10: nothing outside the granted directory is
 * reachable, even through a symlink planted in it; TM-16).
 *
 * Runs inside the job's worker. Private to wasm/.
 *
 * @module
 */

/** Errno values used here (WASI preview1). */
const E = {
  SUCCESS: 0,
  ACCES: 2,
  BADF: 8,
  FAULT: 21,
  INVAL: 28,
  IO: 29,
  ISDIR: 31,
  LOOP: 32,
  MFILE: 33,
  NAMETOOLONG: 37,
  NOENT: 44,
  NOTDIR: 54,
  NOTCAPABLE: 76,
} as const;

/** Most files and directories a job may hold open at once. */
export const MAX_OPEN_FDS = 64;
/**
 * Most iovecs one fd_read or fd_write call may pass: WASI's (and POSIX's)
 * IOV_MAX. More is EINVAL, so one call's host work is bounded (TM-16).
 */
export const MAX_IOVS = 1024;
/** Longest path a job may pass, in bytes. */
export const MAX_PATH_BYTES = 4096;
/** Most entries listed from one directory. */
export const MAX_DIR_ENTRIES = 10_000;

const FILETYPE = { unknown: 0, directory: 3, regular: 4, symlink: 7 } as const;
const RIGHT_FD_READ = 1n << 1n;
const RIGHT_FD_SEEK = 1n << 2n;
const RIGHT_FD_TELL = 1n << 5n;
const RIGHT_FD_READDIR = 1n << 14n;
const RIGHT_PATH_OPEN = 1n << 13n;
const RIGHT_FD_FILESTAT_GET = 1n << 21n;
const RIGHT_PATH_FILESTAT_GET = 1n << 18n;
const FILE_RIGHTS = RIGHT_FD_READ | RIGHT_FD_SEEK | RIGHT_FD_TELL | RIGHT_FD_FILESTAT_GET;
const DIR_RIGHTS = RIGHT_PATH_OPEN | RIGHT_FD_READDIR | RIGHT_FD_FILESTAT_GET |
  RIGHT_PATH_FILESTAT_GET;
/** oflags that would create or truncate: refused on a read-only grant. */
const OFLAGS_WRITE = 1 | 4 | 8;
const OFLAG_DIRECTORY = 2;
/** rights a writer asks for (fd_write, fd_allocate, fd_filestat_set_size, ...). */
const WRITE_RIGHTS = (1n << 6n) | (1n << 8n) | (1n << 22n) | (1n << 4n) | (1n << 0n);
/** fdflags append/dsync/rsync/sync. */
const FDFLAGS_WRITE = 1 | 2 | 8 | 16;

/** The grant: host directory (absolute, canonical) and the name the job sees. */
export interface DirGrant {
  /** The host directory, absolute and canonical (symlinks resolved). */
  readonly hostPath: string;
  /** Where the job sees it (`/data`, `/name/name` or `.`). */
  readonly guestPath: string;
}

type Entry =
  | { kind: "dir"; host: string; ino: number | null }
  | { kind: "file"; host: string; file: Deno.FsFile };

/** Memory access the WASI host gives this module. */
export interface MemoryAccess {
  view(): DataView | undefined;
  inBounds(ptr: number, len: number): boolean;
  buffer(): ArrayBuffer;
}

/** The preopen as fd 3 and the files opened below it. */
export class ReadOnlyDir {
  readonly #fds = new Map<number, Entry>();
  readonly #enc = new TextEncoder();
  readonly #dec = new TextDecoder("utf-8", { fatal: true });

  constructor(readonly grant: DirGrant, readonly mem: MemoryAccess) {
    this.#fds.set(3, { kind: "dir", host: grant.hostPath, ino: null });
  }

  /** True for an fd this object answers for. */
  owns(fd: number): boolean {
    return fd >= 3;
  }

  /** Closes every file the job left open. */
  closeAll(): void {
    for (const e of this.#fds.values()) if (e.kind === "file") e.file.close();
    this.#fds.clear();
  }

  #path(ptr: number, len: number): string | number {
    if (len > MAX_PATH_BYTES) return E.NAMETOOLONG;
    if (!this.mem.inBounds(ptr, len)) return E.FAULT;
    try {
      return this.#dec.decode(new Uint8Array(this.mem.buffer(), ptr, len));
    } catch {
      return E.INVAL;
    }
  }

  /**
   * Resolves `rel` below directory `base` without following symlinks and
   * without leaving `base` (TM-10). Returns the host path and its lstat.
   */
  #resolve(base: string, rel: string): { host: string; info: Deno.FileInfo } | number {
    if (rel.startsWith("/") || rel.includes("\0")) return E.NOTCAPABLE;
    const parts = rel.split("/").filter((p) => p !== "" && p !== ".");
    if (parts.some((p) => p === "..")) return E.NOTCAPABLE;
    let host = base;
    let info: Deno.FileInfo;
    try {
      info = Deno.lstatSync(host);
      for (const p of parts) {
        if (!info.isDirectory) return E.NOTDIR;
        host = `${host}/${p}`;
        info = Deno.lstatSync(host);
        if (info.isSymlink) return E.LOOP;
      }
    } catch (err) {
      return err instanceof Deno.errors.NotFound ? E.NOENT : E.ACCES;
    }
    return { host, info };
  }

  #newFd(entry: Entry): number {
    for (let fd = 4; fd < 4 + MAX_OPEN_FDS; fd++) {
      if (!this.#fds.has(fd)) {
        this.#fds.set(fd, entry);
        return fd;
      }
    }
    return -1;
  }

  prestatGet(fd: number, out: number): number {
    if (fd !== 3) return E.BADF;
    const v = this.mem.view();
    if (!v || !this.mem.inBounds(out, 8)) return E.FAULT;
    v.setUint8(out, 0);
    v.setUint32(out + 4, this.#enc.encode(this.grant.guestPath).length, true);
    return E.SUCCESS;
  }

  prestatDirName(fd: number, ptr: number, len: number): number {
    if (fd !== 3) return E.BADF;
    const name = this.#enc.encode(this.grant.guestPath);
    if (len < name.length) return E.INVAL;
    if (!this.mem.inBounds(ptr, name.length)) return E.FAULT;
    new Uint8Array(this.mem.buffer(), ptr, name.length).set(name);
    return E.SUCCESS;
  }

  pathOpen(
    dirfd: number,
    _dirflags: number,
    pathPtr: number,
    pathLen: number,
    oflags: number,
    rightsBase: bigint,
    _rightsInheriting: bigint,
    fdflags: number,
    fdOut: number,
  ): number {
    const dir = this.#fds.get(dirfd);
    if (!dir) return E.BADF;
    if (dir.kind !== "dir") return E.NOTDIR;
    if ((oflags & OFLAGS_WRITE) !== 0 || (fdflags & FDFLAGS_WRITE) !== 0) return E.NOTCAPABLE;
    if ((BigInt.asUintN(64, rightsBase) & WRITE_RIGHTS) !== 0n) return E.NOTCAPABLE;
    const rel = this.#path(pathPtr, pathLen);
    if (typeof rel === "number") return rel;
    const r = this.#resolve(dir.host, rel);
    if (typeof r === "number") return r;
    const v = this.mem.view();
    if (!v || !this.mem.inBounds(fdOut, 4)) return E.FAULT;
    let entry: Entry;
    if (r.info.isDirectory) {
      entry = { kind: "dir", host: r.host, ino: r.info.ino };
    } else {
      if ((oflags & OFLAG_DIRECTORY) !== 0) return E.NOTDIR;
      if (!r.info.isFile) return E.ACCES;
      let file: Deno.FsFile;
      try {
        file = Deno.openSync(r.host, { read: true });
      } catch (err) {
        return err instanceof Deno.errors.NotFound ? E.NOENT : E.ACCES;
      }
      // The path may have been swapped for a symlink since lstat: same inode or nothing.
      const opened = file.statSync();
      if (opened.ino !== r.info.ino || opened.dev !== r.info.dev || !opened.isFile) {
        file.close();
        return E.LOOP;
      }
      entry = { kind: "file", host: r.host, file };
    }
    const fd = this.#newFd(entry);
    if (fd < 0) {
      if (entry.kind === "file") entry.file.close();
      return E.MFILE;
    }
    v.setUint32(fdOut, fd, true);
    return E.SUCCESS;
  }

  read(fd: number, iovs: number, iovsLen: number, nread: number): number {
    const e = this.#fds.get(fd);
    if (!e) return E.BADF;
    if (e.kind !== "file") return E.ISDIR;
    if (iovsLen > MAX_IOVS) return E.INVAL; // TM-16: one call's work is bounded
    const v = this.mem.view();
    if (!v || !this.mem.inBounds(iovs, 8 * iovsLen) || !this.mem.inBounds(nread, 4)) return E.FAULT;
    let total = 0;
    try {
      for (let i = 0; i < iovsLen; i++) {
        const ptr = v.getUint32(iovs + 8 * i, true);
        const len = v.getUint32(iovs + 8 * i + 4, true);
        if (!this.mem.inBounds(ptr, len)) return E.FAULT;
        const n = e.file.readSync(new Uint8Array(this.mem.buffer(), ptr, len)) ?? 0;
        total += n;
        if (n < len) break;
      }
    } catch {
      return E.IO;
    }
    v.setUint32(nread, total, true);
    return E.SUCCESS;
  }

  seek(fd: number, offset: bigint, whence: number, out: number): number {
    const e = this.#fds.get(fd);
    if (!e) return E.BADF;
    if (e.kind !== "file") return E.ISDIR;
    const v = this.mem.view();
    if (!v || !this.mem.inBounds(out, 8)) return E.FAULT;
    const mode = [Deno.SeekMode.Start, Deno.SeekMode.Current, Deno.SeekMode.End][whence];
    if (mode === undefined) return E.INVAL;
    try {
      const pos = e.file.seekSync(BigInt.asIntN(64, offset), mode);
      v.setBigUint64(out, BigInt(pos), true);
    } catch {
      return E.INVAL;
    }
    return E.SUCCESS;
  }

  close(fd: number): number {
    const e = this.#fds.get(fd);
    if (!e || fd === 3) return E.BADF;
    if (e.kind === "file") e.file.close();
    this.#fds.delete(fd);
    return E.SUCCESS;
  }

  fdstat(fd: number, out: number): number {
    const e = this.#fds.get(fd);
    if (!e) return E.BADF;
    const v = this.mem.view();
    if (!v || !this.mem.inBounds(out, 24)) return E.FAULT;
    v.setUint8(out, e.kind === "dir" ? FILETYPE.directory : FILETYPE.regular);
    v.setUint16(out + 2, 0, true);
    v.setBigUint64(out + 8, e.kind === "dir" ? DIR_RIGHTS : FILE_RIGHTS, true);
    v.setBigUint64(out + 16, e.kind === "dir" ? DIR_RIGHTS | FILE_RIGHTS : 0n, true);
    return E.SUCCESS;
  }

  #writeFilestat(info: Deno.FileInfo, out: number): number {
    const v = this.mem.view();
    if (!v || !this.mem.inBounds(out, 64)) return E.FAULT;
    const ns = (d: Date | null) => d ? BigInt(d.getTime()) * 1_000_000n : 0n;
    v.setBigUint64(out, BigInt(info.dev ?? 0), true);
    v.setBigUint64(out + 8, BigInt(info.ino ?? 0), true);
    v.setUint8(
      out + 16,
      info.isDirectory ? FILETYPE.directory : info.isFile ? FILETYPE.regular : FILETYPE.unknown,
    );
    v.setBigUint64(out + 24, BigInt(info.nlink ?? 1), true);
    v.setBigUint64(out + 32, BigInt(info.size), true);
    v.setBigUint64(out + 40, ns(info.atime), true);
    v.setBigUint64(out + 48, ns(info.mtime), true);
    v.setBigUint64(out + 56, ns(info.birthtime ?? info.mtime), true);
    return E.SUCCESS;
  }

  filestat(fd: number, out: number): number {
    const e = this.#fds.get(fd);
    if (!e) return E.BADF;
    try {
      return this.#writeFilestat(
        e.kind === "file" ? e.file.statSync() : Deno.lstatSync(e.host),
        out,
      );
    } catch {
      return E.IO;
    }
  }

  pathFilestat(
    dirfd: number,
    _flags: number,
    pathPtr: number,
    pathLen: number,
    out: number,
  ): number {
    const dir = this.#fds.get(dirfd);
    if (!dir) return E.BADF;
    if (dir.kind !== "dir") return E.NOTDIR;
    const rel = this.#path(pathPtr, pathLen);
    if (typeof rel === "number") return rel;
    const r = this.#resolve(dir.host, rel);
    if (typeof r === "number") return r;
    return this.#writeFilestat(r.info, out);
  }

  readdir(fd: number, buf: number, bufLen: number, cookie: bigint, bufused: number): number {
    const e = this.#fds.get(fd);
    if (!e) return E.BADF;
    if (e.kind !== "dir") return E.NOTDIR;
    const v = this.mem.view();
    if (!v || !this.mem.inBounds(buf, bufLen) || !this.mem.inBounds(bufused, 4)) return E.FAULT;
    const names: { name: string; type: number }[] = [];
    try {
      for (const d of Deno.readDirSync(e.host)) {
        if (names.length >= MAX_DIR_ENTRIES) break;
        names.push({
          name: d.name,
          type: d.isDirectory
            ? FILETYPE.directory
            : d.isFile
            ? FILETYPE.regular
            : d.isSymlink
            ? FILETYPE.symlink
            : 0,
        });
      }
    } catch {
      return E.IO;
    }
    names.sort((a, b) => a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
    // An entry is a 24-byte header and the name; the last may be cut at bufLen (preview1 allows it).
    const bytes: number[] = [];
    for (let i = Number(cookie); i < names.length && bytes.length < bufLen; i++) {
      const name = this.#enc.encode(names[i].name);
      const head = new DataView(new ArrayBuffer(24));
      head.setBigUint64(0, BigInt(i + 1), true);
      head.setBigUint64(8, 0n, true);
      head.setUint32(16, name.length, true);
      head.setUint8(20, names[i].type);
      bytes.push(...new Uint8Array(head.buffer), ...name);
    }
    const n = Math.min(bytes.length, bufLen);
    new Uint8Array(this.mem.buffer(), buf, n).set(bytes.slice(0, n));
    v.setUint32(bufused, n, true);
    return E.SUCCESS;
  }
}
