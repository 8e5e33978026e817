import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { renderPermissionsDoc } from "./permissions.ts";
import { permissionTable } from "../cli/mod.ts";

Deno.test("threat model: permissions.md is generated from the permission table in deno.json", async () => {
  const doc = await Deno.readTextFile(new URL("./permissions.md", import.meta.url));
  assertEquals(
    doc,
    renderPermissionsDoc(),
    "run 'deno task docs:permissions' after changing deno.json",
  );
  for (const name of permissionTable().keys()) {
    assertEquals(doc.includes(`| \`${name}\` |`), true, `set ${name} is in the document`);
  }
});
