import { PermissionSetError } from "../core/mod.ts";
import { assertEquals, assertThrows } from "../testing/mod.ts";
import {
  assertPermissionSet,
  excessPermissions,
  normaliseSet,
  PERMISSION_KINDS,
} from "./permissions.ts";

/** A set that scopes read and env, denies the rest and denies one import host. */
const SET = normaliseSet({
  read: ["./artifacts"],
  write: false,
  net: false,
  env: ["HOME"],
  run: false,
  sys: false,
  ffi: false,
  import: { deny: ["jsr.io:443"] },
});

/** A fake `Deno.permissions.querySync` granting exactly the descriptors `granted` names. */
function grants(...granted: string[]) {
  return (d: Deno.PermissionDescriptor): Deno.PermissionState => {
    const target = "path" in d
      ? d.path
      : "host" in d
      ? d.host
      : "variable" in d
      ? d.variable
      : "command" in d
      ? d.command
      : "kind" in d
      ? d.kind
      : undefined;
    const key = target === undefined ? `${d.name} (all)` : `${d.name} ${target}`;
    return granted.includes(key) ? "granted" : "prompt";
  };
}

Deno.test("cli: permission guard: a kind held wholesale outside the set is named once, as '(all)'", () => {
  const all = PERMISSION_KINDS.map((k) => `${k} (all)`);
  assertEquals(excessPermissions(SET, "/repo", grants(...all)), all);
  // A set granting a kind wholesale is not in excess for it.
  assertEquals(
    excessPermissions({ ...SET, net: true }, "/repo", grants("net (all)")),
    [],
  );
  assertEquals(excessPermissions(SET, "/repo", grants()), []);
});

Deno.test("cli: permission guard: a scoped grant is in excess only outside the set's scopes", () => {
  const held = grants("read /etc/shadow", "env HOME", "env PATH", "import jsr.io:443");
  assertEquals(excessPermissions(SET, "/repo", held), [
    "read /etc/shadow",
    "env PATH",
    "import jsr.io:443",
  ]);
  // The same grants against a set whose scopes cover them (a relative scope resolves against the
  // directory of deno.json).
  const wider = { ...SET, read: ["../etc"], env: ["HOME", "PATH"], denyImport: [] };
  assertEquals(excessPermissions(wider, "/repo", held), ["import jsr.io:443"]);
  assertEquals(excessPermissions({ ...wider, import: ["jsr.io"] }, "/repo", held), []);
});

Deno.test("cli: permission guard: this test process (-P=test) holds more than the verify set and is refused", () => {
  const err = assertThrows(() => assertPermissionSet("verify"), PermissionSetError);
  assertEquals(err.code, "E_PERMISSIONS");
  for (const kind of ["read (all)", "write (all)", "net (all)", "run (all)"]) {
    assertEquals(err.excess.includes(kind), true, `${kind} in ${err.excess.join(", ")}`);
  }
});
