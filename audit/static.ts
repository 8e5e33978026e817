/**
 * Static audit: the permission table checked against the rules of
 * threat-model/permissions.md, and each task checked against the table.
 *
 * @module
 */
import {
  DEFAULT_IMPORT_HOSTS,
  DEFAULT_PATHS,
  type Grant,
  KEY_DIRS,
  PERMISSION_KINDS,
  type PermissionSet,
  permissionTable,
  resolveScope,
  TRUST_DIRS,
} from "../cli/mod.ts";
import { createHash } from "node:crypto";
import { readFileCapped } from "../core/mod.ts";
import { DEV_TASK_SETS, type EntrypointTask, isDevTask } from "./entrypoints.ts";

/** One problem the audit found. */
export interface Finding {
  readonly where: string;
  readonly rule: string;
  readonly detail: string;
}

/** Sets used only in development, never compiled or shipped. */
export const DEV_SETS: Readonly<Record<string, string>> = {
  test: "the test runner: spawns entrypoints under their own sets, makes namespaces, runs QEMU",
};

/**
 * Every unscoped grant (`true`) a shipped set holds, with the reason. The
 * audit fails on an unscoped grant missing here, and on a stale entry.
 */
export const UNSCOPED_GRANTS: Readonly<Record<string, Readonly<Record<string, string>>>> = {
  serve: {
    net: "listens on a configurable address, multicasts mDNS, dials DHT peers",
    env: "libp2p's logger enumerates the whole environment (deno-facts.md)",
  },
  provider: { net: "queries the status of any provider URL it is given" },
  discover: {
    net: "mDNS multicast, DHT peers and manual URLs are not known in advance",
    env: "libp2p's logger enumerates the whole environment (deno-facts.md)",
  },
  fetch: { net: "providers and mirrors are discovered at run time" },
  node: {
    net: "listens on a configurable multiaddr, dials bootstrap and DHT peers",
    env: "libp2p's logger enumerates the whole environment (deno-facts.md)",
  },
  job: {
    net: "dials the node given by --peer and the DHT peers it learns",
    env: "libp2p's logger enumerates the whole environment (deno-facts.md)",
  },
  "fetch-private": { net: "providers and mirrors are discovered at run time" },
};

/** Sets whose write grants must all lie on tmpfs (TM-13). */
export const TMPFS_ONLY_WRITE: Readonly<Record<string, readonly string[]>> = {
  "fetch-private": ["/run/phase"],
};

/** Sets that must hold no network, no write, no subprocess. */
export const OFFLINE_READ_ONLY = ["verify", "receipt"] as const;

function scoped(g: Grant): readonly string[] {
  return Array.isArray(g) ? g : [];
}

// Relative scopes resolve against the repository; any fixed base compares them.
const BASE = "/repo";

/** True when path scope `a` and folder `b` overlap: equal, or one contains the other. */
function overlaps(a: string, b: string): boolean {
  const x = resolveScope(a, BASE), y = resolveScope(b, BASE);
  return x === y || x === "/" || y === "/" || x.startsWith(y + "/") || y.startsWith(x + "/");
}

/** True when scope list `g` grants `path` (the path itself or a folder above it). */
function covers(g: Grant, path: string): boolean {
  if (g === true) return true;
  const p = resolveScope(path, BASE);
  return scoped(g).some((s) => {
    const r = resolveScope(s, BASE);
    return r === "/" || p === r || p.startsWith(r + "/");
  });
}

/**
 * TM-12 (issue 18 #7): `deno` in a run grant is every permission: a child
 * `deno eval` or `deno run -A` holds whatever it asks for.
 */
export function runsDeno(set: PermissionSet): boolean {
  return set.run === true ||
    scoped(set.run).some((p) => p === "deno" || p.endsWith("/deno"));
}

/** The one set allowed to hold both `deno` and the network: the test runner. */
export const TEST_RUNNER_SET = "test";

