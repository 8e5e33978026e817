/**
 * Bounded file reads: every read has a byte cap (house style 5).
 *
 * @module
 */
import { PhaseError } from "./errors.ts";

/** Thrown when a file is larger than the cap. */
export class TooLargeError extends Error {
  /** The file and the cap it exceeded. */
  constructor(readonly path: string, readonly maxBytes: number) {
    super(`${path} is larger than ${maxBytes} bytes`);
    this.name = "TooLargeError";
  }
}

/** Thrown when a path to read is not a regular file (a FIFO, a device, a directory). */
export class NotRegularFileError extends Error {
  /** The path that is not a regular file. */
  constructor(readonly path: string) {
    super(`${path} is not a regular file`);
    this.name = "NotRegularFileError";
  }
}

/**
 * Reads at most `maxBytes` of `path`; throws {@link TooLargeError} beyond
 * and {@link NotRegularFileError} for anything but a regular file: opening
 * a FIFO blocks until a writer comes, forever if none does, and a device
 * may never end (issue 18 #17). Checked before the open and again on the
 * open file.
 */
export async function readFileCapped(
  path: string,
  maxBytes: number,
): Promise<Uint8Array> {
  if (!(await Deno.stat(path)).isFile) throw new NotRegularFileError(path);
  const f = await Deno.open(path, { read: true });
  try {
    if (!(await f.stat()).isFile) throw new NotRegularFileError(path);
    const buf = new Uint8Array(maxBytes + 1);
    let off = 0;
    while (off < buf.length) {
      const n = await f.read(buf.subarray(off));
      if (n === null) break;
      off += n;
    }
    if (off > maxBytes) throw new TooLargeError(path, maxBytes);
    return buf.slice(0, off);
  } finally {
    f.close();
  }
}

/**
 * What a permission set lets a command reach, passed in by the entrypoint
 * (core/ never reads deno.json; `cli/` has the table). `false`: nothing.
 */
export interface FsScopes {
  /** The set's name in deno.json (`fetch`, `serve`, ...). */
  readonly set: string;
  /** Directories the set may read, as deno.json writes them. */
  readonly read: boolean | readonly string[];
  /** Directories the set may write, as deno.json writes them. */
  readonly write: boolean | readonly string[];
}

/** One sentence: where `scopes` lets a command `access` files. */
export function describeScopes(scopes: FsScopes, access: "read" | "write"): string {
  const grant = scopes[access];
  const where = grant === true
    ? "anywhere"
    : grant === false || grant.length === 0
    ? "nowhere"
    : `only under ${grant.join(", ")}`;
  return `${scopes.set} may ${access} ${where} (permission set '${scopes.set}')`;
}

/** Explains a failed file access, naming the permission set (and, given, its directories) when it denied it. */
export function explainFsError(
  err: unknown,
  path: string,
  set: string,
  scopes?: FsScopes,
): string {
  if (err instanceof Deno.errors.NotCapable) {
    const access = fsRefusal(err)?.access ?? "read";
    return `${path} is outside the '${set}' permission set${
      scopes ? `: ${describeScopes(scopes, access)}` : " (see threat-model/permissions.md)"
    }`;
  }
  if (err instanceof Deno.errors.NotFound) return `${path} does not exist`;
  if (err instanceof TooLargeError || err instanceof NotRegularFileError) return err.message;
  return `${path}: ${err instanceof Error ? err.message : String(err)}`;
}

/** A file access refused by the permission set (`set`) or by the system (`system`: owner, mode). */
export interface FsRefusal {
  /** Who refused: Deno's permission set, or the operating system. */
  readonly by: "set" | "system";
  /** Reading or writing (mkdir, create, rename count as writing). */
  readonly access: "read" | "write";
  /** The path refused, as the process named it; undefined when Deno's message does not say. */
  readonly path: string | undefined;
}

/** Deepest cause chain followed by {@link fsRefusal}. */
const MAX_CAUSE_DEPTH = 8;

/** Operations in Deno's system-error messages (`...: mkdir '/x'`) that write. */
const WRITE_OPS =
  /^(mkdir|open|create|rename|remove|link|symlink|chmod|chown|truncate|write|copy|utime)/;

/**
 * Finds, in `err` or its `cause` chain, a file access Deno refused:
 * `NotCapable` (outside the permission set: "Requires read access to
 * \"/x\"") or `PermissionDenied` (the system's owner and mode bits).
 */
export function fsRefusal(err: unknown): FsRefusal | undefined {
  let e: unknown = err;
  for (let i = 0; i < MAX_CAUSE_DEPTH && e instanceof Error; i++, e = e.cause) {
    if (e instanceof Deno.errors.NotCapable) {
      const m = /Requires (read|write) access to "([^"]*)"/.exec(e.message);
      if (m) return { by: "set", access: m[1] as "read" | "write", path: m[2] };
      // net, env, run, sys: not a file access.
      if (/Requires \w+ access/.test(e.message)) return undefined;
      return { by: "set", access: "read", path: undefined };
    }
    if (e instanceof Deno.errors.PermissionDenied) {
      const m = /: (\w+) '([^']*)'/.exec(e.message);
      const op = m?.[1] ?? "";
      return { by: "system", access: WRITE_OPS.test(op) ? "write" : "read", path: m?.[2] };
    }
  }
  return undefined;
}

