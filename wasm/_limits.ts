/**
 * Memory caps for untrusted core modules (TM-16). A module that defines its
 * own memory could declare no maximum and grow until the host runs out; this
 * turns that memory into an import the worker fills with a
 * `WebAssembly.Memory` whose `maximum` is the job's cap, so `memory.grow`
 * past the cap fails inside the job. Runs inside the job's worker: the host
 * never parses untrusted module bytes.
 *
 * Private to wasm/ and imported only by the worker: no imports of its own.
 *
 * @module
 */

/** Bytes in a WebAssembly page. */
export const PAGE_BYTES = 65536;

const MAGIC = [0x00, 0x61, 0x73, 0x6d];
const CORE_VERSION = [0x01, 0x00, 0x00, 0x00];
/** Section ids this file needs. */
const TYPE_SECTION = 1;
const IMPORT_SECTION = 2;
const TABLE_SECTION = 4;
const MEMORY_SECTION = 5;

/** Why a module was refused before it ran. */
export class ModuleLimitError extends Error {
  constructor(message: string, readonly kind: "invalid_module" | "memory") {
    super(message);
    this.name = "ModuleLimitError";
  }
}

/** True when `bytes` carry the component-model layer, not a core module. */
export function isComponentBinary(bytes: Uint8Array): boolean {
  return bytes.length >= 8 && MAGIC.every((b, i) => bytes[i] === b) &&
    bytes[4] === 0x0d && bytes[5] === 0x00 && bytes[6] === 0x01 && bytes[7] === 0x00;
}

function readU32(bytes: Uint8Array, at: number): [number, number] {
  let result = 0;
  let shift = 0;
  for (let i = 0; i < 5; i++) {
    if (at + i >= bytes.length) throw new ModuleLimitError("truncated LEB128", "invalid_module");
    const b = bytes[at + i];
    result += (b & 0x7f) * 2 ** shift;
    if ((b & 0x80) === 0) {
      if (result > 0xffffffff) throw new ModuleLimitError("LEB128 above u32", "invalid_module");
      return [result, at + i + 1];
    }
    shift += 7;
  }
  throw new ModuleLimitError("LEB128 longer than 5 bytes", "invalid_module");
}

function writeU32(value: number): number[] {
  const out: number[] = [];
  do {
    let b = value & 0x7f;
    value = Math.floor(value / 128);
    if (value !== 0) b |= 0x80;
    out.push(b);
  } while (value !== 0);
  return out;
}

/** Import module and name under which a job's memory is given to it. */
export const MEMORY_IMPORT = { module: "phase:host", name: "memory" } as const;

/** A core module rewritten so that its memory is a host `WebAssembly.Memory`. */
export interface CappedModule {
  readonly bytes: Uint8Array;
  /** Limits of the memory to create and pass as {@link MEMORY_IMPORT}; none when the module has no memory. */
  readonly memory: { readonly initial: number; readonly maximum: number } | undefined;
}

function encodeName(name: string): number[] {
  const b = new TextEncoder().encode(name);
  return [...writeU32(b.length), ...b];
}

function section(id: number, body: readonly number[] | Uint8Array): number[] {
  return [id, ...writeU32(body.length), ...body];
}

/**
 * Refuses GC types, clamps tables (see {@link MAX_TABLE_ENTRIES}), and
 * rewrites a core module so that its one defined memory becomes an import
 * ({@link MEMORY_IMPORT}) that the worker satisfies with a
 * `WebAssembly.Memory` whose `maximum` is at most `maxPages`: the module's
 * own declared maximum is never trusted, and the host can see the memory
 * even when the module does not export it. Throws {@link ModuleLimitError}:
 * `memory` when the memory's minimum is above the cap, `invalid_module` for
 * a malformed header or section, shared or 64-bit memories, or more than
 * one memory.
 */
export function capMemory(bytes: Uint8Array, maxPages: number): CappedModule {
  if (bytes.length < 8 || !MAGIC.every((b, i) => bytes[i] === b)) {
    throw new ModuleLimitError("not a WebAssembly binary (bad magic)", "invalid_module");
  }
  if (!CORE_VERSION.every((b, i) => bytes[4 + i] === b)) {
    throw new ModuleLimitError(
      isComponentBinary(bytes)
        ? "this is a WebAssembly component, not a core module"
        : "unsupported WebAssembly binary version",
      "invalid_module",
    );
  }
  const sections: { id: number; body: Uint8Array }[] = [];
  let at = 8;
  while (at < bytes.length) {
    const id = bytes[at];
    const [size, body] = readU32(bytes, at + 1);
    const end = body + size;
    if (end > bytes.length) {
      throw new ModuleLimitError("section runs past the end", "invalid_module");
    }
    sections.push({ id, body: bytes.subarray(body, end) });
    at = end;
  }
  const typeSection = sections.find((s) => s.id === TYPE_SECTION);
  if (typeSection) checkTypes(typeSection.body);
  const tableSection = sections.find((s) => s.id === TABLE_SECTION);
  const tables = tableSection ? capTables(tableSection.body) : undefined;
  const memSection = sections.find((s) => s.id === MEMORY_SECTION);
  const limits = memSection ? memoryLimits(memSection.body, maxPages) : undefined;
  if (!limits && !tables) return { bytes, memory: undefined };
  if (!limits) {
    const out: number[] = [...MAGIC, ...CORE_VERSION];
    for (const s of sections) out.push(...section(s.id, s.id === TABLE_SECTION ? tables! : s.body));
    return { bytes: new Uint8Array(out), memory: undefined };
  }
  const entry = [
    ...encodeName(MEMORY_IMPORT.module),
    ...encodeName(MEMORY_IMPORT.name),
    0x02,
    0x01,
    ...writeU32(limits.initial),
    ...writeU32(limits.maximum),
  ];
  const out: number[] = [...MAGIC, ...CORE_VERSION];
  let imported = false;
  for (const s of sections) {
    if (s.id === MEMORY_SECTION) continue;
    if (s.id === TABLE_SECTION && tables) {
      out.push(...section(s.id, tables));
      continue;
    }
    if (s.id === IMPORT_SECTION) {
      const [count, rest] = readU32(s.body, 0);
      out.push(
        ...section(IMPORT_SECTION, [...writeU32(count + 1), ...s.body.subarray(rest), ...entry]),
      );
      imported = true;
      continue;
    }
    // The import section comes after the type section and before all others.
    if (!imported && s.id !== 0 && s.id !== TYPE_SECTION) {
      out.push(...section(IMPORT_SECTION, [...writeU32(1), ...entry]));
      imported = true;
    }
    out.push(...section(s.id, s.body));
  }
  if (!imported) out.push(...section(IMPORT_SECTION, [...writeU32(1), ...entry]));
  return { bytes: new Uint8Array(out), memory: limits };
}

