/**
 * Static audit: the permission table checked against the rules of
 * threat-model/permissions.md, and each task checked against the table.
 *
 * @module
 */
import {
  DEFAULT_IMPORT_HOSTS,
  type Grant,
  PERMISSION_KINDS,
  type PermissionSet,
  permissionTable,
} from "../cli/mod.ts";
import type { EntrypointTask } from "./entrypoints.ts";

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

/** Files that import another component's private `_x.ts` module. */
export async function auditPrivateImports(root: string): Promise<Finding[]> {
  const f: Finding[] = [];
  const walk = async (dir: string): Promise<void> => {
    for await (const e of Deno.readDir(dir)) {
      if (e.name.startsWith(".") || ["node_modules", "dist", "artifacts"].includes(e.name)) {
        continue;
      }
      const path = `${dir}/${e.name}`;
      if (e.isDirectory) await walk(path);
      else if (e.name.endsWith(".ts")) {
        const text = await Deno.readTextFile(path);
        for (const m of text.matchAll(/from\s+"(\.\.\/[^"]*\/_[^"/]+\.ts)"/g)) {
          f.push({
            where: path.slice(root.length + 1),
            rule: "private-import",
            detail: `imports another component's private module ${m[1]}`,
          });
        }
      }
    }
  };
  await walk(root);
  return f;
}
