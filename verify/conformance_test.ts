/**
 * Every case of ../shared/vectors/cases.json, made with an independent
 * Ed25519/JCS implementation, through the verify entrypoint as a
 * subprocess under its own permission set; then every trust-chain case of
 * testdata/trust-chain/cases.json (formats.md §1.1) through the library.
 */
import { deepStrictEqual as assertEquals, ok } from "node:assert/strict";
import { EXIT_STATUS } from "../core/mod.ts";
import {
  MAX_TRUST_BYTES,
  MAX_TRUST_STEPS,
  parseTrust,
  VerifyError,
  verifyManifest,
  walkTrustChain,
} from "./mod.ts";

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

interface ChainCase {
  name: string;
  pinned: string;
  served: Record<string, string>;
  floor?: number;
  manifest?: string;
  expect: string;
  stage?: "walk" | "manifest";
  version?: number;
}

const CHAIN = new URL("./testdata/trust-chain/", import.meta.url).pathname;
const chain: { now: string; cases: ChainCase[] } = JSON.parse(
  await Deno.readTextFile(`${CHAIN}cases.json`),
);

Deno.test("conformance: the trust-chain suite has 11 cases", () => {
  assertEquals(chain.cases.length, 11);
});

Deno.test("TM-09 key compromise and rotation: every trust-chain vector (verify/testdata/trust-chain) gives its expected outcome", async (t) => {
  const now = new Date(chain.now);
  const read = (f: string) => Deno.readFile(`${CHAIN}${f}`);
  for (const c of chain.cases) {
    await t.step(c.name, async () => {
      const asked: number[] = [];
      let stage = "walk";
      try {
        const walk = await walkTrustChain(parseTrust(await read(c.pinned)), async (v, max) => {
          asked.push(v);
          const f = Object.hasOwn(c.served, String(v)) ? c.served[String(v)] : undefined;
          if (f === undefined) return undefined;
          const bytes = await read(f);
          ok(bytes.length <= max);
          return bytes;
        }, { now, floor: c.floor, maxSteps: MAX_TRUST_STEPS, maxBytes: MAX_TRUST_BYTES });
        if (c.version !== undefined) assertEquals(walk.trust.version, c.version);
        stage = "manifest";
        if (c.manifest) verifyManifest(await read(c.manifest), walk.trust, { now });
        assertEquals(c.expect, "ok", `expected ${c.expect} at ${c.stage}, got ok`);
      } catch (err) {
        if (!(err instanceof VerifyError)) throw err;
        assertEquals([err.code, stage], [c.expect, c.stage], err.message);
        ok(err.hint, "every refusal has a hint");
      }
      // Versions are asked for in order, one past the pinned one, never skipped.
      asked.forEach((v, i) => assertEquals(v, asked[0] + i));
    });
  }
});
