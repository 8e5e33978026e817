/**
 * Issue 11: the rollback floor a fetch keeps is visible (in fetch's result
 * and through `deno task floor`), a refusal names where it lives, and only
 * a reset typed on purpose removes it. Every entrypoint runs as a
 * subprocess under its own set.
 */
import {
  assert,
  assertEquals,
  assertMatch,
  makeRelease,
  serveRelease,
  taskArgv,
} from "../../testing/mod.ts";
import { EXIT_STATUS } from "../../core/mod.ts";
import { decodeFetchResult } from "../results.ts";

const ROOT = new URL("../../", import.meta.url).pathname;

async function task(name: string, args: string[]) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [...taskArgv(name), ...args],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
  }).output();
  return {
    code: out.code,
    stdout: new TextDecoder().decode(out.stdout),
    stderr: new TextDecoder().decode(out.stderr),
  };
}

Deno.test("TM-02 rollback: fetch shows the floor it leaves, a refusal names the floor file, and only 'floor reset --yes-reset-rollback-floor' removes it", async () => {
  const rel = await makeRelease({ version: "2026.11.20" });
  const srv = serveRelease(rel);
  try {
    const cache = `${rel.dir}/cache`;
    const fetchArgs = ["--manifest", srv.url, "--trust", rel.trustPath, "--cache", cache];
    const first = await task("fetch", fetchArgs);
    assertEquals(first.code, 0, first.stderr);
    const result = decodeFetchResult(first.stdout);
    assertEquals(result.floor, {
      current: "2026.11.20",
      previous: null,
      file: `${cache}/state/floor.json`,
    });
    assert(first.stderr.includes('"event":"rollback_floor_raised"'), first.stderr);

    // A newer release was accepted here once (as a provider's auto-versioned one would be).
    await Deno.writeTextFile(
      `${cache}/state/floor.json`,
      JSON.stringify({ "stable/amd64": "2026.11.29.79573" }),
    );
    const refused = await task("fetch", fetchArgs);
    assertEquals(refused.code, EXIT_STATUS.E_ROLLBACK, refused.stderr);
    assertMatch(refused.stderr, /below the accepted floor 2026\.11\.29\.79573/);
    assertMatch(refused.stderr, new RegExp(`${cache}/state/floor\\.json`));
    assertMatch(refused.stderr, /hint: .*deno task floor show --state/);

    const show = await task("floor", ["show", "--state", cache, "--json"]);
    assertEquals(show.code, 0, show.stderr);
    assertEquals(JSON.parse(show.stdout).states[0].floors, [
      { channel: "stable", arch: "amd64", version: "2026.11.29.79573" },
    ]);
    const human = await task("floor", ["show", "--state", `${cache}/state`]);
    assertMatch(human.stdout, /stable\/amd64 +2026\.11\.29\.79573/);

    // Without the confirmation nothing changes.
    const unconfirmed = await task("floor", [
      ...["reset", "--state", `${cache}/state`, "--channel", "stable", "--arch", "amd64"],
    ]);
    assertEquals(unconfirmed.code, EXIT_STATUS.E_USAGE);
    assertMatch(unconfirmed.stderr, /without --yes-reset-rollback-floor\nhint: /);
    assertEquals(
      JSON.parse(await Deno.readTextFile(`${cache}/state/floor.json`))["stable/amd64"],
      "2026.11.29.79573",
    );

    const reset = await task("floor", [
      ...["reset", "--state", `${cache}/state`, "--channel", "stable", "--arch", "x86_64"],
      "--yes-reset-rollback-floor",
    ]);
    assertEquals(reset.code, 0, reset.stderr);
    // Loud and logged, with the old value; the entry is gone, not lowered.
    assertMatch(reset.stdout, /WARNING: removed the rollback floor 2026\.11\.29\.79573/);
    const log = JSON.parse(reset.stderr.trim().split("\n").at(-1)!);
    assertEquals([log.level, log.event, log.previous], [
      "warn",
      "rollback_floor_reset",
      "2026.11.29.79573",
    ]);
    assertEquals(JSON.parse(await Deno.readTextFile(`${cache}/state/floor.json`)), {});
    const again = await task("floor", [
      ...["reset", "--state", `${cache}/state`, "--channel", "stable", "--arch", "amd64"],
      "--yes-reset-rollback-floor",
    ]);
    assertEquals(again.code, EXIT_STATUS.E_USAGE);
    assertMatch(again.stderr, /no rollback floor for stable\/amd64/);

    const after = await task("fetch", fetchArgs);
    assertEquals(after.code, 0, after.stderr);
    assertEquals(decodeFetchResult(after.stdout).floor?.previous, null);
  } finally {
    await srv.close();
    await Deno.remove(rel.dir, { recursive: true });
  }
});

Deno.test("TM-12 compromised component: the floor set reaches only the floors' folders", async () => {
  // ./.phase/keys holds signing keys: outside the floor set, refused.
  const r = await task("floor", ["show", "--state", "./.phase/keys"]);
  assertEquals(r.code, EXIT_STATUS.E_IO, r.stdout + r.stderr);
  assertMatch(r.stderr, /hint: /);
});
