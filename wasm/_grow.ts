/**
 * Makes a refused `memory.grow` visible to the host (TM-17). In WebAssembly
 * a grow past the memory's maximum just returns -1, without calling out, so
 * a job that asks for more memory than its cap and then traps looked like
 * an unrelated trap in its receipt. This strict binary rewriter replaces
 * every `memory.grow` (memory 0) in every function body with a call to one
 * new function appended after the module's own functions; that function
 * grows, and on -1 records the first refused request (current pages +
 * requested pages) in a new mutable i64 global, exported as
 * {@link GROW_REFUSED_EXPORT}. The worker reads it after a trap: a refused
 * grow came before the trap, so the job's first terminal event was its
 * memory limit.
 *
 * Appending keeps every index valid: imported functions come first, defined
 * ones after, so a defined function appended last shifts no function index,
 * and `call`, `return_call`, `ref.func`, the `start` section, element
 * segments and exports keep their meaning; the same holds for the global
 * appended after the defined globals, and for a type appended to the type
 * section (an identical `(i32) -> (i32)` is reused when there is one). The
 * name custom section is left as is: it names existing indices only.
 *
 * Strict and bounded: every instruction of every body is decoded with its
 * immediates (`0x40` is also the empty block type and a byte inside LEB128
 * immediates), every loop consumes input, every count is checked against
 * the bytes left. Anything it cannot decode (an unknown opcode, GC or
 * typed-reference types, memory64, a second memory, a malformed section)
 * leaves the module as it was, with a reason: the rewriter never rejects a
 * module, `WebAssembly.compile` still decides what is valid. It also never
 * makes an invalid module valid: a reference in the original to the index
 * the new function, global or type will take leaves the module as it was.
 *
 * Runs inside the job's worker, on the bytes {@link capMemory} returns;
 * private to wasm/.
 *
 * @module
 */

/** The export through which the host reads the first refused grow (pages asked, i64; 0: none). */
export const GROW_REFUSED_EXPORT = "__phase_grow_refused";

/**
 * Largest module the rewriter reads, in bytes: above it the module runs
 * uninstrumented. runJob already refuses modules above MAX_MODULE_BYTES
 * (16 MiB); capMemory adds a few bytes.
 */
export const MAX_GROW_REWRITE_BYTES = 32 * 1024 * 1024;

/** What the rewriter did with a module. */
export interface GrowRewrite {
  /** The bytes to compile: instrumented, or the input itself. */
  readonly bytes: Uint8Array;
  /** True when {@link GROW_REFUSED_EXPORT} is the rewriter's own export. */
  readonly instrumented: boolean;
  /** `memory.grow` sites replaced. */
  readonly sites: number;
  /** Why the module was left as it was; empty when instrumented or when it has no grow. */
  readonly reason: string;
}

/** Thrown inside the rewriter for anything it will not rewrite; never escapes it. */
class Unsupported extends Error {}

const MAGIC = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00];

/** Section ids in the order a module must have them (custom sections, id 0, anywhere). */
const SECTION_ORDER = [1, 2, 3, 4, 5, 13, 6, 7, 8, 9, 12, 10, 11];
const TYPE = 1, IMPORT = 2, FUNCTION = 3, TABLE = 4, MEMORY = 5, TAG = 13, GLOBAL = 6;
const EXPORT = 7, START = 8, ELEMENT = 9, CODE = 10, DATA = 11;

/** Value types the rewriter knows as one byte: i32 i64 f32 f64 v128 funcref externref. */
const VALTYPES = new Set([0x7f, 0x7e, 0x7d, 0x7c, 0x7b, 0x70, 0x6f]);
const REFTYPES = new Set([0x70, 0x6f]);
/** Block types as their one-byte s33 values: empty, then each value type. */
const BLOCK_VALTYPES = new Set([-64, -1, -2, -3, -4, -5, -16, -17]);

const RESERVED_NAME = new TextEncoder().encode(GROW_REFUSED_EXPORT);

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/** The function type `(i32) -> (i32)`, as the type section encodes it. */
const GROW_TYPE = [0x60, 0x01, 0x7f, 0x01, 0x7f];

