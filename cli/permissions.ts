/**
 * The one permission table. `deno.json` `"permissions"` is the source of
 * truth: tasks run entrypoints with `-P=<set>`, `deno task build` compiles
 * with the same `-P=<set>`, the audit and `threat-model/permissions.md` read
 * it, and every entrypoint checks at start-up that it holds nothing more.
 *
 * @module
 */
import config from "../deno.json" with { type: "json" };
import { type FsScopes, PermissionSetError } from "../core/mod.ts";

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
 * The directories set `name` may read and write, as deno.json writes them:
 * what a refusal's hint lists (core's `explainRefusal` takes them).
 */
export function fsScopes(name: string): FsScopes {
  const set = permissionSet(name);
  return { set: name, read: set.read, write: set.write };
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

/**
 * Fixed probes per kind, beside those derived from the set itself
 * ({@link guardProbes}). Deno cannot list the grants a process holds, so
 * the guard asks about every place a widened set would most likely reach:
 * the root and every top-level folder with its usual children, the home
 * folder's secrets, common interpreters and network tools, well-known
 * variables and hosts, and every `sys` kind there is.
 */
const FIXED_PROBES: Record<PermissionKind, readonly string[]> = {
  read: [],
  write: [],
  ffi: [],
  net: [
    "127.0.0.1",
    "127.0.0.1:22",
    "localhost",
    "localhost:443",
    "0.0.0.0",
    "0.0.0.0:80",
    "[::1]",
    "192.0.2.1:443",
    "10.0.0.1",
    "169.254.169.254",
    "1.1.1.1",
    "8.8.8.8",
    "example.com",
    "example.com:443",
    "evil.example",
    "github.com",
    "google.com",
    "jsr.io",
    "deno.land",
    "registry.npmjs.org",
  ],
  env: [
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "SHELL",
    "PWD",
    "HOSTNAME",
    "LANG",
    "TERM",
    "TMPDIR",
    "SSH_AUTH_SOCK",
    "GNUPGHOME",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "GITHUB_TOKEN",
    "NPM_TOKEN",
    "DENO_AUTH_TOKENS",
    "DENO_DIR",
    "LD_PRELOAD",
    "LD_LIBRARY_PATH",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "http_proxy",
    "https_proxy",
    "ALL_PROXY",
    "NO_PROXY",
    "PHASE_PROBE",
    "JCO_DEBUG",
    "SOURCE_DATE_EPOCH",
    "DENORT_BIN",
  ],
  run: [
    "sh",
    "bash",
    "dash",
    "zsh",
    "busybox",
    "env",
    "python",
    "python3",
    "perl",
    "ruby",
    "node",
    "deno",
    "curl",
    "wget",
    "nc",
    "ncat",
    "socat",
    "ssh",
    "scp",
    "sudo",
    "su",
    "dd",
    "mount",
    "tor",
    "kexec",
    "reboot",
    "udhcpc",
  ],
  sys: [
    "hostname",
    "osRelease",
    "osUptime",
    "loadavg",
    "networkInterfaces",
    "systemMemoryInfo",
    "uid",
    "gid",
    "cpus",
    "homedir",
    "statfs",
    "getPriority",
    "setPriority",
    "userInfo",
  ],
  import: ["evil.example:443", "jsr.io:443", "deno.land:443", "esm.sh:443", "127.0.0.1:9"],
};

/** Ports probed on every probed host. */
const NET_PORTS = [22, 53, 80, 443, 8080, 9050] as const;

/** Top-level folders and their usual children: path probes for read, write and ffi. */
const FIXED_PATHS = [
  "/",
  "/bin",
  "/boot",
  "/dev",
  "/etc",
  "/etc/shadow",
  "/etc/ssh",
  "/etc/phase-guard-probe",
  "/home",
  "/lib",
  "/lib64",
  "/media",
  "/mnt",
  "/opt",
  "/proc",
  "/root",
  "/root/.ssh",
  "/run",
  "/run/user",
  "/sbin",
  "/srv",
  "/sys",
  "/tmp",
  "/tmp/phase-guard-probe",
  "/usr",
  "/usr/bin",
  "/usr/lib",
  "/usr/local",
  "/usr/share",
  "/var",
  "/var/lib",
  "/var/log",
  "/var/tmp",
  "/var/cache",
  "/usr/lib/x86_64-linux-gnu/libc.so.6",
  "/lib/libc.so",
];

function parentOf(path: string): string {
  const cut = path.replace(/\/+$/, "").lastIndexOf("/");
  return cut <= 0 ? "/" : path.slice(0, cut);
}

/**
 * Every target the guard queries, per kind: the fixed probes, plus what
 * lies just outside each of the set's own grants (its parent folder, a
 * sibling beside it, a sibling of its parent), the repository and its
 * parent, and the home folder's secrets; for `run`, the absolute paths of
 * the probed programs.
 */
export function guardProbes(
  set: PermissionSet,
  base: string,
  home: string | undefined = homeDir(),
): Record<PermissionKind, string[]> {
  const paths = new Set<string>(FIXED_PATHS);
  const add = (p: string) => paths.add(p);
  add(base);
  add(parentOf(base));
  add(`${base}/.phase-guard-probe`);
  add(`${base}/.git`);
  for (const dir of [".phase", ".phase/keys", ".phase/trust", ".phase/provider", ".phase/wasm"]) {
    add(`${base}/${dir}`);
  }
  if (home) { for (const h of [home, `${home}/.ssh`, `${home}/.gnupg`, `${home}/.aws`]) add(h); }
  for (const kind of ["read", "write", "ffi"] as const) {
    const g = set[kind];
    if (!Array.isArray(g)) continue;
    for (const s of g) {
      const abs = resolveScope(s, base);
      add(parentOf(abs));
      add(`${parentOf(abs)}/phase-guard-sibling`);
      add(`${abs}-phase-guard-sibling`);
      add(parentOf(parentOf(abs)));
    }
  }
  const run = [...FIXED_PROBES.run];
  for (const p of FIXED_PROBES.run) {
    for (const dir of ["/bin", "/usr/bin", "/sbin", "/usr/sbin", "/usr/local/bin"]) {
      run.push(`${dir}/${p}`);
    }
  }
  return {
    read: [...paths],
    write: [...paths],
    ffi: [...paths],
    // A grant may name a port: ask for each host on the usual ones too.
    net: FIXED_PROBES.net.flatMap((h) =>
      /:\d+$/.test(h) ? [h] : [h, ...NET_PORTS.map((p) => `${h}:${p}`)]
    ),
    env: [...FIXED_PROBES.env],
    run,
    sys: [...FIXED_PROBES.sys],
    import: [...FIXED_PROBES.import],
  };
}

function homeDir(): string | undefined {
  // Reading HOME needs env; a set without it falls back to /root only.
  try {
    if (Deno.permissions.querySync({ name: "env", variable: "HOME" }).state === "granted") {
      return Deno.env.get("HOME");
    }
  } catch { /* not in Deno */ }
  return undefined;
}

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
      if (target === s || target.replace(/:\d+$/, "") === s) return true;
    } else if (kind === "run") {
      // Deno resolves a program name on PATH: a grant of `kexec` covers /sbin/kexec.
      if (target === s || target.endsWith("/" + s) || s.endsWith("/" + target)) return true;
    } else if (target === s) {
      return true;
    }
  }
  return false;
}

