/**
 * Flattened device tree (DTB, devicetree spec v0.4 §5) parser and writer,
 * enough to hand the running kernel's tree to the next one on arm64:
 * `/sys/firmware/fdt` with `/chosen/kaslr-seed` zeroed. The seed was
 * consumed by this kernel; passing it on would let the next kernel reuse a
 * known randomisation seed, so it is cleared (the kernel's own kexec_file
 * path does the same).
 *
 * @module
 */
import { KexecError } from "./errors.ts";

/** Largest DTB accepted (firmware trees are tens of KiB). */
export const MAX_FDT_BYTES = 2 * 1024 * 1024;
/** Deepest node nesting accepted. */
export const MAX_FDT_DEPTH = 64;

const FDT_MAGIC = 0xd00dfeed;
const FDT_BEGIN_NODE = 1;
const FDT_END_NODE = 2;
const FDT_PROP = 3;
const FDT_NOP = 4;
const FDT_END = 9;
const HEADER_BYTES = 40;

/** One property: name and raw value bytes. */
export interface FdtProperty {
  name: string;
  value: Uint8Array;
}

/** One node: name (root is ""), properties, children, in file order. */
export interface FdtNode {
  name: string;
  properties: FdtProperty[];
  children: FdtNode[];
}

/** A parsed tree with its header fields that survive a round trip. */
export interface Fdt {
  version: number;
  lastCompVersion: number;
  bootCpuidPhys: number;
  reserved: { address: bigint; size: bigint }[];
  root: FdtNode;
}

function bad(message: string): KexecError {
  return new KexecError("E_FDT", `device tree: ${message}`, {
    hint: "the firmware's /sys/firmware/fdt is not a valid DTB (v16/v17)",
  });
}

const align4 = (n: number) => (n + 3) & ~3;

function cString(bytes: Uint8Array, at: number, end: number): [string, number] {
  let i = at;
  while (i < end && bytes[i] !== 0) i++;
  if (i >= end) throw bad(`unterminated string at ${at}`);
  try {
    return [new TextDecoder("utf-8", { fatal: true }).decode(bytes.subarray(at, i)), i + 1];
  } catch {
    // The decoder's TypeError is not E_FDT (found by fuzzing, docs/fuzzing.md).
    throw bad(`string at ${at} is not UTF-8`);
  }
}

/** Parses DTB bytes strictly (bounds-checked, depth-capped). */
export function parseFdt(bytes: Uint8Array): Fdt {
  if (bytes.length < HEADER_BYTES) throw bad("shorter than its header");
  if (bytes.length > MAX_FDT_BYTES) throw bad(`larger than ${MAX_FDT_BYTES} bytes`);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const u32 = (o: number) => dv.getUint32(o, false);
  if (u32(0) !== FDT_MAGIC) throw bad("bad magic");
  const total = u32(4);
  const offStruct = u32(8);
  const offStrings = u32(12);
  const offRsv = u32(16);
  const version = u32(20);
  const lastComp = u32(24);
  const bootCpu = u32(28);
  const sizeStrings = u32(32);
  const sizeStruct = u32(36);
  if (total > bytes.length || total < HEADER_BYTES) throw bad("totalsize out of range");
  if (version < 16) throw bad(`version ${version} is older than 16`);
  if (offStruct + sizeStruct > total || offStrings + sizeStrings > total || offRsv >= total) {
    throw bad("block out of range");
  }
  const reserved: Fdt["reserved"] = [];
  for (let o = offRsv;; o += 16) {
    if (o + 16 > total) throw bad("unterminated memory reservation map");
    const address = dv.getBigUint64(o, false);
    const size = dv.getBigUint64(o + 8, false);
    if (address === 0n && size === 0n) break;
    reserved.push({ address, size });
  }
  const stringsEnd = offStrings + sizeStrings;
  const structEnd = offStruct + sizeStruct;
  let p = offStruct;
  const stack: FdtNode[] = [];
  let root: FdtNode | undefined;
  const token = () => {
    if (p + 4 > structEnd) throw bad("struct block truncated");
    const t = u32(p);
    p += 4;
    return t;
  };
  for (;;) {
    const t = token();
    if (t === FDT_NOP) continue;
    if (t === FDT_BEGIN_NODE) {
      const [name, next] = cString(bytes, p, structEnd);
      p = align4(next);
      const node: FdtNode = { name, properties: [], children: [] };
      if (stack.length === 0) {
        if (root) throw bad("more than one root node");
        root = node;
      } else stack[stack.length - 1].children.push(node);
      stack.push(node);
      if (stack.length > MAX_FDT_DEPTH) throw bad(`nested deeper than ${MAX_FDT_DEPTH}`);
    } else if (t === FDT_END_NODE) {
      if (!stack.pop()) throw bad("unbalanced END_NODE");
    } else if (t === FDT_PROP) {
      const len = token();
      const nameOff = token();
      if (p + len > structEnd) throw bad("property value out of range");
      if (offStrings + nameOff >= stringsEnd) throw bad("property name out of range");
      const [name] = cString(bytes, offStrings + nameOff, stringsEnd);
      const node = stack[stack.length - 1];
      if (!node) throw bad("property outside a node");
      node.properties.push({ name, value: bytes.slice(p, p + len) });
      p = align4(p + len);
    } else if (t === FDT_END) {
      if (stack.length !== 0 || !root) throw bad("END before the root node closed");
      break;
    } else throw bad(`unknown token ${t}`);
  }
  return { version, lastCompVersion: lastComp, bootCpuidPhys: bootCpu, reserved, root: root! };
}