/** A cursor over untrusted bytes; every read checks the end. */
class Reader {
  at: number;
  constructor(readonly bytes: Uint8Array, at = 0, readonly end = bytes.length) {
    this.at = at;
  }
  get left(): number {
    return this.end - this.at;
  }
  byte(): number {
    if (this.at >= this.end) throw new Unsupported("truncated");
    return this.bytes[this.at++];
  }
  skip(n: number): void {
    if (n < 0 || n > this.left) throw new Unsupported("truncated");
    this.at += n;
  }
  /** An unsigned LEB128 of at most `maxBytes` bytes (5: u32, 10: u64); its value is exact up to 2^53. */
  uleb(maxBytes = 5): number {
    let value = 0;
    for (let i = 0; i < maxBytes; i++) {
      const b = this.byte();
      value += (b & 0x7f) * 2 ** (7 * i);
      if ((b & 0x80) === 0) {
        if (maxBytes === 5 && value > 0xffffffff) throw new Unsupported("LEB128 above u32");
        return value;
      }
    }
    throw new Unsupported("LEB128 too long");
  }
  /** A signed LEB128 of at most `maxBytes` bytes; returns its value for up to 5 bytes. */
  sleb(maxBytes: number): number {
    let value = 0;
    for (let i = 0; i < maxBytes; i++) {
      const b = this.byte();
      value += (b & 0x7f) * 2 ** (7 * i);
      if ((b & 0x80) === 0) {
        return (b & 0x40) ? value - 2 ** (7 * (i + 1)) : value;
      }
    }
    throw new Unsupported("LEB128 too long");
  }
  /** A vector length: each element takes at least `minBytes`, so it cannot exceed what is left. */
  count(minBytes = 1): number {
    const n = this.uleb();
    if (n * minBytes > this.left) throw new Unsupported("count runs past the end");
    return n;
  }
  /** A name's bytes (compared as bytes: the rewriter never decodes UTF-8). */
  name(): Uint8Array {
    const n = this.count();
    const s = this.bytes.subarray(this.at, this.at + n);
    this.at += n;
    return s;
  }
}

