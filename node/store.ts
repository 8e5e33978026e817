/**
 * The content-addressed module store: modules by `sha256:<hex>`, checked
 * when stored and again when read from disk, so a node never runs bytes
 * that do not hash to the offered digest (TM-22), even if its disk was
 * altered.
 *
 * @module
 */
import { readFileCapped, writeFileAtomic } from "../core/mod.ts";
import { MAX_MODULE_BYTES } from "../wasm/mod.ts";
import { sha256 } from "./protocol.ts";

/** Modules kept in memory (most recently used). */
export const MAX_CACHED_MODULES = 64;
/** Bytes of modules kept in memory. */
export const MAX_CACHED_MODULE_BYTES = 64 * 1024 * 1024;
/** Modules kept on disk; the oldest are removed beyond it. */
export const MAX_STORED_MODULES = 256;

const DIGEST_RE = /^sha256:([0-9a-f]{64})$/;

/** Modules by digest, in memory and (with a directory) on disk. */
export class ModuleStore {
  readonly #dir: string | undefined;
  readonly #mem = new Map<string, Uint8Array>();
  #memBytes = 0;

  /** A store in `dir` (created on first put), or memory only. */
  constructor(dir?: string) {
    this.#dir = dir;
  }

  #path(digest: string): string | undefined {
    const m = DIGEST_RE.exec(digest);
    return m && this.#dir ? `${this.#dir}/${m[1]}` : undefined;
  }

  #remember(digest: string, bytes: Uint8Array): void {
    if (bytes.length > MAX_CACHED_MODULE_BYTES) return;
    this.#mem.delete(digest);
    this.#mem.set(digest, bytes);
    this.#memBytes += bytes.length;
    while (this.#mem.size > MAX_CACHED_MODULES || this.#memBytes > MAX_CACHED_MODULE_BYTES) {
      const [k, v] = this.#mem.entries().next().value!;
      this.#mem.delete(k);
      this.#memBytes -= v.length;
    }
  }

  /** The module with `digest`, verified, or undefined. */
  async get(digest: string): Promise<Uint8Array | undefined> {
    const hit = this.#mem.get(digest);
    if (hit) {
      this.#mem.delete(digest);
      this.#mem.set(digest, hit);
      return hit;
    }
    const path = this.#path(digest);
    if (!path) return undefined;
    let bytes: Uint8Array;
    try {
      bytes = await readFileCapped(path, MAX_MODULE_BYTES);
    } catch {
      return undefined;
    }
    // TM-22: a stored file that no longer hashes to its name is dropped, never run.
    if (sha256(bytes) !== digest) {
      await Deno.remove(path).catch(() => {});
      return undefined;
    }
    this.#remember(digest, bytes);
    return bytes;
  }

  /** Stores `bytes` under `digest`; false (nothing stored) when they do not hash to it. */
  async put(digest: string, bytes: Uint8Array): Promise<boolean> {
    if (sha256(bytes) !== digest) return false;
    this.#remember(digest, bytes);
    const path = this.#path(digest);
    if (!path) return true;
    try {
      await Deno.mkdir(this.#dir!, { recursive: true, mode: 0o700 });
      await writeFileAtomic(path, bytes, { mode: 0o600 });
      await this.#prune();
    } catch { /* memory still holds it; the disk copy is an optimisation */ }
    return true;
  }

  async #prune(): Promise<void> {
    const files: { name: string; mtime: number }[] = [];
    for await (const e of Deno.readDir(this.#dir!)) {
      if (!e.isFile || !/^[0-9a-f]{64}$/.test(e.name)) continue;
      const st = await Deno.stat(`${this.#dir}/${e.name}`);
      files.push({ name: e.name, mtime: st.mtime?.getTime() ?? 0 });
    }
    if (files.length <= MAX_STORED_MODULES) return;
    files.sort((a, b) => a.mtime - b.mtime);
    for (const f of files.slice(0, files.length - MAX_STORED_MODULES)) {
      await Deno.remove(`${this.#dir}/${f.name}`).catch(() => {});
    }
  }
}