/**
 * Lists what this process holds outside `set`, for every kind: a kind
 * granted wholesale that the set scopes or denies, and each probe of
 * {@link guardProbes} granted outside the set's scopes (TM-12, issue 18
 * #8). `-A` and unscoped flags are always caught; a scoped extra grant is
 * caught when it covers a probe: the root, a top-level folder or its usual
 * children, what lies just outside the set's own grants, the home
 * folder's secrets, a probed host, variable or program, any `sys` kind.
 */
export function excessPermissions(
  set: PermissionSet,
  base: string,
  query: (d: Deno.PermissionDescriptor) => Deno.PermissionState = (d) =>
    Deno.permissions.querySync(d).state,
): string[] {
  const excess: string[] = [];
  const probes = guardProbes(set, base);
  for (const kind of PERMISSION_KINDS) {
    const grant = set[kind];
    if (grant === true) continue;
    if (query(descriptor(kind)) === "granted") {
      excess.push(`${kind} (all)`);
      continue;
    }
    for (const target of probes[kind]) {
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
  const set = permissionSet(name);
  const excess = excessPermissions(set, configDir());
  if (excess.length > 0) throw new PermissionSetError(name, excess);
  revokeUnheld(set);
}

/**
 * Revokes, for good, every kind the set does not hold at all (TM-12):
 * Deno cannot list scoped grants, so an extra grant no probe found (a
 * variable or host nobody guessed) is dropped rather than kept.
 */
export function revokeUnheld(set: PermissionSet): void {
  for (const kind of PERMISSION_KINDS) {
    if (kind === "import" || set[kind] !== false) continue;
    Deno.permissions.revokeSync(descriptor(kind));
  }
}

/** The version of Phase this is (deno.json `version`). */
export function phaseVersion(): string {
  return (config as { version?: string }).version ?? "0.0.0";
}
