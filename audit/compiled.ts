/**
 * Compiled audit: reads the permissions `deno compile` embedded in each
 * binary (a JSON metadata block with `"permissions":{`) and compares them
 * with the table.
 *
 * @module
 */
import { DEFAULT_IMPORT_HOSTS, type Grant, type PermissionSet, resolveScope } from "../cli/mod.ts";
import type { Finding } from "./static.ts";

/** Largest binary scanned. */
export const MAX_BINARY_BYTES = 512 * 1024 * 1024;
/** Largest metadata object parsed. */
export const MAX_METADATA_BYTES = 256 * 1024;

/** The embedded permissions of a compiled binary. */
export type EmbeddedPermissions = Record<string, string[] | null | boolean>;

const NEEDLE = new TextEncoder().encode('"permissions":{');

function indexOf(hay: Uint8Array, needle: Uint8Array): number {
  outer: for (
    let i = hay.indexOf(needle[0]);
    i >= 0 && i <= hay.length - needle.length;
    i = hay.indexOf(needle[0], i + 1)
  ) {
    for (let j = 1; j < needle.length; j++) if (hay[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}

/** Extracts the embedded permission object from binary bytes. */
export function readEmbeddedPermissions(bytes: Uint8Array): EmbeddedPermissions | undefined {
  const at = indexOf(bytes, NEEDLE);
  if (at < 0) return undefined;
  const start = at + NEEDLE.length - 1;
  let depth = 0;
  let inString = false;
  for (let i = start; i < Math.min(bytes.length, start + MAX_METADATA_BYTES); i++) {
    const c = bytes[i];
    if (inString) {
      if (c === 0x5c) i++;
      else if (c === 0x22) inString = false;
      continue;
    }
    if (c === 0x22) inString = true;
    else if (c === 0x7b) depth++;
    else if (c === 0x7d && --depth === 0) {
      return JSON.parse(new TextDecoder().decode(bytes.subarray(start, i + 1)));
    }
  }
  return undefined;
}

function expected(g: Grant, kind: string, base: string): string[] | null | "all" {
  if (g === false) return null;
  if (g === true) return "all";
  // Deno resolves relative program paths like file paths.
  const isPath = (s: string) =>
    kind === "read" || kind === "write" || kind === "ffi" ||
    (kind === "run" && (s.startsWith("./") || s.startsWith("../")));
  return g.map((s) => isPath(s) ? resolveScope(s, base) : s);
}

/** Compares a binary's embedded permissions with its set. */
export function compareEmbedded(
  name: string,
  embedded: EmbeddedPermissions,
  set: PermissionSet,
  base: string,
): Finding[] {
  const f: Finding[] = [];
  const add = (detail: string) => f.push({ where: name, rule: "compiled", detail });
  if (embedded.prompt !== false) add("prompts for permissions (compile with --no-prompt)");
  for (const kind of ["read", "write", "net", "env", "run", "sys", "ffi"] as const) {
    const got = embedded[`allow_${kind}`] as string[] | null;
    const want = expected(set[kind], kind, base);
    if (want === null) {
      if (got !== null && got !== undefined) {
        add(`${kind}: embedded ${JSON.stringify(got)}, set grants none`);
      }
    } else if (want === "all") {
      if (!(Array.isArray(got) && got.length === 0)) {
        add(`${kind}: set grants all, embedded ${JSON.stringify(got)}`);
      }
    } else {
      const g = new Set(got ?? []);
      const extra = [...g].filter((x) => !want.includes(x));
      const missing = want.filter((x) => !g.has(x));
      // Deno resolves program names to absolute paths; accept either.
      const unresolved = kind === "run"
        ? missing.filter((m) => ![...g].some((x) => x.endsWith("/" + m)))
        : missing;
      if (extra.length && kind !== "run") {
        add(`${kind}: embedded grants beyond the set: ${extra.join(", ")}`);
      }
      if (kind === "run") {
        const stray = extra.filter((x) => !want.some((w) => x === w || x.endsWith("/" + w)));
        if (stray.length) add(`run: embedded grants beyond the set: ${stray.join(", ")}`);
      }
      if (unresolved.length) {
        add(`${kind}: set grants missing from the binary: ${unresolved.join(", ")}`);
      }
    }
  }
  const denyImport = new Set((embedded.deny_import as string[] | null) ?? []);
  for (const h of DEFAULT_IMPORT_HOSTS) {
    if (!denyImport.has(h)) add(`may import code from ${h} at run time`);
  }
  return f;
}
