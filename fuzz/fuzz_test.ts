import { assert, assertEquals } from "../testing/mod.ts";
import { runTarget } from "./harness.ts";
import { TARGETS } from "./targets.ts";

/** Inputs per target in the test run: a seeded smoke run (the long run is `deno task fuzz`). */
const TEST_RUNS = 200;
/** The fixed seed of the test run, so a failure replays. */
const TEST_SEED = 20261122;

for (const target of TARGETS) {
  Deno.test(`fuzz: ${target.name}: ${TEST_RUNS} seeded inputs hold every property`, async () => {
    const r = await runTarget(target, { runs: TEST_RUNS, seed: TEST_SEED });
    assert(!r.failed, r.report);
    assertEquals(r.runs, TEST_RUNS);
  });
}

Deno.test("fuzz: registry: every parser of issue 14 has a target, each with properties", () => {
  const names = TARGETS.map((t) => t.name);
  for (
    const want of [
      "strict-json",
      "jcs",
      "manifest",
      "manifest-roundtrip",
      "record",
      "record-roundtrip",
      "trust",
      "cid",
      "http-response",
      "http-differential",
      "socks",
      "range",
      "mdns-packet",
      "mdns-txt",
      "wasm-limits",
      "wasm-grow",
      "policy",
      "cmdline",
      "step-results",
      "fdt",
      "trust-step",
      "trust-walk",
      "job-frames",
      "job-offer",
    ]
  ) assert(names.includes(want), want);
  assertEquals(new Set(names).size, names.length, "target names are unique");
  for (const t of TARGETS) assert(t.properties.length > 0, t.name);
});
