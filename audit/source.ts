/**
 * Static rules over the source tree: how components import each other
 * (only through `mod.ts`, never another's `_x.ts`, never deno.json outside
 * cli/), and how code starts `deno` (always with an explicit permission set).
 *
 * @module
 */
import type { Finding } from "./static.ts";

/**
 * Folders that are not components: test support, benchmarks (issue 10 §3)
 * and the fuzzer (issue 14 §2), which reach parsers by file. They still
 * never import another folder's private `_x.ts`.
 */
export const NOT_COMPONENTS: ReadonlySet<string> = new Set(["testing", "bench", "fuzz"]);
/** Folders never scanned: outputs and dependencies. */
const SKIP = new Set(["node_modules", "dist", "artifacts", "out"]);
/** Largest source file read, in bytes. */
export const MAX_SOURCE_BYTES = 2 * 1024 * 1024;

/** One source file: path relative to the root, and text. */
export interface SourceFile {
  readonly path: string;
  readonly text: string;
}

/** Every `.ts` file under `root` (hidden folders and outputs skipped). */
export async function sourceFiles(root: string): Promise<SourceFile[]> {
  const out: SourceFile[] = [];
  const walk = async (dir: string): Promise<void> => {
    const entries: Deno.DirEntry[] = [];
    for await (const e of Deno.readDir(dir)) entries.push(e);
    entries.sort((a, b) => a.name < b.name ? -1 : 1);
    for (const e of entries) {
      if (e.name.startsWith(".") || SKIP.has(e.name)) continue;
      const path = `${dir}/${e.name}`;
      if (e.isDirectory) await walk(path);
      else if (e.isFile && e.name.endsWith(".ts")) {
        const { size } = await Deno.stat(path);
        if (size > MAX_SOURCE_BYTES) continue;
        out.push({ path: path.slice(root.length + 1), text: await Deno.readTextFile(path) });
      }
    }
  };
  await walk(root);
  return out;
}

/** Top-level folders that hold a `mod.ts`: the components (whatever moves where). */
export function componentsOf(files: readonly SourceFile[]): Set<string> {
  const c = new Set<string>();
  for (const f of files) {
    const parts = f.path.split("/");
    if (parts.length === 2 && parts[1] === "mod.ts" && !NOT_COMPONENTS.has(parts[0])) {
      c.add(parts[0]);
    }
  }
  return c;
}

function normalise(from: string, spec: string): string | undefined {
  if (!spec.startsWith("./") && !spec.startsWith("../")) return undefined;
  const parts = from.split("/").slice(0, -1);
  for (const p of spec.split("/")) {
    if (p === "." || p === "") continue;
    if (p === "..") {
      if (parts.length === 0) return undefined;
      parts.pop();
    } else parts.push(p);
  }
  return parts.join("/");
}

