import { deepStrictEqual as assertEquals, rejects as assertRejects } from "node:assert/strict";
import { readFloor, recordFloor } from "./floor.ts";
import { manifestDoc, NOW, signedManifest, testKey, trustOf } from "../testing/mod.ts";
import { verifyManifest } from "./verify.ts";
import { VerifyError } from "./errors.ts";

Deno.test("TM-02 rollback: the accepted floor persists, only rises, and then refuses older releases", async () => {
  await Deno.mkdir("/tmp/phase", { recursive: true });
  const state = await Deno.makeTempDir({ dir: "/tmp/phase" });
  try {
    const k = testKey();
    const t = trustOf(1, k);
    const v = (version: string) =>
      verifyManifest(signedManifest(manifestDoc({ version }), k), t, { now: NOW });
    assertEquals(await readFloor(state, "stable", "amd64"), undefined);
    await recordFloor(state, v("2026.11.20"));
    await recordFloor(state, v("2026.11.01"));
    assertEquals(await readFloor(state, "stable", "amd64"), "2026.11.20");
    assertEquals((await Deno.stat(`${state}/floor.json`)).mode! & 0o777, 0o600);
    const floor = await readFloor(state, "stable", "amd64");
    let code = "ok";
    try {
      verifyManifest(signedManifest(manifestDoc({ version: "2026.11.19" }), k), t, {
        now: NOW,
        floor,
      });
    } catch (e) {
      code = (e as VerifyError).code;
    }
    assertEquals(code, "E_ROLLBACK");
    await Deno.writeTextFile(`${state}/floor.json`, "{broken");
    await assertRejects(() => readFloor(state, "stable", "amd64"), VerifyError);
  } finally {
    await Deno.remove(state, { recursive: true });
  }
});

Deno.test("TM-02 rollback: an arch alias reads and raises the canonical arch's floor", async () => {
  await Deno.mkdir("/tmp/phase", { recursive: true });
  const state = await Deno.makeTempDir({ dir: "/tmp/phase" });
  try {
    await Deno.writeTextFile(
      `${state}/floor.json`,
      JSON.stringify({ "stable/amd64": "2027.01.01" }),
    );
    assertEquals(await readFloor(state, "stable", "x86_64"), "2027.01.01");
    assertEquals(await readFloor(state, "stable", "aarch64"), undefined);
    // A name from input is never an Object.prototype member.
    assertEquals(await readFloor(state, "constructor", "amd64"), undefined);
  } finally {
    await Deno.remove(state, { recursive: true });
  }
});
