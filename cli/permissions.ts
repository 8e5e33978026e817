/**
 * The one permission table. `deno.json` `"permissions"` is the source of
 * truth: tasks run entrypoints with `-P=<set>`, `deno task build` compiles
 * with the same `-P=<set>`, the audit and `threat-model/permissions.md` read
 * it, and every entrypoint checks at start-up that it holds nothing more.
 *
 * @module
 */
import config from "../deno.json" with { type: "json" };
import { PermissionSetError } from "../core/mod.ts";

/** The permission kinds Deno knows. */
export const PERMISSION_KINDS = [
  "read",
  "write",
  "net",
  "env",
  "run",
  "sys",
  "ffi",
  "import",
] as const;
/** One permission kind. */
export type PermissionKind = typeof PERMISSION_KINDS[number];

/** A grant: nothing, everything, or a scoped list. */
export type Grant = false | true | readonly string[];

/** A permission set after normalisation: every kind present. */
export type PermissionSet = Readonly<Record<PermissionKind, Grant>> & {
  readonly denyImport: readonly string[];
};

type RawGrant = boolean | string[] | { allow?: boolean | string[]; deny?: unknown };

function normaliseGrant(raw: RawGrant | undefined): Grant {
  if (raw === undefined || raw === false) return false;
  if (raw === true) return true;
  if (Array.isArray(raw)) return raw.length === 0 ? false : raw;
  return normaliseGrant(raw.allow);
}

/** The raw table as written in deno.json. */
export function rawTable(): Record<string, Record<string, RawGrant>> {
  return (config as unknown as {
    permissions: Record<string, Record<string, RawGrant>>;
  }).permissions;
}

/**
 * The task table as written in deno.json (`deno task <name>` command
 * lines). cli/ is the one module that imports deno.json; the audit, the
 * image build and the tests take the tasks from here.
 */
export function rawTasks(): Record<string, string> {
  const out: Record<string, string> = {};
  const tasks = (config as unknown as { tasks: Record<string, string | { command: string }> })
    .tasks;
  for (const [name, t] of Object.entries(tasks)) out[name] = typeof t === "string" ? t : t.command;
  return out;
}

/** The `"unstable"` feature list of deno.json (launchers pass it on). */
export function unstableFeatures(): readonly string[] {
  return (config as { unstable?: string[] }).unstable ?? [];
}

/** Normalises one raw set. */
export function normaliseSet(raw: Record<string, RawGrant>): PermissionSet {
  const out: Record<string, Grant> = {};
  for (const kind of PERMISSION_KINDS) out[kind] = normaliseGrant(raw[kind]);
  const imp = raw["import"];
  const denyImport = imp && typeof imp === "object" && !Array.isArray(imp) &&
      Array.isArray(imp.deny)
    ? imp.deny as string[]
    : [];
  return { ...(out as Record<PermissionKind, Grant>), denyImport };
}

/** Every set, normalised, by name. */
export function permissionTable(): ReadonlyMap<string, PermissionSet> {
  const table = new Map<string, PermissionSet>();
  for (const [name, raw] of Object.entries(rawTable())) {
    table.set(name, normaliseSet(raw));
  }
  return table;
}

/** One set by name; throws when the table has no such set. */
export function permissionSet(name: string): PermissionSet {
  const set = permissionTable().get(name);
  if (!set) throw new Error(`no permission set '${name}' in deno.json`);
  return set;
}

/**
 * Hosts Deno lets any program import code from unless denied; every set
 * denies them (a compiled binary must never load code at run time).
 */
export const DEFAULT_IMPORT_HOSTS = [
  "jsr.io:443",
  "deno.land:443",
  "esm.sh:443",
  "raw.esm.sh:443",
  "cdn.jsdelivr.net:443",
  "raw.githubusercontent.com:443",
  "gist.githubusercontent.com:443",
] as const;