/** Checks the table itself. */
export function auditTable(
  table: ReadonlyMap<string, PermissionSet> = permissionTable(),
): Finding[] {
  const f: Finding[] = [];
  const add = (where: string, rule: string, detail: string) => f.push({ where, rule, detail });
  for (const [name, set] of table) {
    if (set.ffi !== false) add(name, "no-ffi", "no set may hold ffi");
    if (PERMISSION_KINDS.filter((k) => k !== "import").every((k) => set[k] === true)) {
      add(name, "not-all", "no set may hold every permission");
    }
    for (const host of DEFAULT_IMPORT_HOSTS) {
      if (!set.denyImport.includes(host)) {
        add(name, "deny-import", `must deny code imports from ${host}`);
      }
    }
    if (set.import !== false) add(name, "deny-import", "must allow no import host");
    if (name in DEV_SETS) continue;
    for (const kind of ["read", "write", "run"] as const) {
      if (set[kind] === true) add(name, "scoped", `${kind} must be scoped to paths or programs`);
    }
    for (const kind of ["net", "env", "sys"] as const) {
      if (set[kind] === true && !UNSCOPED_GRANTS[name]?.[kind]) {
        add(name, "justified", `unscoped ${kind} has no written reason in audit/static.ts`);
      }
    }
    for (const [kind] of Object.entries(UNSCOPED_GRANTS[name] ?? {})) {
      if (set[kind as keyof PermissionSet] !== true) {
        add(name, "justified", `stale reason for unscoped ${kind}`);
      }
    }
    for (const p of [...scoped(set.read), ...scoped(set.write)]) {
      if (p.split("/").includes("..")) add(name, "no-dotdot", `scope '${p}' leaves its root`);
    }
    // Deno 2.9.6 grants paths under /proc, /sys and /dev only with
    // --allow-all: a scoped grant there is dead and misleads the reader.
    for (const p of [...scoped(set.read), ...scoped(set.write)]) {
      if (/^\/(proc|sys|dev)(\/|$)/.test(p)) {
        add(name, "no-pseudo-fs", `scope '${p}' can never be granted without --allow-all`);
      }
    }
    for (const p of scoped(set.write)) {
      if (p === "/" || p === "./" || p === ".") {
        add(name, "write-root", `write to '${p}' would let it change Phase itself`);
      }
    }
    // TM-12: a component that can reach the network cannot start programs,
    // and one that starts programs cannot reach the network.
    if (set.net !== false && set.run !== false) {
      add(name, "net-xor-run", "holds both net and run");
    }
  }
  for (const [name, set] of table) {
    // The test runner holds everything by design and is never shipped.
    if (set.net === false || name === TEST_RUNNER_SET) continue;
    // TM-12 (issue 18 #2): a networked component never sees a signing key
    // and never rewrites a trust file.
    if (set.read === true) add(name, "keys-offline", "holds net and unscoped read");
    for (const p of scoped(set.read)) {
      for (const k of KEY_DIRS) {
        if (overlaps(p, k)) {
          add(name, "keys-offline", `holds net and reads '${p}', which holds the keys in '${k}'`);
        }
      }
    }
    if (set.write === true) add(name, "trust-read-only", "holds net and unscoped write");
    for (const p of scoped(set.write)) {
      for (const t of [...TRUST_DIRS, ...KEY_DIRS]) {
        if (overlaps(p, t)) {
          add(name, "trust-read-only", `holds net and writes '${p}', which holds '${t}'`);
        }
      }
    }
  }
  for (const [name, set] of table) {
    if (!runsDeno(set) || name === TEST_RUNNER_SET) continue;
    // TM-12 (issue 18 #7): a set that may start deno holds every permission
    // in effect: offline, and for development only.
    if (set.net !== false) add(name, "deno-run", "may start deno (every permission) and holds net");
    if (!DEV_TASK_SETS.has(name)) {
      add(name, "deno-run", "may start deno (every permission) but is not a development set");
    }
  }
  // Issue 11: what a command reads or writes by default lies inside its set.
  for (const [name, paths] of Object.entries(DEFAULT_PATHS)) {
    const set = table.get(name);
    if (!set) continue;
    for (const p of paths.read) {
      if (!covers(set.read, p)) {
        add(name, "default-paths", `reads '${p}' by default outside its set`);
      }
    }
    for (const p of paths.write) {
      if (!covers(set.write, p)) {
        add(name, "default-paths", `writes '${p}' by default outside its set`);
      }
    }
  }
  for (const name of OFFLINE_READ_ONLY) {
    const set = table.get(name);
    if (!set) {
      add(name, "present", "set is missing");
      continue;
    }
    for (const kind of ["net", "write", "run", "env", "sys"] as const) {
      if (set[kind] !== false) add(name, "offline", `${name} must hold no ${kind}`);
    }
  }
  for (const [name, roots] of Object.entries(TMPFS_ONLY_WRITE)) {
    const set = table.get(name);
    if (!set) {
      add(name, "present", "set is missing");
      continue;
    }
    for (const p of scoped(set.write)) {
      if (!roots.some((r) => p === r || p.startsWith(r + "/"))) {
        add(name, "tmpfs-only", `write scope '${p}' is not under ${roots.join(" or ")}`);
      }
    }
    if (set.write === true) add(name, "tmpfs-only", "unscoped write");
  }
  return f;
}