/** A growable byte buffer. */
class Writer {
  #buf = new Uint8Array(1024);
  length = 0;
  #room(n: number): void {
    if (this.length + n <= this.#buf.length) return;
    let size = this.#buf.length * 2;
    while (size < this.length + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.#buf.subarray(0, this.length));
    this.#buf = next;
  }
  bytes(b: Uint8Array | readonly number[]): void {
    this.#room(b.length);
    this.#buf.set(b, this.length);
    this.length += b.length;
  }
  u32(value: number): void {
    this.bytes(uleb(value));
  }
  done(): Uint8Array {
    return this.#buf.slice(0, this.length);
  }
}

function uleb(value: number): number[] {
  const out: number[] = [];
  do {
    let b = value & 0x7f;
    value = Math.floor(value / 128);
    if (value !== 0) b |= 0x80;
    out.push(b);
  } while (value !== 0);
  return out;
}

/** Index spaces as the original module defines them: a reference at or past one is invalid there. */
interface Bounds {
  types: number;
  funcs: number;
  globals: number;
}

/**
 * Decodes instructions from `r` up to the `end` that closes the body or
 * constant expression, checking indices against `bounds` (TM-17: a
 * reference to what the rewriter appends would make an invalid module
 * valid). Calls `onGrow(start, end)` for each `memory.grow` of memory 0
 * with the offsets of its whole encoding.
 */
function decodeExpr(r: Reader, bounds: Bounds, onGrow?: (from: number, to: number) => void): void {
  let depth = 0;
  const func = () => {
    if (r.uleb() >= bounds.funcs) throw new Unsupported("a function index out of range");
  };
  const type = () => {
    if (r.uleb() >= bounds.types) throw new Unsupported("a type index out of range");
  };
  const memarg = () => {
    const align = r.uleb();
    if (align & 0x40) r.uleb(); // multi-memory: a memory index follows
    r.uleb(10); // offset (u64 for memory64, which is left uninstrumented anyway)
  };
  const blockType = () => {
    const bt = r.sleb(5);
    if (bt < 0 ? !BLOCK_VALTYPES.has(bt) : bt >= bounds.types) {
      throw new Unsupported("a block type the rewriter does not know");
    }
  };
  for (;;) {
    const from = r.at;
    const op = r.byte();
    switch (op) {
      case 0x00: // unreachable
      case 0x01: // nop
      case 0x05: // else
      case 0x0f: // return
      case 0x19: // catch_all (legacy exceptions)
      case 0x0a: // throw_ref
      case 0x1a: // drop
      case 0x1b: // select
      case 0xd1: // ref.is_null
        break;
      case 0x02: // block
      case 0x03: // loop
      case 0x04: // if
      case 0x06: // try (legacy exceptions)
        blockType();
        depth++;
        break;
      case 0x1f: { // try_table
        blockType();
        const n = r.count(2);
        for (let i = 0; i < n; i++) {
          const kind = r.byte();
          if (kind > 3) throw new Unsupported("an unknown try_table catch");
          if (kind < 2) r.uleb(); // tag
          r.uleb(); // label
        }
        depth++;
        break;
      }
      case 0x0b: // end
        if (depth-- === 0) return;
        break;
      case 0x07: // catch tag
      case 0x08: // throw tag
      case 0x09: // rethrow label
      case 0x18: // delegate label: ends the try as `end` does
      case 0x0c: // br
      case 0x0d: // br_if
      case 0x20: // local.get
      case 0x21: // local.set
      case 0x22: // local.tee
      case 0x25: // table.get
      case 0x26: // table.set
        r.uleb();
        if (op === 0x18) depth--;
        break;
      case 0x0e: { // br_table
        const n = r.count();
        for (let i = 0; i <= n; i++) r.uleb();
        break;
      }
      case 0x10: // call
      case 0x12: // return_call
      case 0xd2: // ref.func
        func();
        break;
      case 0x11: // call_indirect
      case 0x13: // return_call_indirect
        type();
        r.uleb(); // table
        break;
      case 0x1c: { // select t*
        const n = r.count();
        for (let i = 0; i < n; i++) {
          if (!VALTYPES.has(r.byte())) {
            throw new Unsupported("a value type the rewriter does not know");
          }
        }
        break;
      }
      case 0x23: // global.get
      case 0x24: // global.set
        if (r.uleb() >= bounds.globals) throw new Unsupported("a global index out of range");
        break;
      case 0x3f: // memory.size
        r.uleb();
        break;
      case 0x40: { // memory.grow: 0x00 in MVP, any LEB128 memory index with multi-memory
        const mem = r.uleb();
        if (mem !== 0) throw new Unsupported("memory.grow of a memory other than 0");
        onGrow?.(from, r.at);
        break;
      }
      case 0x41: // i32.const
        r.sleb(5);
        break;
      case 0x42: // i64.const
        r.sleb(10);
        break;
      case 0x43: // f32.const
        r.skip(4);
        break;
      case 0x44: // f64.const
        r.skip(8);
        break;
      case 0xd0: // ref.null
        if (!REFTYPES.has(r.byte())) {
          throw new Unsupported("a heap type the rewriter does not know");
        }
        break;
      case 0xfc:
        prefixFC(r);
        break;
      case 0xfd:
        prefixFD(r, memarg);
        break;
      case 0xfe:
        prefixFE(r, memarg);
        break;
      default:
        if (op >= 0x28 && op <= 0x3e) memarg(); // loads and stores
        else if (!(op >= 0x45 && op <= 0xc4)) { // numeric and sign-extension: no immediate
          throw new Unsupported(`opcode 0x${op.toString(16)}`);
        }
    }
  }
}

/** 0xFC: saturating truncation, bulk memory, table operations. */
function prefixFC(r: Reader): void {
  const op = r.uleb();
  if (op <= 7) return; // trunc_sat
  switch (op) {
    case 8: // memory.init data memory
    case 10: // memory.copy memory memory
    case 12: // table.init elem table
    case 14: // table.copy table table
      r.uleb();
      r.uleb();
      return;
    case 9: // data.drop
    case 11: // memory.fill
    case 13: // elem.drop
    case 15: // table.grow
    case 16: // table.size
    case 17: // table.fill
      r.uleb();
      return;
  }
  throw new Unsupported(`opcode 0xfc ${op}`);
}

/**
 * 0xFD: fixed-width SIMD and relaxed SIMD. Unassigned opcodes inside the
 * no-immediate ranges decode as having no immediate: the module is invalid
 * then, the rewrite keeps it invalid and compile rejects it.
 */
function prefixFD(r: Reader, memarg: () => void): void {
  const op = r.uleb();
  if (op <= 11 || op === 92 || op === 93) memarg(); // v128 loads and stores, load*_zero
  else if (op === 12 || op === 13) r.skip(16); // v128.const, i8x16.shuffle
  else if (op >= 21 && op <= 34) r.byte(); // extract_lane / replace_lane
  else if (op >= 84 && op <= 91) { // load*_lane / store*_lane
    memarg();
    r.byte();
  } else if (op > 0x113) throw new Unsupported(`opcode 0xfd ${op}`);
}

/** 0xFE: atomics (threads). */
function prefixFE(r: Reader, memarg: () => void): void {
  const op = r.uleb();
  if (op === 3) {
    if (r.byte() !== 0) throw new Unsupported("atomic.fence with a non-zero byte");
  } else if (op <= 2 || (op >= 0x10 && op <= 0x4e)) memarg();
  else throw new Unsupported(`opcode 0xfe ${op}`);
}

function valtype(r: Reader): void {
  if (!VALTYPES.has(r.byte())) throw new Unsupported("a value type the rewriter does not know");
}

/** Table or memory limits; memory64 and 64-bit tables are left alone. */
function limits(r: Reader): void {
  const flags = r.byte();
  if (flags & ~0x03) throw new Unsupported("memory64, a 64-bit table or unknown limits");
  r.uleb();
  if (flags & 0x01) r.uleb();
}

interface Section {
  readonly id: number;
  /** The whole section as given, id and size included. */
  readonly raw: Uint8Array;
  readonly body: Uint8Array;
}

function sections(bytes: Uint8Array): Section[] {
  if (bytes.length < 8 || !MAGIC.every((b, i) => bytes[i] === b)) {
    throw new Unsupported("not a core WebAssembly module");
  }
  const out: Section[] = [];
  const r = new Reader(bytes, 8);
  let rank = -1;
  while (r.left > 0) {
    const start = r.at;
    const id = r.byte();
    const size = r.uleb();
    if (size > r.left) throw new Unsupported("a section runs past the end");
    if (id !== 0) {
      const next = SECTION_ORDER.indexOf(id);
      if (next < 0) throw new Unsupported(`unknown section ${id}`);
      if (next <= rank) throw new Unsupported("sections out of order or repeated");
      rank = next;
    }
    out.push({
      id,
      raw: bytes.subarray(start, r.at + size),
      body: bytes.subarray(r.at, r.at + size),
    });
    r.skip(size);
  }
  return out;
}

function done(r: Reader, what: string): void {
  if (r.left !== 0) throw new Unsupported(`trailing bytes in the ${what} section`);
}

/**
 * Instruments every `memory.grow` (see the module doc). Never throws: a
 * module it cannot or need not rewrite comes back as given, with the reason
 * (empty when the module has no `memory.grow` at all). `always` (tests)
 * adds the function, global and export even to a module without a grow.
 */
export function instrumentGrow(
  bytes: Uint8Array,
  options: { readonly always?: boolean } = {},
): GrowRewrite {
  const asIs = (reason: string) => ({ bytes, instrumented: false, sites: 0, reason });
  if (bytes.length > MAX_GROW_REWRITE_BYTES) {
    return asIs(`the module is above ${MAX_GROW_REWRITE_BYTES} bytes`);
  }
  try {
    return rewrite(bytes, options.always === true) ?? asIs("");
  } catch (err) {
    if (err instanceof Unsupported) return asIs(err.message);
    // A bug here must not cost the job its run: run it as before.
    return asIs(`rewriter failure: ${err instanceof Error ? err.message : String(err)}`);
  }
}

/** The rewrite; undefined when there is no `memory.grow` to instrument. */
function rewrite(bytes: Uint8Array, always: boolean): GrowRewrite | undefined {
  const secs = sections(bytes);
  const get = (id: number) => secs.find((s) => s.id === id);
  const bounds: Bounds = { types: 0, funcs: 0, globals: 0 };

  // Types: count them and look for an identical (i32) -> (i32).
  let growType = -1;
  const typeSec = get(TYPE);
  if (typeSec) {
    const r = new Reader(typeSec.body);
    bounds.types = r.count(3);
    for (let i = 0; i < bounds.types; i++) {
      const from = r.at;
      if (r.byte() !== 0x60) throw new Unsupported("a type that is not a function type");
      for (let v = 0; v < 2; v++) {
        const n = r.count();
        for (let j = 0; j < n; j++) valtype(r);
      }
      const t = typeSec.body.subarray(from, r.at);
      if (growType < 0 && t.length === GROW_TYPE.length && GROW_TYPE.every((b, k) => t[k] === b)) {
        growType = i;
      }
    }
    done(r, "type");
  }
  const typeIndex = (r: Reader) => {
    if (r.uleb() >= bounds.types) throw new Unsupported("a type index out of range");
  };

  let memories = 0;
  const importSec = get(IMPORT);
  if (importSec) {
    const r = new Reader(importSec.body);
    const n = r.count(4);
    for (let i = 0; i < n; i++) {
      r.name();
      r.name();
      const kind = r.byte();
      if (kind === 0x00) {
        typeIndex(r);
        bounds.funcs++;
      } else if (kind === 0x01) {
        if (!REFTYPES.has(r.byte())) {
          throw new Unsupported("a table type the rewriter does not know");
        }
        limits(r);
      } else if (kind === 0x02) {
        limits(r);
        memories++;
      } else if (kind === 0x03) {
        valtype(r);
        if (r.byte() > 1) throw new Unsupported("unknown global mutability");
        bounds.globals++;
      } else if (kind === 0x04) {
        if (r.byte() !== 0) throw new Unsupported("unknown tag attribute");
        typeIndex(r);
      } else throw new Unsupported(`unknown import kind ${kind}`);
    }
    done(r, "import");
  }
  const funcSec = get(FUNCTION);
  let defined = 0;
  if (funcSec) {
    const r = new Reader(funcSec.body);
    defined = r.count();
    for (let i = 0; i < defined; i++) typeIndex(r);
    done(r, "function");
  }
  bounds.funcs += defined;
  const tableSec = get(TABLE);
  if (tableSec) {
    const r = new Reader(tableSec.body);
    const n = r.count(2);
    for (let i = 0; i < n; i++) {
      // A table with an initializer (0x40 0x00 ...) belongs to typed references: left alone.
      if (!REFTYPES.has(r.byte())) throw new Unsupported("a table type the rewriter does not know");
      limits(r);
    }
    done(r, "table");
  }
  const memSec = get(MEMORY);
  if (memSec) {
    const r = new Reader(memSec.body);
    const n = r.count(2);
    for (let i = 0; i < n; i++) limits(r);
    memories += n;
    done(r, "memory");
  }
  // The multi-memory form is left alone (capMemory refuses it anyway).
  if (memories > 1) throw new Unsupported("more than one memory");
  const tagSec = get(TAG);
  if (tagSec) {
    const r = new Reader(tagSec.body);
    const n = r.count(2);
    for (let i = 0; i < n; i++) {
      if (r.byte() !== 0) throw new Unsupported("unknown tag attribute");
      typeIndex(r);
    }
    done(r, "tag");
  }
  // Globals: their initializers may only see globals before them, but check
  // every index against the original count all the same.
  const globalSec = get(GLOBAL);
  let definedGlobals = 0;
  const constBounds = () => ({ ...bounds });
  if (globalSec) {
    const r = new Reader(globalSec.body);
    definedGlobals = r.count(3);
    const b = { ...bounds, globals: bounds.globals + definedGlobals };
    for (let i = 0; i < definedGlobals; i++) {
      valtype(r);
      if (r.byte() > 1) throw new Unsupported("unknown global mutability");
      decodeExpr(r, b);
    }
    done(r, "global");
  }
  bounds.globals += definedGlobals;
  const exportSec = get(EXPORT);
  let exports = 0;
  if (exportSec) {
    const r = new Reader(exportSec.body);
    exports = r.count(3);
    for (let i = 0; i < exports; i++) {
      if (sameBytes(r.name(), RESERVED_NAME)) {
        throw new Unsupported(`the module already exports '${GROW_REFUSED_EXPORT}'`);
      }
      const kind = r.byte();
      const index = r.uleb();
      if (kind === 0x00 && index >= bounds.funcs) {
        throw new Unsupported("an exported function out of range");
      }
      if (kind === 0x03 && index >= bounds.globals) {
        throw new Unsupported("an exported global out of range");
      }
      if (kind > 0x04) throw new Unsupported(`unknown export kind ${kind}`);
    }
    done(r, "export");
  }
  const startSec = get(START);
  if (startSec) {
    const r = new Reader(startSec.body);
    if (r.uleb() >= bounds.funcs) throw new Unsupported("the start function is out of range");
    done(r, "start");
  }
  const elemSec = get(ELEMENT);
  if (elemSec) {
    const r = new Reader(elemSec.body);
    const n = r.count(2);
    for (let i = 0; i < n; i++) {
      const flags = r.uleb();
      if (flags > 7) throw new Unsupported(`unknown element segment flags ${flags}`);
      if (flags === 2 || flags === 6) r.uleb(); // table
      if ((flags & 0x01) === 0) decodeExpr(r, constBounds()); // active: offset
      const exprs = (flags & 0x04) !== 0;
      if (flags & 0x03) { // elemkind (0x00: funcref) or reftype
        const k = r.byte();
        if (exprs ? !REFTYPES.has(k) : k !== 0x00) throw new Unsupported("unknown element kind");
      }
      const m = r.count();
      for (let j = 0; j < m; j++) {
        if (exprs) decodeExpr(r, constBounds());
        else if (r.uleb() >= bounds.funcs) {
          throw new Unsupported("an element function out of range");
        }
      }
    }
    done(r, "element");
  }
  const dataSec = get(DATA);
  if (dataSec) {
    const r = new Reader(dataSec.body);
    const n = r.count();
    for (let i = 0; i < n; i++) {
      const flags = r.uleb();
      if (flags > 2) throw new Unsupported(`unknown data segment flags ${flags}`);
      if (flags === 2) r.uleb(); // memory
      if (flags !== 1) decodeExpr(r, constBounds());
      r.skip(r.count());
    }
    done(r, "data");
  }

  // Code: find every memory.grow; the new function's index is the next one.
  const codeSec = get(CODE);
  if (!codeSec) return undefined;
  const helper = bounds.funcs;
  const call = [0x10, ...uleb(helper)];
  const r = new Reader(codeSec.body);
  const n = r.count();
  if (n !== defined) throw new Unsupported("the code and function sections disagree");
  const code = new Writer();
  code.u32(n + 1);
  let sites = 0;
  for (let i = 0; i < n; i++) {
    const entry = r.at;
    const size = r.uleb();
    const start = r.at;
    const body = new Reader(codeSec.body, start, start + size);
    r.skip(size);
    const locals = body.count(2);
    for (let j = 0; j < locals; j++) {
      body.uleb();
      valtype(body);
    }
    const grows: [number, number][] = [];
    decodeExpr(body, bounds, (from, to) => grows.push([from, to]));
    if (body.left !== 0) throw new Unsupported("bytes after the end of a function body");
    if (grows.length === 0) {
      code.bytes(codeSec.body.subarray(entry, r.at));
      continue;
    }
    sites += grows.length;
    const out = new Writer();
    let at = start;
    for (const [from, to] of grows) {
      out.bytes(codeSec.body.subarray(at, from));
      out.bytes(call);
      at = to;
    }
    out.bytes(codeSec.body.subarray(at, body.end));
    const rewritten = out.done();
    code.u32(rewritten.length);
    code.bytes(rewritten);
  }
  done(r, "code");
  if (sites === 0 && !always) return undefined;
  if (memories !== 1) throw new Unsupported("memory.grow without a memory");

  const global = bounds.globals;
  // The helper: (param $delta i32) (result i32) (local $r i32)
  //   (local.tee $r (memory.grow (local.get $delta)))
  //   (if (i32.eq (i32.const -1)) (then (if (i64.eqz (global.get $g)) (then
  //     (global.set $g (i64.add (i64.extend_i32_u (memory.size))
  //                             (i64.extend_i32_u (local.get $delta))))))))
  //   (local.get $r)
  // Only the first refusal is kept: it is the job's first memory event.
  const g = uleb(global);
  const helperBody = [
    ...[0x01, 0x01, 0x7f],
    ...[0x20, 0x00, 0x40, 0x00, 0x22, 0x01, 0x41, 0x7f, 0x46, 0x04, 0x40],
    ...[0x23, ...g, 0x50, 0x04, 0x40],
    ...[0x3f, 0x00, 0xad, 0x20, 0x00, 0xad, 0x7c, 0x24, ...g],
    ...[0x0b, 0x0b, 0x20, 0x01, 0x0b],
  ];
  code.u32(helperBody.length);
  code.bytes(helperBody);

  const type = growType >= 0 ? growType : bounds.types;
  const built: Record<number, Uint8Array> = {};
  built[TYPE] = growType >= 0 && typeSec ? typeSec.body : appendTo(typeSec, GROW_TYPE);
  built[FUNCTION] = appendTo(funcSec, uleb(type));
  // i64, mutable, initialized to 0.
  built[GLOBAL] = appendTo(globalSec, [0x7e, 0x01, 0x42, 0x00, 0x0b]);
  built[EXPORT] = appendTo(exportSec, [
    ...uleb(RESERVED_NAME.length),
    ...RESERVED_NAME,
    0x03,
    ...g,
  ]);
  built[CODE] = code.done();

  const out = new Writer();
  out.bytes(MAGIC);
  const emit = (id: number) => {
    out.bytes([id]);
    out.u32(built[id].length);
    out.bytes(built[id]);
    delete built[id];
  };
  const rankOf = (id: number) => SECTION_ORDER.indexOf(id);
  for (const s of secs) {
    if (s.id !== 0) {
      // Sections the module lacks go before the first one that follows them.
      for (const id of SECTION_ORDER) {
        if (rankOf(id) < rankOf(s.id) && built[id] && !get(id)) emit(id);
      }
    }
    if (s.id in built) emit(s.id);
    else out.bytes(s.raw);
  }
  for (const id of SECTION_ORDER) if (built[id]) emit(id);
  return { bytes: out.done(), instrumented: true, sites, reason: "" };
}

/** A vector section's body with one more entry. */
function appendTo(section: Section | undefined, entry: readonly number[]): Uint8Array {
  const w = new Writer();
  if (!section) {
    w.u32(1);
    w.bytes(entry);
    return w.done();
  }
  const r = new Reader(section.body);
  const n = r.uleb();
  w.u32(n + 1);
  w.bytes(section.body.subarray(r.at));
  w.bytes(entry);
  return w.done();
}

/** A compiled job module and what the rewriter did to it. */
export interface WatchedModule {
  readonly module: WebAssembly.Module;
  /** True when the compiled module carries the rewriter's {@link GROW_REFUSED_EXPORT}. */
  readonly instrumented: boolean;
  /** Why `memory.grow` is not watched; empty when it is or when the module has none. */
  readonly note: string;
}

/**
 * Instruments and compiles. Should the instrumented bytes not compile (a
 * rewriter bug), the original bytes are compiled instead: the rewriter
 * never costs a valid module its run. Throws what compiling the original
 * throws.
 */
export async function compileWatched(bytes: Uint8Array): Promise<WatchedModule> {
  const grow = instrumentGrow(bytes);
  if (grow.instrumented) {
    try {
      return {
        module: await WebAssembly.compile(grow.bytes as BufferSource),
        instrumented: true,
        note: "",
      };
    } catch (err) {
      const module = await WebAssembly.compile(bytes as BufferSource);
      const why = err instanceof Error ? err.message : String(err);
      return { module, instrumented: false, note: `grow not instrumented: ${why}` };
    }
  }
  const module = await WebAssembly.compile(bytes as BufferSource);
  return {
    module,
    instrumented: false,
    note: grow.reason ? `grow not instrumented: ${grow.reason}` : "",
  };
}

/**
 * The pages the job's first refused `memory.grow` asked for in all
 * (current + requested), or undefined when none was refused or the module
 * is not instrumented (then the export, if any, is the job's own).
 */
export function refusedGrowPages(
  instance: WebAssembly.Instance,
  watched: WatchedModule,
): bigint | undefined {
  if (!watched.instrumented) return undefined;
  const g = instance.exports[GROW_REFUSED_EXPORT];
  if (!(g instanceof WebAssembly.Global)) return undefined;
  const v = g.value;
  return typeof v === "bigint" && v !== 0n ? v : undefined;
}
