import { deepStrictEqual as assertEquals, ok, rejects, throws } from "node:assert/strict";
import {
  loadStoredTrust,
  parseTrust,
  readTrustFloor,
  recordTrustStep,
  TRUST_FLOOR_FILE,
  VerifyError,
  verifyFiles,
  verifyTrustStep,
} from "./mod.ts";

const CHAIN = new URL("./testdata/trust-chain/", import.meta.url).pathname;
const NOW = new Date("2026-06-01T00:00:00Z");
const read = (f: string) => Deno.readFile(`${CHAIN}${f}`);

async function scratch(): Promise<string> {
  await Deno.mkdir("/tmp/phase", { recursive: true });
  return await Deno.makeTempDir({ dir: "/tmp/phase", prefix: "trust-store-" });
}

Deno.test("TM-09 key compromise and rotation: a file without 'version' is version 1 unsigned; later versions must expire and be signed", async () => {
  const v1 = parseTrust(await read("v1-a.json"));
  assertEquals([v1.version, v1.expiresAt, v1.signatures.length], [1, undefined, 0]);
  const enc = (o: unknown) => new TextEncoder().encode(JSON.stringify(o));
  const doc = JSON.parse(new TextDecoder().decode(await read("v2-b.json")));
  const { signatures: _s, ...unsigned } = doc;
  const { expires_at: _e, ...noExpiry } = doc;
  for (const bad of [unsigned, noExpiry, { ...doc, version: 0 }, { ...doc, version: "2" }]) {
    throws(
      () => parseTrust(enc(bad)),
      (e: unknown) => e instanceof VerifyError && e.code === "E_TRUST",
    );
  }
});

Deno.test("TM-09 key compromise and rotation: an accepted version is persisted with a trust-version floor, re-verified at start, and never given up", async () => {
  const dir = await scratch();
  try {
    const pinned = parseTrust(await read("v1-a.json"));
    assertEquals((await loadStoredTrust(dir, pinned, NOW)).trust.version, 1);
    const step = verifyTrustStep(pinned, await read("v2-b.json"), NOW);
    assertEquals(await recordTrustStep(dir, step), { previous: undefined, current: 2 });
    assertEquals(await readTrustFloor(dir), 2);
    const stored = await loadStoredTrust(dir, pinned, NOW);
    assertEquals([stored.trust.version, stored.floor], [2, 2]);
    // verify/kexec with --state verify under the stored version: B's release
    // verifies with the pinned v1 file, A's (the retired key) does not.
    const opts = { trust: `${CHAIN}v1-a.json`, stateDir: dir, now: NOW };
    const ok2 = await verifyFiles({ ...opts, manifest: `${CHAIN}manifest-b.json` });
    assertEquals(ok2.verified.value.version, "2026.06.02");
    await rejects(
      verifyFiles({ ...opts, manifest: `${CHAIN}manifest-a.json` }),
      (e: unknown) => e instanceof VerifyError && e.code === "E_SIGNATURE",
    );
    // A tampered stored step is refused, not trusted because it is on disk.
    const stored2 = await Deno.readTextFile(`${dir}/trust/2.json`);
    ok(stored2.includes("2027-06-01"));
    await Deno.writeTextFile(`${dir}/trust/2.json`, stored2.replace("2027-06-01", "2028-06-01"));
    await rejects(
      loadStoredTrust(dir, pinned, NOW),
      (e: unknown) => e instanceof VerifyError && e.code === "E_TRUST",
    );
    // A removed step cannot take the device back to version 1: the floor stays.
    await Deno.remove(`${dir}/trust/2.json`);
    await rejects(
      loadStoredTrust(dir, pinned, NOW),
      (e: unknown) => e instanceof VerifyError && e.code === "E_TRUST" && /floor 2/.test(e.message),
    );
    // Recording an older step never lowers the floor.
    await Deno.writeTextFile(`${dir}/${TRUST_FLOOR_FILE}`, '{"version":5}\n');
    assertEquals(await recordTrustStep(dir, step), { previous: 5, current: 5 });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