/** Checks each task: a known set, no prompt, no remote code, no extra flags. */
export function auditTasks(
  tasks: readonly EntrypointTask[],
  table: ReadonlyMap<string, PermissionSet> = permissionTable(),
  readEntry: (path: string) => string = (p) =>
    Deno.readTextFileSync(new URL(`../${p}`, import.meta.url)),
): Finding[] {
  const f: Finding[] = [];
  for (const t of tasks) {
    const where = `task ${t.task}`;
    if (!t.set) f.push({ where, rule: "set", detail: "runs without -P=<set>" });
    else if (!table.has(t.set)) f.push({ where, rule: "set", detail: `unknown set '${t.set}'` });
    for (const need of ["--no-prompt", "--no-remote"]) {
      if (!t.flags.includes(need)) f.push({ where, rule: "flags", detail: `missing ${need}` });
    }
    for (const flag of t.flags) {
      if (/^(-A|--allow-|--unstable-ffi|-[RWNES]$)/.test(flag)) {
        f.push({ where, rule: "flags", detail: `grants outside the table: ${flag}` });
      }
    }
    // TM-12 (issue 18 #7): a set that may start deno is reachable only from
    // development tasks, never from a shipped binary or seed launcher.
    const set = table.get(t.set);
    if (set && runsDeno(set) && !isDevTask(t)) {
      f.push({
        where,
        rule: "deno-run",
        detail: `shipped task runs under '${t.set}', which may start deno`,
      });
    }
    let source = "";
    try {
      source = readEntry(t.entry);
    } catch {
      f.push({ where, rule: "entry", detail: `entrypoint ${t.entry} is missing` });
      continue;
    }
    if (t.set in DEV_SETS) continue;
    if (!/\bmain\(/.test(source) && !/assertPermissionSet\(/.test(source)) {
      f.push({
        where,
        rule: "guard",
        detail: `${t.entry} does not start through cli main() / assertPermissionSet()`,
      });
    }
  }
  return f;
}

/** Where the reviewed permission table is pinned, relative to the repository. */
export const BASELINE_PATH = "threat-model/permissions.baseline.json";
/** Largest baseline file read, in bytes. */
export const MAX_BASELINE_BYTES = 1024 * 1024;

/** The pinned, reviewed table: deno.json's `"permissions"` and the review of exactly it. */
export interface Baseline {
  readonly review: {
    readonly date: string;
    readonly note: string;
    /** {@link tableDigest} of `permissions`: the note was written for this table. */
    readonly table_sha256: string;
  };
  readonly permissions: Record<string, unknown>;
}

function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(",")}]`;
  if (v && typeof v === "object") {
    const o = v as Record<string, unknown>;
    return `{${
      Object.keys(o).sort().map((k) => `${JSON.stringify(k)}:${canonical(o[k])}`).join(",")
    }}`;
  }
  return JSON.stringify(v);
}

/** SHA-256 (hex) of a raw permission table, independent of key order. */
export function tableDigest(raw: unknown): string {
  return createHash("sha256").update(canonical(raw)).digest("hex");
}

/**
 * TM-12 (issue 18 #8): deno.json's table must equal the reviewed baseline,
 * and the baseline's review note must name the digest of exactly that
 * table; widening a set is a finding until both are updated together.
 */
export function auditBaseline(
  raw: Record<string, unknown>,
  baseline: Baseline | undefined,
): Finding[] {
  const where = BASELINE_PATH;
  if (!baseline || typeof baseline !== "object" || !baseline.permissions || !baseline.review) {
    return [{ where, rule: "baseline", detail: "missing or malformed reviewed baseline" }];
  }
  const f: Finding[] = [];
  const digest = tableDigest(baseline.permissions);
  if (baseline.review.table_sha256 !== digest || !baseline.review.note?.trim()) {
    f.push({
      where,
      rule: "baseline",
      detail: `the review note is not for this baseline (table_sha256 ${digest}): review the ` +
        "change and update the note with it",
    });
  }
  const names = new Set([...Object.keys(raw), ...Object.keys(baseline.permissions)]);
  for (const name of names) {
    const a = (raw[name] ?? {}) as Record<string, unknown>;
    const b = (baseline.permissions[name] ?? {}) as Record<string, unknown>;
    if (!(name in raw)) {
      f.push({ where: name, rule: "baseline", detail: "set removed from deno.json" });
    } else if (!(name in baseline.permissions)) {
      f.push({ where: name, rule: "baseline", detail: "set not in the reviewed baseline" });
      continue;
    }
    for (const kind of new Set([...Object.keys(a), ...Object.keys(b)])) {
      if (canonical(a[kind]) !== canonical(b[kind])) {
        f.push({
          where: name,
          rule: "baseline",
          detail: `${kind} is ${canonical(a[kind])} in deno.json, reviewed ${
            canonical(b[kind])
          } (new table_sha256 ${tableDigest(raw)})`,
        });
      }
    }
  }
  return f;
}

/** Reads the baseline under `repo`; undefined when missing or not JSON. */
export async function readBaseline(repo: string): Promise<Baseline | undefined> {
  try {
    const bytes = await readFileCapped(`${repo}/${BASELINE_PATH}`, MAX_BASELINE_BYTES);
    return JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    return undefined;
  }
}
