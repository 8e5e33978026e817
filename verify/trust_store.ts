/**
 * The trust versions a device accepted, kept beside the rollback floor:
 * `<state>/trust/<version>.json` (the exact bytes of each accepted step)
 * and `<state>/trust-floor.json` (the trust-version floor, TM-09). On every
 * start the chain is walked again from the pinned trust through these
 * files, so what is on disk is re-verified, never taken on faith, and a
 * deleted step file cannot take the device back to an older trust.
 *
 * @module
 */
import { readFileCapped, writeFileAtomic } from "../core/mod.ts";
import { VerifyError } from "./errors.ts";
import { isJsonObject, parseStrictJson } from "./strict_json.ts";
import { MAX_TRUST_BYTES, MAX_TRUST_VERSION, type Trust } from "./trust.ts";
import { type TrustStep, walkTrustChain } from "./trust_chain.ts";

/** Directory of accepted trust versions inside a state directory. */
export const TRUST_STATE_DIR = "trust";
/** File of the trust-version floor inside a state directory. */
export const TRUST_FLOOR_FILE = "trust-floor.json";
/** Largest trust-version floor file read, in bytes. */
export const MAX_TRUST_FLOOR_BYTES = 1024;
/** Most stored versions re-walked at start (far above any real chain; bounds a planted one). */
export const MAX_STORED_TRUST_VERSIONS = 4096;

/** The trust-version floor of `stateDir`, or `undefined` when none was recorded. */
export async function readTrustFloor(stateDir: string): Promise<number | undefined> {
  const path = `${stateDir}/${TRUST_FLOOR_FILE}`;
  let bytes: Uint8Array;
  try {
    bytes = await readFileCapped(path, MAX_TRUST_FLOOR_BYTES);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return undefined;
    throw new VerifyError("E_IO", `cannot read the trust-version floor ${path}`, {
      cause: err,
      hint: "a command reads only the directories its permission set lists",
    });
  }
  let v: unknown;
  try {
    const doc = parseStrictJson(bytes);
    v = isJsonObject(doc) ? doc.version : undefined;
  } catch { /* reported below */ }
  if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 1 || v > MAX_TRUST_VERSION) {
    throw new VerifyError("E_IO", `corrupt trust-version floor ${path}`, {
      hint: "refusing to guess: restore the file or remove it deliberately",
    });
  }
  return v;
}

/** The newest trust a device reached, re-verified from its pinned trust. */
export interface StoredTrust {
  /** The newest trust whose chain from the pinned one verifies. */
  readonly trust: Trust;
  /** The trust-version floor in force (none: no rotation was ever accepted). */
  readonly floor?: number;
  /** The stored versions the walk accepted, oldest first (their exact bytes). */
  readonly steps: readonly TrustStep[];
}

/**
 * Re-walks the chain from `pinned` through `<state>/trust/<v>.json` and
 * returns the newest version reached. Throws `E_TRUST` when a stored step
 * does not verify, or when the walk ends below the trust-version floor (a
 * stored version was removed: the device never goes back to older trust).
 *
 * @example
 * ```ts ignore
 * const { trust } = await loadStoredTrust("./.cache/state", await loadTrust("trust.json"));
 * ```
 */
export async function loadStoredTrust(
  stateDir: string,
  pinned: Trust,
  now: Date = new Date(),
): Promise<StoredTrust> {
  const floor = await readTrustFloor(stateDir);
  if (floor === undefined || pinned.version >= floor) return { trust: pinned, floor, steps: [] };
  const walk = await walkTrustChain(pinned, async (v, max) => {
    try {
      return await readFileCapped(`${stateDir}/${TRUST_STATE_DIR}/${v}.json`, max);
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) return undefined;
      throw new VerifyError("E_IO", `cannot read ${stateDir}/${TRUST_STATE_DIR}/${v}.json`, {
        cause: err,
      });
    }
  }, { maxSteps: MAX_STORED_TRUST_VERSIONS, maxBytes: MAX_TRUST_BYTES, now, floor });
  return { trust: walk.trust, floor, steps: walk.steps };
}

/** What {@link recordTrustStep} did to the trust-version floor. */
export interface TrustFloorChange {
  /** The floor before (none: no rotation was accepted yet). */
  readonly previous?: number;
  /** The floor now. */
  readonly current: number;
}

/**
 * Persists an accepted step (its exact bytes, atomically, mode 0600) and
 * raises the trust-version floor to it; never lowers the floor.
 */
export async function recordTrustStep(
  stateDir: string,
  step: TrustStep,
): Promise<TrustFloorChange> {
  const v = step.trust.version;
  const dir = `${stateDir}/${TRUST_STATE_DIR}`;
  await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
  await writeFileAtomic(`${dir}/${v}.json`, step.bytes, { mode: 0o600 });
  const previous = await readTrustFloor(stateDir);
  if (previous !== undefined && previous >= v) return { previous, current: previous };
  const body = new TextEncoder().encode(JSON.stringify({ version: v }) + "\n");
  await writeFileAtomic(`${stateDir}/${TRUST_FLOOR_FILE}`, body, { mode: 0o600 });
  return { previous, current: v };
}