/** Serialises a tree as a v17 DTB (reservation map, struct, strings). */
export function writeFdt(fdt: Fdt): Uint8Array {
  const enc = new TextEncoder();
  const strings: number[] = [];
  const stringOffsets = new Map<string, number>();
  const nameOffset = (name: string) => {
    let off = stringOffsets.get(name);
    if (off === undefined) {
      off = strings.length;
      stringOffsets.set(name, off);
      strings.push(...enc.encode(name), 0);
    }
    return off;
  };
  const struct: number[] = [];
  const push32 = (v: number) =>
    struct.push((v >>> 24) & 255, (v >>> 16) & 255, (v >>> 8) & 255, v & 255);
  const pad = () => {
    while (struct.length % 4) struct.push(0);
  };
  const emit = (node: FdtNode, depth: number) => {
    if (depth > MAX_FDT_DEPTH) throw bad(`nested deeper than ${MAX_FDT_DEPTH}`);
    push32(FDT_BEGIN_NODE);
    struct.push(...enc.encode(node.name), 0);
    pad();
    for (const prop of node.properties) {
      push32(FDT_PROP);
      push32(prop.value.length);
      push32(nameOffset(prop.name));
      for (const b of prop.value) struct.push(b);
      pad();
    }
    for (const child of node.children) emit(child, depth + 1);
    push32(FDT_END_NODE);
  };
  emit(fdt.root, 0);
  push32(FDT_END);
  const offRsv = HEADER_BYTES; // already 8-aligned
  const rsvBytes = (fdt.reserved.length + 1) * 16;
  const offStruct = offRsv + rsvBytes;
  const offStrings = offStruct + struct.length;
  const total = offStrings + strings.length;
  const out = new Uint8Array(total);
  const dv = new DataView(out.buffer);
  const header = [
    FDT_MAGIC,
    total,
    offStruct,
    offStrings,
    offRsv,
    17,
    16,
    fdt.bootCpuidPhys,
    strings.length,
    struct.length,
  ];
  header.forEach((v, i) => dv.setUint32(i * 4, v, false));
  fdt.reserved.forEach((r, i) => {
    dv.setBigUint64(offRsv + i * 16, r.address, false);
    dv.setBigUint64(offRsv + i * 16 + 8, r.size, false);
  });
  out.set(struct, offStruct);
  out.set(strings, offStrings);
  return out;
}

/** Finds a node by absolute path (`/chosen`); unit addresses must match exactly. */
export function findNode(fdt: Fdt, path: string): FdtNode | undefined {
  let node: FdtNode | undefined = fdt.root;
  for (const part of path.split("/").filter(Boolean)) {
    node = node?.children.find((c) => c.name === part);
  }
  return node;
}

/**
 * Returns a copy of `dtb` with `/chosen/kaslr-seed` set to zero bytes of the
 * same length (0 means "no seed" to the next kernel) and any
 * `/chosen/rng-seed` removed (a reused seed must not be credited as fresh
 * entropy). Reports what it changed.
 */
export function zeroKaslrSeed(dtb: Uint8Array): { dtb: Uint8Array; changed: string[] } {
  const fdt = parseFdt(dtb);
  const chosen = findNode(fdt, "/chosen");
  const changed: string[] = [];
  if (chosen) {
    for (const prop of chosen.properties) {
      if (prop.name === "kaslr-seed") {
        prop.value = new Uint8Array(prop.value.length);
        changed.push("kaslr-seed zeroed");
      }
    }
    const before = chosen.properties.length;
    chosen.properties = chosen.properties.filter((p) => p.name !== "rng-seed");
    if (chosen.properties.length !== before) changed.push("rng-seed removed");
  }
  return { dtb: writeFdt(fdt), changed };
}