// Import and export statements at the start of a line (a specifier quoted
// inside a string, as in a test of this rule, is not an import), and
// dynamic imports on a line with no quote before them.
const IMPORT_RE =
  /^\s*(?:import|export)\b[^;"'`]*?(?:\bfrom\s*)?["']([^"']+)["']|^[^"'`\n]*\bimport\(\s*["']([^"']+)["']/gm;

/**
 * Imports across components: a file in component A may import component
 * B only as `B/mod.ts`; no file imports another folder's `_x.ts`; only
 * cli/ imports deno.json (issue 10 §3). Tests follow the same rule.
 */
export function auditImports(files: readonly SourceFile[]): Finding[] {
  const f: Finding[] = [];
  const components = componentsOf(files);
  for (const file of files) {
    const home = file.path.split("/")[0];
    const exempt = NOT_COMPONENTS.has(home);
    for (const m of file.text.matchAll(IMPORT_RE)) {
      const spec = m[1] ?? m[2];
      const target = normalise(file.path, spec);
      if (target === undefined) continue;
      const parts = target.split("/");
      const name = parts[parts.length - 1];
      if (target === "deno.json" && home !== "cli") {
        f.push({
          where: file.path,
          rule: "config-import",
          detail: `imports deno.json; take the table and tasks from cli/mod.ts`,
        });
        continue;
      }
      const folder = parts.slice(0, -1).join("/");
      const ownFolder = file.path.split("/").slice(0, -1).join("/");
      if (name.startsWith("_") && folder !== ownFolder && parts[0] !== home) {
        f.push({
          where: file.path,
          rule: "private-import",
          detail: `imports another component's private module ${spec}`,
        });
        continue;
      }
      if (exempt || parts[0] === home || !components.has(parts[0])) continue;
      if (!(parts.length === 2 && name === "mod.ts")) {
        f.push({
          where: file.path,
          rule: "mod-import",
          detail: `imports ${spec}: components import each other only through ${parts[0]}/mod.ts`,
        });
      }
    }
  }
  return f;
}

/**
 * Subcommands of deno that run no project code with permissions; `task`
 * runs a task, and every task names its set (auditTasks).
 */
const INERT_SUBCOMMANDS = new Set([
  "info",
  "bundle",
  "fmt",
  "lint",
  "check",
  "doc",
  "--version",
  "task",
]);
const SPAWN_RE = /(?:new\s+Deno\.Command|\brunTool)\(\s*["']deno["']\s*,/g;

/** Text from `open` (an opening bracket) to its match, or "" when unbalanced. */
function balanced(text: string, open: number): string {
  const pairs: Record<string, string> = { "(": ")", "[": "]", "{": "}" };
  const stack: string[] = [];
  for (let i = open; i < text.length && i < open + 8000; i++) {
    const c = text[i];
    if (c in pairs) stack.push(pairs[c]);
    else if (c === stack[stack.length - 1]) {
      stack.pop();
      if (stack.length === 0) return text.slice(open, i + 1);
    }
  }
  return "";
}

/** The body of a function or the value of a constant named `name` in `text`, or "". */
function definition(text: string, name: string): string {
  const fn = new RegExp(`function\\s+${name}\\s*\\(`).exec(text);
  if (fn) {
    const params = balanced(text, fn.index + fn[0].length - 1);
    const after = fn.index + fn[0].length - 1 + params.length;
    const open = text.indexOf("{", after);
    return open < 0 ? "" : balanced(text, open);
  }
  const c = new RegExp(`(?:const|let)\\s+${name}\\s*(?::[^=]+)?=\\s*`).exec(text);
  if (!c) return "";
  const open = c.index + c[0].length;
  return "[{".includes(text[open]) ? balanced(text, open) : "";
}

/** The argument list of a `deno` spawn: a literal, or a named array or function. */
function spawnArgs(file: SourceFile, call: string, files: readonly SourceFile[]): string {
  const literal = /args\s*:\s*\[/.exec(call) ?? /^\(\s*["']deno["']\s*,\s*\[/.exec(call);
  if (literal) return balanced(call, literal.index + literal[0].length - 1);
  const named = /args\s*:\s*([A-Za-z_$][\w$]*)/.exec(call) ?? /[{,]\s*(args)\s*[,}]/.exec(call);
  if (!named) return "";
  // The file itself first, then wherever the helper is defined.
  for (const f of [file, ...files]) {
    const d = definition(f.text, named[1]);
    if (d) return d;
  }
  return "";
}

/**
 * TM-12 (issue 18 #7): every place code starts `deno` passes the child an
 * explicit permission set (`-P=<set>` or scoped `--allow-*` flags), never
 * `-A`; a child deno would otherwise hold every permission. Tests, test
 * support and benchmarks run under the `test` set and are not checked.
 */
export function auditDenoSpawns(files: readonly SourceFile[]): Finding[] {
  const f: Finding[] = [];
  for (const file of files) {
    const home = file.path.split("/")[0];
    if (NOT_COMPONENTS.has(home) || file.path.endsWith("_test.ts")) continue;
    for (const m of file.text.matchAll(SPAWN_RE)) {
      const open = file.text.indexOf("(", m.index);
      const call = balanced(file.text, open);
      const line = file.text.slice(0, m.index).split("\n").length;
      const where = `${file.path}:${line}`;
      const args = spawnArgs(file, call, files);
      if (!args) {
        f.push({
          where,
          rule: "deno-spawn",
          detail: "cannot see the arguments of this deno spawn",
        });
        continue;
      }
      if (/["'`](-A|--allow-all)["'`]|--allow-all\b|["'`]--allow-(run|ffi)["'`]/.test(args)) {
        f.push({ where, rule: "deno-spawn", detail: "starts deno with every permission (-A)" });
        continue;
      }
      const sub = /["'`]([\w-]+)["'`]/.exec(args)?.[1] ?? "";
      if (INERT_SUBCOMMANDS.has(sub)) continue;
      if (!/-P=|--permission-set=|["'`]--allow-[a-z]+/.test(args)) {
        f.push({
          where,
          rule: "deno-spawn",
          detail: `starts 'deno ${sub}' without an explicit permission set (-P=<set>)`,
        });
      }
    }
  }
  return f;
}
