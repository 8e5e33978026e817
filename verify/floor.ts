/**
 * The rollback floor: the highest version accepted per channel/arch on this
 * machine, kept in `<state>/floor.json` (TM-02). Reading needs only read
 * permission (the verify entrypoint); raising it needs write and a
 * `Verified<Manifest>` (the fetcher and the boot chain).
 *
 * @module
 */
import { type Logger, UsageError } from "../core/mod.ts";
import { VerifyError } from "./errors.ts";
import { canonicalArch, isChannel, type Manifest } from "./manifest.ts";
import { isJsonObject, parseStrictJson } from "./strict_json.ts";
import { assertVerified, type Verified } from "./_verified.ts";
import { compareVersions, isVersion } from "./version.ts";
import { checkFloor } from "./verify.ts";

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

/** What {@link recordFloor} did to the floor of one channel/arch. */
export interface FloorChange {
  /** The floor file. */
  readonly file: string;
  /** The floor before (none: no floor was recorded). */
  readonly previous?: string;
  /** The floor now in force. */
  readonly current: string;
}

/**
 * Raises the floor to the verified manifest's version (never lowers it) and
 * says what it was and what it is now.
 */
export async function recordFloor(
  stateDir: string,
  verified: Verified<Manifest>,
): Promise<FloorChange> {
  const m = assertVerified(verified).value;
  const floors = await readFloors(stateDir);
  const key = floorKey(m.channel, m.arch);
  const file = `${stateDir}/${FLOOR_FILE}`;
  const previous = Object.hasOwn(floors, key) ? floors[key] : undefined;
  if (previous !== undefined && compareVersions(m.version, previous) <= 0) {
    return { file, previous, current: previous };
  }
  floors[key] = m.version;
  await writeFloors(stateDir, floors);
  return { file, previous, current: m.version };
}

/**
 * Reads the floor of the manifest's own channel/arch in `stateDir` and
 * refuses a version below it (TM-02). The refusal names the floor file and
 * how to inspect it, so a user is never left guessing where the floor came
 * from. Returns the floor that applied.
 */
export async function enforceFloor(
  stateDir: string,
  verified: Verified<Manifest>,
): Promise<string | undefined> {
  const m = assertVerified(verified).value;
  const floor = await readFloor(stateDir, m.channel, m.arch);
  try {
    checkFloor(verified, floor);
  } catch (err) {
    if (!(err instanceof VerifyError)) throw err;
    throw new VerifyError(
      "E_ROLLBACK",
      `${err.message}; the floor of ${floorKey(m.channel, m.arch)} is in ${stateDir}/${FLOOR_FILE}`,
      {
        cause: err,
        hint: `sign a release with a version of at least ${floor}; ` +
          `'deno task floor show --state ${stateDir}' shows the floor, and only ` +
          `'deno task floor reset' (typed on purpose) removes it`,
      },
    );
  }
  return floor;
}

/** One channel/arch floor, as {@link floorShow} lists it. */
export interface FloorEntry {
  /** Release channel. */
  readonly channel: string;
  /** Canonical arch. */
  readonly arch: string;
  /** The lowest version accepted. */
  readonly version: string;
}

/** The floors of one state directory. */
export interface FloorReport {
  /** The state directory. */
  readonly state: string;
  /** Its floor file. */
  readonly file: string;
  /** False when there is no floor file (no release was accepted there yet). */
  readonly exists: boolean;
  /** Every floor in it, sorted by channel/arch. */
  readonly floors: readonly FloorEntry[];
}

/**
 * The state directory of a floor: `dir` itself, or `dir/state` when `dir` is
 * a fetch cache root (the fetcher keeps its floor in `<cache>/state`).
 */
export async function floorStateDir(dir: string): Promise<string> {
  const trimmed = dir.length > 1 ? dir.replace(/\/+$/, "") : dir;
  for (const d of [trimmed, `${trimmed}/state`]) {
    try {
      if ((await Deno.lstat(`${d}/${FLOOR_FILE}`)).isFile) return d;
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) break;
    }
  }
  return trimmed;
}

/**
 * Lists the rollback floors kept in each state directory (a fetch cache
 * root counts as its `state/` folder). Read-only.
 *
 * @example
 * ```ts ignore
 * for (const r of await floorShow(["./.cache/state"])) {
 *   for (const f of r.floors) console.log(r.file, f.channel, f.arch, f.version);
 * }
 * ```
 */
export async function floorShow(stateDirs: readonly string[]): Promise<FloorReport[]> {
  const out: FloorReport[] = [];
  for (const dir of stateDirs) {
    const state = await floorStateDir(dir);
    const file = `${state}/${FLOOR_FILE}`;
    let exists = true;
    try {
      await Deno.lstat(file);
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) {
        throw new VerifyError("E_IO", `cannot read ${file}: ${(err as Error).message}`, {
          cause: err,
          hint: "a command reads only the directories its permission set lists",
        });
      }
      exists = false;
    }
    const floors = exists ? await readFloors(state) : {};
    const entries = Object.entries(floors).sort(([a], [b]) => a < b ? -1 : a > b ? 1 : 0)
      .map(([key, version]) => {
        const cut = key.indexOf("/");
        return { channel: key.slice(0, cut), arch: key.slice(cut + 1), version };
      });
    out.push({ state, file, exists, floors: entries });
  }
  return out;
}

/** What {@link floorReset} removed. */
export interface FloorResetResult {
  /** The floor file. */
  readonly file: string;
  /** Release channel. */
  readonly channel: string;
  /** Canonical arch. */
  readonly arch: string;
  /** The floor that was removed. */
  readonly previous: string;
}

/**
 * Removes the rollback floor of one channel/arch (TM-02 is then off for it
 * until the next accepted release sets a new floor). The entry is deleted,
 * never lowered, and the removal is logged as a warning with the old value,
 * so a reset always leaves a trace. Throws a usage error when there is no
 * such floor: nothing is changed then.
 *
 * @example
 * ```ts ignore
 * const r = await floorReset("./.cache/state", "stable", "amd64", consoleLogger("floor"));
 * console.log(`removed ${r.previous} from ${r.file}`);
 * ```
 */
export async function floorReset(
  stateDir: string,
  channel: string,
  arch: string,
  logger: Logger,
): Promise<FloorResetResult> {
  if (!isChannel(channel)) {
    throw new UsageError(`invalid channel '${channel}'`, "a channel is [a-z0-9][a-z0-9-]{0,31}");
  }
  const canonical = canonicalArch(arch);
  if (!canonical) throw new UsageError(`unknown arch '${arch}'`, "amd64 or arm64 (or an alias)");
  const state = await floorStateDir(stateDir);
  const file = `${state}/${FLOOR_FILE}`;
  const floors = await readFloors(state);
  const key = floorKey(channel, canonical);
  if (!Object.hasOwn(floors, key)) {
    throw new UsageError(
      `no rollback floor for ${key} in ${file}: nothing to reset`,
      `'deno task floor show --state ${stateDir}' lists the floors there`,
    );
  }
  const previous = floors[key];
  delete floors[key];
  await writeFloors(state, floors);
  logger.warn("rollback_floor_reset", {
    file,
    channel,
    arch: canonical,
    previous,
    threat: "TM-02",
    note: `releases of ${key} below ${previous} are accepted again until a fetch sets a new floor`,
  });
  return { file, channel, arch: canonical, previous };
}

/** Writes the floors atomically (temp file, fsync, rename), mode 0600. */
async function writeFloors(stateDir: string, floors: Record<string, string>): Promise<void> {
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