/** Most tables a job may define. */
export const MAX_TABLES = 4;
/** Most entries a table may hold (its maximum is clamped to this). */
export const MAX_TABLE_ENTRIES = 100_000;

/** Value types a job's function types may use: numbers, v128, funcref, externref. */
const PLAIN_VALTYPES = new Set([0x7f, 0x7e, 0x7d, 0x7c, 0x7b, 0x70, 0x6f]);
const FUNC_TYPE = 0x60;

/**
 * Refuses anything but plain function types. WebAssembly GC types (struct,
 * array, rec groups, typed references) allocate on the JS heap, outside the
 * memory cap, and a JS heap exhausted in a worker aborts the whole process
 * (TM-16).
 */
function checkTypes(body: Uint8Array): void {
  const gc = () =>
    new ModuleLimitError(
      "the module uses WebAssembly GC or typed references, which allocate outside the memory cap",
      "invalid_module",
    );
  let [count, at] = readU32(body, 0);
  while (count-- > 0) {
    if (body[at] !== FUNC_TYPE) throw gc();
    at++;
    for (let vec = 0; vec < 2; vec++) {
      const [n, next] = readU32(body, at);
      at = next;
      for (let i = 0; i < n; i++, at++) {
        if (at >= body.length) {
          throw new ModuleLimitError("truncated type section", "invalid_module");
        }
        if (!PLAIN_VALTYPES.has(body[at])) throw gc();
      }
    }
  }
  if (at !== body.length) {
    throw new ModuleLimitError("trailing bytes in the type section", "invalid_module");
  }
}

/**
 * Returns the table section with every table's maximum clamped to
 * {@link MAX_TABLE_ENTRIES}: `table.grow` is memory outside the cap too.
 */
function capTables(body: Uint8Array): number[] {
  const [count, first] = readU32(body, 0);
  if (count > MAX_TABLES) {
    throw new ModuleLimitError(
      `the module defines ${count} tables, above the limit of ${MAX_TABLES}`,
      "memory",
    );
  }
  const out = [...writeU32(count)];
  let at = first;
  for (let i = 0; i < count; i++) {
    const ref = body[at];
    if (ref !== 0x70 && ref !== 0x6f) {
      throw new ModuleLimitError(
        "only funcref and externref tables are supported",
        "invalid_module",
      );
    }
    const flags = body[at + 1];
    if (flags !== 0x00 && flags !== 0x01) {
      throw new ModuleLimitError("unsupported table limits (shared or 64-bit)", "invalid_module");
    }
    const [min, afterMin] = readU32(body, at + 2);
    let max = MAX_TABLE_ENTRIES;
    at = afterMin;
    if (flags === 0x01) {
      const [declared, afterMax] = readU32(body, afterMin);
      max = Math.min(declared, MAX_TABLE_ENTRIES);
      at = afterMax;
    }
    if (min > MAX_TABLE_ENTRIES) {
      throw new ModuleLimitError(
        `a table starts with ${min} entries, above the limit of ${MAX_TABLE_ENTRIES}`,
        "memory",
      );
    }
    if (max < min) throw new ModuleLimitError("table maximum below its minimum", "invalid_module");
    out.push(ref, 0x01, ...writeU32(min), ...writeU32(max));
  }
  if (at !== body.length) {
    throw new ModuleLimitError("trailing bytes in the table section", "invalid_module");
  }
  return out;
}

function memoryLimits(
  body: Uint8Array,
  maxPages: number,
): { initial: number; maximum: number } | undefined {
  const [count, first] = readU32(body, 0);
  if (count > 1) {
    throw new ModuleLimitError("more than one memory is not supported", "invalid_module");
  }
  if (count === 0) return undefined;
  const flags = body[first];
  if (flags !== 0x00 && flags !== 0x01) {
    throw new ModuleLimitError(
      `memory flags 0x${(flags ?? 0).toString(16)} (shared or 64-bit memory) are not supported`,
      "invalid_module",
    );
  }
  const [min, afterMin] = readU32(body, first + 1);
  let max = maxPages;
  let end = afterMin;
  if (flags === 0x01) {
    const [declared, afterMax] = readU32(body, afterMin);
    max = Math.min(declared, maxPages);
    end = afterMax;
  }
  if (end !== body.length) {
    throw new ModuleLimitError("trailing bytes in the memory section", "invalid_module");
  }
  if (min > maxPages) {
    throw new ModuleLimitError(
      `the module asks for ${min} pages of memory at start, above the cap of ${maxPages}`,
      "memory",
    );
  }
  if (max < min) throw new ModuleLimitError("memory maximum below its minimum", "invalid_module");
  return { initial: min, maximum: max };
}
