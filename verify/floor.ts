/**
 * The rollback floor: the highest version accepted per channel/arch on this
 * machine, kept in `<state>/floor.json` (TM-02). Reading needs only read
 * permission (the verify entrypoint); raising it needs write and a
 * `Verified<Manifest>` (the fetcher and the boot chain).
 *
 * @module
 */
import { VerifyError } from "./errors.ts";
import { canonicalArch, type Manifest } from "./manifest.ts";
import { isJsonObject, parseStrictJson } from "./strict_json.ts";
import { assertVerified, type Verified } from "./_verified.ts";
import { compareVersions, isVersion } from "./version.ts";

/** File name of the floor inside a state directory. */
export const FLOOR_FILE = "floor.json";
/** Largest floor file read, in bytes. */
export const MAX_FLOOR_BYTES = 64 * 1024;

async function readFloors(stateDir: string): Promise<Record<string, string>> {
  let bytes: Uint8Array;
  try {
    const f = await Deno.open(`${stateDir}/${FLOOR_FILE}`);
    try {
      const info = await f.stat();
      if (info.size > MAX_FLOOR_BYTES) {
        throw new VerifyError("E_IO", `${stateDir}/${FLOOR_FILE} exceeds ${MAX_FLOOR_BYTES} bytes`);
      }
      bytes = new Uint8Array(info.size);
      let off = 0;
      while (off < bytes.length) {
        const n = await f.read(bytes.subarray(off));
        if (n === null) break;
        off += n;
      }
      bytes = bytes.subarray(0, off);
    } finally {
      f.close();
    }
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return Object.create(null);
    if (err instanceof VerifyError) throw err;
    throw new VerifyError("E_IO", `cannot read the rollback floor: ${(err as Error).message}`, {
      cause: err,
    });
  }
  let doc;
  try {
    doc = parseStrictJson(bytes);
  } catch (err) {
    throw new VerifyError("E_IO", `corrupt rollback floor ${stateDir}/${FLOOR_FILE}`, {
      cause: err,
      hint: "refusing to guess: restore the file or remove it deliberately",
    });
  }
  if (!isJsonObject(doc)) throw new VerifyError("E_IO", "corrupt rollback floor");
  const out: Record<string, string> = Object.create(null);
  for (const [k, v] of Object.entries(doc)) {
    if (typeof v === "string" && isVersion(v)) out[k] = v;
  }
  return out;
}

/**
 * The key of a channel/arch in the floor file. Every read and write goes
 * through here: the arch is canonicalised, so `x86_64` and `amd64` share one
 * floor (TM-02: an alias must not find an empty floor and skip the check).
 */
export function floorKey(channel: string, arch: string): string {
  return `${channel}/${canonicalArch(arch) ?? arch}`;
}

/** The floor for channel/arch (an alias counts as its canonical arch), or `undefined`. */
export async function readFloor(
  stateDir: string,
  channel: string,
  arch: string,
): Promise<string | undefined> {
  const floors = await readFloors(stateDir);
  const key = floorKey(channel, arch);
  return Object.hasOwn(floors, key) ? floors[key] : undefined;
}

/** Raises the floor to the verified manifest's version (never lowers it). */
export async function recordFloor(
  stateDir: string,
  verified: Verified<Manifest>,
): Promise<void> {
  const m = assertVerified(verified).value;
  const floors = await readFloors(stateDir);
  const key = floorKey(m.channel, m.arch);
  if (floors[key] !== undefined && compareVersions(m.version, floors[key]) <= 0) return;
  floors[key] = m.version;
  await Deno.mkdir(stateDir, { recursive: true });
  const tmp = `${stateDir}/.${FLOOR_FILE}.${crypto.randomUUID()}.tmp`;
  const f = await Deno.open(tmp, { write: true, createNew: true, mode: 0o600 });
  try {
    await f.write(new TextEncoder().encode(JSON.stringify(floors, null, 2) + "\n"));
    await f.sync();
  } finally {
    f.close();
  }
  await Deno.rename(tmp, `${stateDir}/${FLOOR_FILE}`);
}