/** Probes that show a grant outside a set, per kind. */
const SENTINELS: Record<PermissionKind, readonly string[]> = {
  read: ["/", "/etc/shadow", "/root", "/home", "/proc/self/environ", "/var"],
  write: ["/", "/etc", "/root", "/home", "/boot", "/var/tmp", "/usr"],
  net: ["127.0.0.1:22", "0.0.0.0:80", "localhost:443", "192.0.2.1:443"],
  env: ["PATH", "HOME", "AWS_SECRET_ACCESS_KEY", "PHASE_PROBE"],
  run: ["sh", "/bin/sh", "bash", "curl", "/usr/bin/env"],
  sys: ["hostname", "osRelease", "uid", "networkInterfaces", "loadavg"],
  ffi: ["/usr/lib/x86_64-linux-gnu/libc.so.6", "/lib/libc.so"],
  import: ["evil.example:443", "jsr.io:443", "deno.land:443"],
};

function descriptor(kind: PermissionKind, target?: string): Deno.PermissionDescriptor {
  switch (kind) {
    case "read":
    case "write":
    case "ffi":
      return target === undefined ? { name: kind } : { name: kind, path: target };
    case "net":
    case "import":
      return target === undefined ? { name: kind } : { name: kind, host: target };
    case "env":
      return target === undefined ? { name: kind } : { name: kind, variable: target };
    case "run":
      return target === undefined ? { name: kind } : { name: kind, command: target };
    case "sys":
      return target === undefined
        ? { name: kind }
        : { name: kind, kind: target as Deno.SysPermissionDescriptor["kind"] };
  }
}

/** Resolves a set's relative path against the directory of deno.json. */
export function resolveScope(entry: string, base: string): string {
  if (entry.startsWith("/")) return entry;
  const parts = (base.replace(/\/+$/, "") + "/" + entry).split("/");
  const out: string[] = [];
  for (const p of parts) {
    if (p === "" || p === ".") continue;
    if (p === "..") out.pop();
    else out.push(p);
  }
  return "/" + out.join("/");
}

function within(
  target: string,
  scopes: readonly string[],
  kind: PermissionKind,
  base: string,
): boolean {
  for (const s of scopes) {
    if (kind === "read" || kind === "write" || kind === "ffi") {
      const abs = resolveScope(s, base);
      if (target === abs || target.startsWith(abs.endsWith("/") ? abs : abs + "/")) return true;
      if (abs === "/") return true;
    } else if (kind === "net" || kind === "import") {
      if (target === s || target.split(":")[0] === s) return true;
    } else if (target === s) {
      return true;
    }
  }
  return false;
}

/**
 * Lists what this process holds outside `set`: a kind granted wholesale
 * that the set scopes or denies, and sentinel targets granted outside the
 * set's scopes. Deno cannot enumerate grants, so sentinels stand in for
 * "anything else"; `-A` and unscoped flags are always caught.
 */
export function excessPermissions(
  set: PermissionSet,
  base: string,
  query: (d: Deno.PermissionDescriptor) => Deno.PermissionState = (d) =>
    Deno.permissions.querySync(d).state,
): string[] {
  const excess: string[] = [];
  for (const kind of PERMISSION_KINDS) {
    const grant = set[kind];
    if (grant === true) continue;
    if (query(descriptor(kind)) === "granted") {
      excess.push(`${kind} (all)`);
      continue;
    }
    for (const target of SENTINELS[kind]) {
      if (grant !== false && within(target, grant, kind, base)) continue;
      if (kind === "import" && set.denyImport.includes(target)) {
        if (query(descriptor(kind, target)) === "granted") {
          excess.push(`${kind} ${target}`);
        }
        continue;
      }
      if (query(descriptor(kind, target)) === "granted") {
        excess.push(`${kind} ${target}`);
      }
    }
  }
  return excess;
}

/** Directory of deno.json, from this module's URL. */
export function configDir(): string {
  return new URL("..", import.meta.url).pathname.replace(/\/$/, "");
}

/**
 * Start-up guard: throws {@link PermissionSetError} when this process holds
 * anything outside `name`'s set (TM-12: a compromised or misconfigured
 * component never runs with more than its set).
 */
export function assertPermissionSet(name: string): void {
  const excess = excessPermissions(permissionSet(name), configDir());
  if (excess.length > 0) throw new PermissionSetError(name, excess);
}
