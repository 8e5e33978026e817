/**
 * Every case of ../shared/vectors/cases.json, made with an independent
 * Ed25519/JCS implementation, through the verify entrypoint as a
 * subprocess under its own permission set.
 */
import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { EXIT_STATUS } from "../core/mod.ts";

const VECTORS = new URL("../../shared/vectors/", import.meta.url).pathname;
const REPO = new URL("..", import.meta.url).pathname;

interface Case {
  name: string;
  manifest: string;
  trust: string;
  args: Record<string, string>;
  expect: string;
  artifacts?: Record<string, string>;
}

// The verify set reads only Phase's directories, so the vectors are copied
// into the scratch root first (the verifier never gets a wider grant for tests).
async function stageVectors(): Promise<string> {
  await Deno.mkdir("/tmp/phase", { recursive: true });
  const dir = await Deno.makeTempDir({ dir: "/tmp/phase", prefix: "vectors-" });
  const cp = await new Deno.Command("cp", { args: ["-r", `${VECTORS}.`, dir] }).output();
  assertEquals(cp.code, 0);
  return dir;
}

const cases: Case[] = JSON.parse(await Deno.readTextFile(`${VECTORS}cases.json`)).cases;

Deno.test("conformance: the vector suite has 19 cases", () => {
  assertEquals(cases.length, 19);
});

Deno.test("conformance: every vector case through the verify entrypoint under -P=verify", async (t) => {
  const dir = await stageVectors();
  try {
    for (const c of cases) {
      await t.step(c.name, async () => {
        const args = [
          "task",
          "-q",
          "verify",
          "--manifest",
          `${dir}/${c.manifest}`,
          "--trust",
          `${dir}/${c.trust}`,
          "--json",
        ];
        for (const [k, v] of Object.entries(c.args)) args.push(`--${k.replace(/_/g, "-")}`, v);
        for (const [n, p] of Object.entries(c.artifacts ?? {})) {
          args.push("--artifact", `${n}=${dir}/${p}`);
        }
        const out = await new Deno.Command("deno", {
          args,
          cwd: REPO,
          stdout: "piped",
          stderr: "piped",
        })
          .output();
        const stdout = new TextDecoder().decode(out.stdout).trim();
        const line = JSON.parse(stdout.split("\n").at(-1)!);
        if (c.expect === "ok") {
          assertEquals(out.code, 0, stdout);
          assertEquals(line.ok, true);
        } else {
          assertEquals(line.code, c.expect, stdout);
          assertEquals(out.code, EXIT_STATUS[c.expect as keyof typeof EXIT_STATUS]);
        }
      });
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
