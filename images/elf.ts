/**
 * DT_NEEDED of an ELF64 little-endian executable or library, read in
 * TypeScript: cross builds (arm64 on an amd64 host) cannot run `ldd`.
 *
 * @module
 */
import { ImagesError } from "./errors.ts";

/** Largest ELF header region read (program headers live near the start). */
export const MAX_ELF_HEADER_BYTES = 64 * 1024;
const PT_LOAD = 1;
const PT_DYNAMIC = 2;
const PT_INTERP = 3;
const DT_NULL = 0n;
const DT_NEEDED = 1n;
const DT_STRTAB = 5n;

/** NEEDED libraries and the interpreter of an ELF64 LE file. */
export function elfNeeded(
  bytes: Uint8Array,
  what = "ELF file",
): { needed: string[]; interp?: string } {
  const bad = (m: string) => new ImagesError("E_INPUT", `${what}: ${m}`);
  if (
    bytes.length < 64 || bytes[0] !== 0x7f || bytes[1] !== 0x45 || bytes[2] !== 0x4c ||
    bytes[3] !== 0x46
  ) {
    throw bad("not an ELF file");
  }
  if (bytes[4] !== 2 || bytes[5] !== 1) throw bad("not ELF64 little-endian");
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const phoff = Number(dv.getBigUint64(32, true));
  const phentsize = dv.getUint16(54, true);
  const phnum = dv.getUint16(56, true);
  const loads: { vaddr: bigint; offset: bigint; filesz: bigint }[] = [];
  let dyn: { offset: number; size: number } | undefined;
  let interp: string | undefined;
  const cstr = (at: number) => {
    let end = at;
    while (end < bytes.length && bytes[end] !== 0) end++;
    if (end >= bytes.length) throw bad("unterminated string");
    return new TextDecoder().decode(bytes.subarray(at, end));
  };
  for (let i = 0; i < phnum; i++) {
    const o = phoff + i * phentsize;
    if (o + 56 > bytes.length) throw bad("program header out of range");
    const type = dv.getUint32(o, true);
    const offset = dv.getBigUint64(o + 8, true);
    const vaddr = dv.getBigUint64(o + 16, true);
    const filesz = dv.getBigUint64(o + 32, true);
    if (type === PT_LOAD) loads.push({ vaddr, offset, filesz });
    if (type === PT_DYNAMIC) dyn = { offset: Number(offset), size: Number(filesz) };
    if (type === PT_INTERP) interp = cstr(Number(offset));
  }
  if (!dyn) return { needed: [], interp };
  const toOffset = (vaddr: bigint) => {
    for (const l of loads) {
      if (vaddr >= l.vaddr && vaddr < l.vaddr + l.filesz) return Number(vaddr - l.vaddr + l.offset);
    }
    throw bad("address outside every PT_LOAD segment");
  };
  const needed: bigint[] = [];
  let strtab: bigint | undefined;
  for (let o = dyn.offset; o + 16 <= dyn.offset + dyn.size && o + 16 <= bytes.length; o += 16) {
    const tag = dv.getBigInt64(o, true);
    const val = dv.getBigUint64(o + 8, true);
    if (tag === DT_NULL) break;
    if (tag === DT_NEEDED) needed.push(val);
    if (tag === DT_STRTAB) strtab = val;
  }
  if (needed.length && strtab === undefined) throw bad("DT_NEEDED without DT_STRTAB");
  const base = strtab === undefined ? 0 : toOffset(strtab);
  return { needed: needed.map((n) => cstr(base + Number(n))), interp };
}

/** Resolves `link` inside `sysroot` (absolute targets stay inside it). */
async function resolveIn(sysroot: string, path: string, depth = 0): Promise<string> {
  if (depth > 16) throw new ImagesError("E_INPUT", `symlink loop at ${path}`);
  const st = await Deno.lstat(`${sysroot}${path}`);
  if (!st.isSymlink) return path;
  const target = await Deno.readLink(`${sysroot}${path}`);
  const next = target.startsWith("/")
    ? target
    : `${path.slice(0, path.lastIndexOf("/"))}/${target}`;
  return await resolveIn(sysroot, next, depth + 1);
}

/**
 * The closure of libraries `bins` need, as paths inside `sysroot` (each the
 * path the loader looks up, with the real file to copy).
 */
export async function neededClosure(
  sysroot: string,
  bins: readonly string[],
  libDirs: readonly string[],
): Promise<{ path: string; file: string }[]> {
  const out = new Map<string, string>();
  const queue = [...bins];
  const seen = new Set<string>();
  while (queue.length) {
    const file = queue.shift()!;
    if (seen.has(file)) continue;
    seen.add(file);
    const bytes = await Deno.readFile(file);
    const { needed, interp } = elfNeeded(bytes, file);
    if (interp && !out.has(interp)) {
      const real = await resolveIn(sysroot, interp);
      out.set(interp, `${sysroot}${real}`);
    }
    for (const name of needed) {
      if ([...out.keys()].some((p) => p.endsWith(`/${name}`))) continue;
      let found: string | undefined;
      for (const dir of libDirs) {
        try {
          const real = await resolveIn(sysroot, `${dir}/${name}`);
          found = `${dir}/${name}`;
          out.set(found, `${sysroot}${real}`);
          queue.push(`${sysroot}${real}`);
          break;
        } catch { /* not in this dir */ }
      }
      if (!found) {
        throw new ImagesError(
          "E_INPUT",
          `${file} needs ${name}, not found in ${sysroot} (${libDirs.join(", ")})`,
          {
            hint:
              "apt-get download the arm64 package that ships it and dpkg-deb -x it into the sysroot",
          },
        );
      }
    }
  }
  return [...out.entries()].map(([path, file]) => ({ path, file })).sort((a, b) =>
    a.path < b.path ? -1 : 1
  );
}
