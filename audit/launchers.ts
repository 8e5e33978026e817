/**
 * Installed launchers and systemd units, checked against the table.
 *
 * - A launcher (`/usr/bin/phase-<name>` of the Debian package, or the
 *   seed's) is a shell script whose last line execs Deno with `--allow-*`
 *   flags: they are read back into the shape `deno compile` embeds and
 *   compared with the set exactly like a compiled binary (compiled.ts).
 * - A unit's writable directories (StateDirectory=, CacheDirectory=,
 *   RuntimeDirectory=, LogsDirectory=, ReadWritePaths=, BindPaths=, a
 *   TemporaryFileSystem= not mounted ro, a private /tmp) and the system
 *   paths its launcher's set writes must agree: a directory the unit makes
 *   writable that the set cannot write widens the sandbox for nothing; a
 *   system path the set writes that the unit leaves read-only breaks at run
 *   time. `--root` must be readable and `--state` writable by the set.
 *
 * @module
 */
import { type PermissionSet, permissionTable, resolveScope } from "../cli/mod.ts";
import { compareEmbedded, type EmbeddedPermissions } from "./compiled.ts";
import { binaries, type BinarySpec } from "./entrypoints.ts";
import type { Finding } from "./static.ts";
import { NO_DENO_DIR } from "../images/mod.ts";

/** Where the package's bundles live; launcher scopes resolve against it. */
export const INSTALLED_ROOT = "/usr/lib/phase";
/** Largest launcher script read, in bytes. */
export const MAX_LAUNCHER_BYTES = 64 * 1024;
/** Largest unit file read, in bytes. */
export const MAX_UNIT_BYTES = 64 * 1024;

/** Splits a POSIX shell line into words (single and double quotes, no expansion). */
export function shellWords(line: string): string[] {
  const words: string[] = [];
  let cur = "";
  let inWord = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (c === "'") {
      const end = line.indexOf("'", i + 1);
      if (end < 0) throw new Error("unterminated quote");
      cur += line.slice(i + 1, end);
      i = end;
      inWord = true;
    } else if (c === '"') {
      const end = line.indexOf('"', i + 1);
      if (end < 0) throw new Error("unterminated quote");
      cur += line.slice(i + 1, end);
      i = end;
      inWord = true;
    } else if (c === " " || c === "\t") {
      if (inWord) words.push(cur);
      cur = "";
      inWord = false;
    } else {
      cur += c;
      inWord = true;
    }
  }
  if (inWord) words.push(cur);
  return words;
}

/**
 * Reads a launcher's `exec <deno> run ...` line into the shape a compiled
 * binary embeds (`allow_<kind>`: null = not granted, [] = all, list =
 * scoped; `deny_import`; `prompt`), plus the flags no set may hold.
 */
export function readLauncher(
  text: string,
): {
  embedded: EmbeddedPermissions;
  stray: string[];
  bundle?: string;
  denoDir?: string;
} | undefined {
  const line = text.split("\n").find((l) => l.startsWith("exec "));
  const denoDir = /^export DENO_DIR=(\S+)/m.exec(text)?.[1];
  if (!line) return undefined;
  const words = shellWords(line.slice("exec ".length));
  const embedded: EmbeddedPermissions = { prompt: true, deny_import: null };
  for (const k of ["read", "write", "net", "env", "run", "sys", "ffi"]) {
    embedded[`allow_${k}`] = null;
  }
  const stray: string[] = [];
  let bundle: string | undefined;
  for (const w of words.slice(2)) {
    if (w === "--no-prompt") embedded.prompt = false;
    else if (w === '"$@"' || w === "$@") continue;
    const m = /^--allow-(read|write|net|env|run|sys|ffi)(?:=(.*))?$/.exec(w);
    if (m) {
      embedded[`allow_${m[1]}`] = m[2] === undefined ? [] : m[2].split(",");
    } else if (w.startsWith("--deny-import=")) {
      embedded.deny_import = w.slice("--deny-import=".length).split(",");
    } else if (/^(-A|--allow-all|--allow-import|--unstable-ffi|--allow-hrtime|-[RWNES]$)/.test(w)) {
      stray.push(w);
    } else if (!w.startsWith("-") && bundle === undefined && w.endsWith(".js")) {
      bundle = w;
    }
  }
  return { embedded, stray, bundle, ...(denoDir ? { denoDir } : {}) };
}