/** Strips `./`, repeated and trailing slashes, and `.` segments: paths as the user typed them, compared lexically. */
function lexical(path: string): string {
  const abs = path.startsWith("/");
  const parts = path.split("/").filter((p) => p !== "" && p !== ".");
  return (abs ? "/" : "") + parts.join("/");
}

/** True when `path` is `dir` or lies under it (lexically, as typed). */
function under(path: string, dir: string): boolean {
  const p = lexical(path);
  const d = lexical(dir);
  if (d === "" || d === "/") return d === "/" ? p.startsWith("/") : !p.startsWith("/");
  return p === d || p.startsWith(d + "/");
}

/** A path a user named on the command line: the flag (or `argument`) and its value. */
export interface NamedPath {
  /** `--cache`, `--root`, ... or `argument` for a positional path. */
  readonly flag: string;
  /** The path as typed. */
  readonly path: string;
}

/**
 * A file access the permission set (or the system) refused, explained:
 * exit status E_IO, the message names the path and the flag that gave it,
 * the hint lists the directories the set allows. Nothing was written
 * there: the refusal happens before the first byte.
 */
export class PathRefusedError extends PhaseError<"E_IO"> {
  /** The refusal. */
  readonly refusal: FsRefusal;
  /** The user's flag and path the refused access came from, when one matches. */
  readonly named: NamedPath | undefined;
  /** Builds the message and hint from the refusal, the set's directories and the user's path. */
  constructor(refusal: FsRefusal, scopes: FsScopes, named?: NamedPath, cause?: unknown) {
    const what = refusal.path ?? named?.path ?? "a path";
    const given = named
      ? `${named.flag === "argument" ? "" : named.flag + " "}${named.path}`
      : what;
    const allowed = describeScopes(scopes, refusal.access);
    const pass = named
      ? named.flag === "argument"
        ? "give a path inside one of them"
        : `pass ${named.flag} inside one of them`
      : "use paths inside one of them";
    const message = refusal.by === "set"
      ? `cannot ${refusal.access} ${what}: ${given} is outside the '${scopes.set}' permission set`
      : `cannot ${refusal.access} ${what}: the system refused (owner or mode of ${given})`;
    const hint = refusal.by === "set"
      ? `${allowed}; ${pass}. ${RELATIVE_PATHS_NOTE}`
      : `check its owner and mode (ls -ld ${what}); ${allowed}; ${pass}, in a directory this user may ${refusal.access}`;
    super("E_IO", message, { hint, cause });
    this.refusal = refusal;
    this.named = named;
  }
}

/** How relative paths resolve, said once for every hint. */
export const RELATIVE_PATHS_NOTE =
  "Relative paths resolve against the repository root (where 'deno task' runs), not your current folder.";

/**
 * Maps an error whose cause chain holds a refused file access to a
 * {@link PathRefusedError} (exit E_IO, the set's directories in the hint),
 * naming the user's flag whose path the refused one lies under. Returns
 * `err` unchanged when there is no such refusal, or when the system (not
 * the set) refused a path the user did not name.
 */
export function explainRefusal(
  err: unknown,
  scopes: FsScopes,
  named: readonly NamedPath[] = [],
): unknown {
  if (err instanceof PathRefusedError) return err;
  const refusal = fsRefusal(err);
  if (!refusal) return err;
  // The longest user path the refused one lies under (a file the command
  // makes inside --cache, or a temp file beside an output file).
  let best: NamedPath | undefined;
  if (refusal.path !== undefined) {
    for (const n of named) {
      const parent = n.path.includes("/") ? n.path.slice(0, n.path.lastIndexOf("/")) : ".";
      const hit = under(refusal.path, n.path) ||
        (lexical(refusal.path).split("/").length === lexical(n.path).split("/").length &&
          under(refusal.path, parent));
      if (hit && (!best || lexical(n.path).length > lexical(best.path).length)) best = n;
    }
  }
  if (refusal.by === "system" && !best) return err;
  return new PathRefusedError(refusal, scopes, best, err);
}

/**
 * Writes `data` to `path` atomically: a temp file in the same directory,
 * fsync, rename. `createNew` refuses to replace an existing file.
 */
export async function writeFileAtomic(
  path: string,
  data: Uint8Array,
  opts: { mode?: number; createNew?: boolean } = {},
): Promise<void> {
  const slash = path.lastIndexOf("/");
  const dir = slash >= 0 ? path.slice(0, slash) || "/" : ".";
  const tmp = `${dir}/.${path.slice(slash + 1)}.${crypto.randomUUID()}.tmp`;
  const f = await Deno.open(tmp, { write: true, createNew: true, mode: opts.mode ?? 0o644 });
  try {
    let off = 0;
    while (off < data.length) off += await f.write(data.subarray(off));
    await f.sync();
  } catch (err) {
    f.close();
    await Deno.remove(tmp).catch(() => {});
    throw err;
  }
  f.close();
  if (opts.createNew) {
    try {
      // link() fails if the target exists: no window where it is replaced.
      await Deno.link(tmp, path);
    } finally {
      await Deno.remove(tmp).catch(() => {});
    }
    return;
  }
  try {
    await Deno.rename(tmp, path);
  } catch (err) {
    // A failed rename (the name is a directory, a read-only mount) must not leave the temp file.
    await Deno.remove(tmp).catch(() => {});
    throw err;
  }
}
