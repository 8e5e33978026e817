import { parseTrust, rawCid } from "../verify/mod.ts";
import { buildRecord, formatDocument } from "../sign/mod.ts";
import { signatureFor } from "../sign/mod.ts";
import {
  assert,
  assertEquals,
  assertRejects,
  joinDht,
  loopbackDht,
  multiaddrsOf,
  releaseKey,
  signFixture,
  tempDir,
  writeRelease,
} from "../testing/mod.ts";
import {
  bestTrusted,
  findProviders,
  lookupRecords,
  type PhaseNode,
  phaseValidator,
  publishRecord,
  recordKey,
} from "./mod.ts";

async function fixture() {
  const dir = await tempDir("p2p");
  await writeRelease(`${dir}/root`);
  const { key, trustPath } = await releaseKey(`${dir}/keys`);
  const signed = await signFixture(`${dir}/root`, key, { version: "2026.11.20" });
  const recordBytes = await Deno.readFile(`${dir}/root/stable/amd64/record.json`);
  const trust = parseTrust(await Deno.readFile(trustPath));
  return { dir, trust, recordBytes, signed };
}

Deno.test({
  name:
    "DHT: five provider nodes on loopback, one publishes; a separate client node reads the signed record and finds the provider",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const f = await fixture();
    const nodes = await loopbackDht(Array(5).fill({ trust: f.trust }));
    let client: PhaseNode | undefined;
    try {
      const res = await publishRecord(nodes[2], "stable", "amd64", f.recordBytes);
      assert(res.accepted >= 4, `accepted by ${res.accepted} peers`);
      client = await joinDht({ clientMode: true, bootstrap: multiaddrsOf(nodes[4]) });
      const found = await lookupRecords(client, "stable", "x86_64", { timeoutMs: 5000 });
      assert(found.length >= 1);
      assert(found[0].from.length >= 2, "the value came from several peers");
      const best = bestTrusted(found, f.trust);
      assert(best);
      assertEquals(best.value.manifestCid, rawCid(await Deno.readFile(f.signed.path)));
      const providers = await findProviders(client, "stable", "amd64", { timeoutMs: 5000 });
      assert(providers.some((p) => p.id === nodes[2].peerId.toString()), JSON.stringify(providers));
    } finally {
      for (const n of [...nodes, ...(client ? [client] : [])]) await n.stop();
      await Deno.remove(f.dir, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "TM-08 DHT poisoning: a node publishing a forged record (untrusted key, higher version) does not hide the genuine one from a trust-filtering client",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const f = await fixture();
    const nodes = await loopbackDht(Array(5).fill({ trust: f.trust }));
    let forger: PhaseNode | undefined;
    let client: PhaseNode | undefined;
    try {
      await publishRecord(nodes[0], "stable", "amd64", f.recordBytes);
      // The forger: its own key, a higher version, a self-consistent signature.
      const { key: rogue } = await releaseKey(`${f.dir}/rogue`, "rogue");
      const doc = buildRecord(
        new TextEncoder().encode("evil manifest"),
        {
          version: "2099.1.1",
          expires_at: "2099-01-01T00:00:00Z",
        },
        ["http://evil.invalid/stable/amd64/manifest.json"],
        [],
      );
      const forged = formatDocument({ ...doc, signatures: [signatureFor(doc, rogue, true)] });
      forger = await joinDht({ bootstrap: multiaddrsOf(nodes[1]) });
      const res = await publishRecord(forger, "stable", "amd64", forged);
      assertEquals(res.accepted, 0, "honest nodes with a trust file refuse the forged record");
      assert(res.rejected >= 1);
      client = await joinDht({ clientMode: true, bootstrap: multiaddrsOf(forger) });
      const found = await lookupRecords(client, "stable", "amd64", { timeoutMs: 5000 });
      const versions = found.map((x) => x.record.version).sort();
      assertEquals(versions, ["2026.11.20", "2099.1.1"], "both values collected");
      const best = bestTrusted(found, f.trust);
      assert(best, "the genuine record is still found");
      assertEquals(best.value.version, "2026.11.20");
      assertEquals(best.value.manifestCid, rawCid(await Deno.readFile(f.signed.path)));
    } finally {
      for (const n of [...nodes, ...(forger ? [forger] : []), ...(client ? [client] : [])]) {
        await n.stop();
      }
      await Deno.remove(f.dir, { recursive: true });
    }
  },
});

Deno.test("TM-08 DHT poisoning: the validator refuses malformed, tampered, expired, misplaced and (with trust) untrusted records", async () => {
  const f = await fixture();
  try {
    const key = recordKey("stable", "amd64");
    const v = phaseValidator();
    await v(key, f.recordBytes);
    await phaseValidator(f.trust)(key, f.recordBytes);
    await assertRejects(v(new TextEncoder().encode("/phase/stable/amd64/other"), f.recordBytes));
    await assertRejects(async () => await v(key, new TextEncoder().encode("{}")));
    const tampered = new TextDecoder().decode(f.recordBytes).replace("2026.11.20", "2026.11.21");
    await assertRejects(async () => await v(key, new TextEncoder().encode(tampered)));
    await assertRejects(async () =>
      await phaseValidator(undefined, () => new Date("2100-01-01"))(key, f.recordBytes)
    );
    const { key: rogue } = await releaseKey(`${f.dir}/rogue`, "rogue");
    const doc = buildRecord(
      new Uint8Array(1),
      { version: "1", expires_at: "2099-01-01T00:00:00Z" },
      [],
      [],
    );
    const forged = formatDocument({ ...doc, signatures: [signatureFor(doc, rogue, true)] });
    await v(key, forged); // self-consistent: a trust-less node stores it
    await assertRejects(async () => await phaseValidator(f.trust)(key, forged));
  } finally {
    await Deno.remove(f.dir, { recursive: true });
  }
});