/**
 * Checks every shipped binary's launcher under `tree` (an unpacked package:
 * `dpkg-deb -x phase_*.deb DIR`) against its set: present, exact grants,
 * `--no-prompt`, remote imports denied, its bundle present; and no
 * launcher the table does not know.
 */
export async function auditLaunchers(
  tree: string,
  table: ReadonlyMap<string, PermissionSet> = permissionTable(),
  specs: readonly BinarySpec[] = binaries(),
): Promise<Finding[]> {
  const f: Finding[] = [];
  const known = new Set(specs.map((b) => b.name));
  for (const b of specs) {
    const where = `/usr/bin/${b.name}`;
    let text: string;
    try {
      const bytes = await Deno.readFile(`${tree}${where}`);
      if (bytes.length > MAX_LAUNCHER_BYTES) {
        f.push({ where, rule: "launcher", detail: `larger than ${MAX_LAUNCHER_BYTES} bytes` });
        continue;
      }
      text = new TextDecoder().decode(bytes);
    } catch {
      f.push({ where, rule: "launcher", detail: "missing from the package" });
      continue;
    }
    const parsed = readLauncher(text);
    if (!parsed) {
      f.push({ where, rule: "launcher", detail: "no 'exec' line" });
      continue;
    }
    for (const s of parsed.stray) {
      f.push({ where, rule: "launcher", detail: `grants outside the table: ${s}` });
    }
    const set = table.get(b.set);
    if (!set) {
      f.push({ where, rule: "launcher", detail: `unknown set '${b.set}'` });
      continue;
    }
    f.push(
      ...compareEmbedded(where, parsed.embedded, set, INSTALLED_ROOT).map((x) => ({
        ...x,
        rule: "launcher",
      })),
    );
    // TM-12: Deno runs V8 code from DENO_DIR's cache without asking who wrote it.
    if (parsed.denoDir !== NO_DENO_DIR) {
      f.push({
        where,
        rule: "launcher",
        detail: `DENO_DIR is ${
          parsed.denoDir ?? "not set"
        }: an installed launcher keeps no compile cache (DENO_DIR=${NO_DENO_DIR}), since another process could write it`,
      });
    }
    if (!parsed.bundle) f.push({ where, rule: "launcher", detail: "runs no bundle" });
    else {
      try {
        await Deno.stat(`${tree}${parsed.bundle}`);
      } catch {
        f.push({ where, rule: "launcher", detail: `its bundle ${parsed.bundle} is missing` });
      }
    }
  }
  try {
    for await (const e of Deno.readDir(`${tree}/usr/bin`)) {
      if (e.name.startsWith("phase-") && !known.has(e.name)) {
        f.push({
          where: `/usr/bin/${e.name}`,
          rule: "launcher",
          detail: "not a shipped binary of the table",
        });
      }
    }
  } catch { /* reported per binary above */ }
  return f;
}

/** The `[Service]` settings of a unit file: key -> values in order. */
export function unitSettings(text: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  let section = "";
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (!line || line.startsWith("#") || line.startsWith(";")) continue;
    const s = /^\[(.+)\]$/.exec(line);
    if (s) {
      section = s[1];
      continue;
    }
    if (section !== "Service") continue;
    const at = line.indexOf("=");
    if (at < 0) continue;
    const key = line.slice(0, at).trim();
    out.set(key, [...(out.get(key) ?? []), line.slice(at + 1).trim()]);
  }
  return out;
}

function under(path: string, dirs: readonly string[]): boolean {
  return dirs.some((d) => path === d || path.startsWith(d + "/"));
}

/**
 * Checks one unit against the set of the launcher its `ExecStart=` runs:
 * the unit's writable directories and the set's absolute write grants
 * agree both ways, `--root` lies in the set's reads and `--state` in its
 * writes and in the unit's writable directories.
 */
export function auditUnit(
  name: string,
  text: string,
  table: ReadonlyMap<string, PermissionSet> = permissionTable(),
  specs: readonly BinarySpec[] = binaries(),
): Finding[] {
  const f: Finding[] = [];
  const add = (detail: string) => f.push({ where: name, rule: "unit", detail });
  const s = unitSettings(text);
  const exec = s.get("ExecStart")?.at(-1);
  if (!exec) return [{ where: name, rule: "unit", detail: "no ExecStart=" }];
  const words = shellWords(exec.replace(/^[-@:+!]+/, ""));
  const bin = words[0]?.replace(/^\/usr\/bin\//, "");
  const spec = specs.find((b) => b.name === bin);
  const set = spec && table.get(spec.set);
  if (!spec || !set) {
    add(`ExecStart= runs ${words[0]}, not a launcher of the table`);
    return f;
  }
  const unitWords = (key: string) =>
    (s.get(key) ?? []).flatMap((v) => v.split(/\s+/)).filter(Boolean);
  const list = (key: string, prefix: string) =>
    unitWords(key).map((d) => d.startsWith("/") ? d : `${prefix}/${d.split(":")[0]}`);
  const writable = [
    ...list("StateDirectory", "/var/lib"),
    ...list("CacheDirectory", "/var/cache"),
    ...list("RuntimeDirectory", "/run"),
    ...list("LogsDirectory", "/var/log"),
    ...list("ReadWritePaths", "").map((p) => p.replace(/^[-+]/, "")),
    // BindPaths=[-]SRC[:DST[:OPTIONS]]: DST (or SRC) is mounted writable.
    ...unitWords("BindPaths").map((w) => {
      const [src, dst] = w.replace(/^-/, "").split(":");
      return dst || src;
    }),
    // TemporaryFileSystem=PATH[:OPTIONS]: a writable tmpfs unless mounted ro.
    ...unitWords("TemporaryFileSystem").filter((w) => !/:(.*,)?ro(,|$)/.test(w)).map((w) =>
      w.split(":")[0]
    ),
  ];
  const privateTmp = (s.get("PrivateTmp") ?? []).at(-1) === "yes";
  const strict = (s.get("ProtectSystem") ?? []).at(-1) === "strict";
  if (!strict) add("ProtectSystem= is not strict: the whole file system is writable");
  const writes = Array.isArray(set.write)
    ? set.write.filter((p) => p.startsWith("/")).map((p) => resolveScope(p, INSTALLED_ROOT))
    : [];
  const reads = Array.isArray(set.read)
    ? set.read.map((p) => resolveScope(p, INSTALLED_ROOT))
    : set.read === true
    ? ["/"]
    : [];
  for (const d of writable) {
    if (!under(d, writes)) {
      add(`makes ${d} writable, but set '${spec.set}' writes no such path`);
    }
  }
  for (const w of writes) {
    const ok = under(w, writable) || (privateTmp && under(w, ["/tmp", "/var/tmp"]));
    if (!ok) add(`set '${spec.set}' writes ${w}, which the unit leaves read-only`);
  }
  const flag = (n: string) => {
    const i = words.indexOf(n);
    return i >= 0 ? words[i + 1] : undefined;
  };
  const root = flag("--root");
  if (root && !under(root, reads)) add(`--root ${root} is outside set '${spec.set}''s reads`);
  const state = flag("--state");
  if (state) {
    if (!under(state, writes)) add(`--state ${state} is outside set '${spec.set}''s writes`);
    if (!under(state, writable)) add(`--state ${state} is not writable in the unit`);
  }
  return f;
}
