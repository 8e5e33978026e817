import { deepStrictEqual as assertEquals, throws as assertThrows } from "node:assert/strict";
import { decodeRecord, selectRecordIndex, verifyRecord } from "./record.ts";
import { parseTrust } from "./trust.ts";
import { NOW, testKey, trustOf } from "../testing/mod.ts";
import type { JsonValue } from "./strict_json.ts";

const VEC = new URL("../../shared/vectors/", import.meta.url).pathname;

function record(
  version: string,
  k: ReturnType<typeof testKey>,
  over: Record<string, JsonValue> = {},
) {
  const doc: Record<string, JsonValue> = {
    manifest_cid: "bafkreiexample",
    version,
    expires_at: "2026-12-20T00:00:00Z",
    mirrors: ["http://127.0.0.1:8080/stable/amd64/manifest.json"],
    providers: [],
    ...over,
  };
  const s = k.sign(doc);
  return new TextEncoder().encode(
    JSON.stringify({ ...doc, signatures: [{ ...s, public: k.publicB64 }] }),
  );
}

Deno.test("record: the vector record verifies under trust-a", async () => {
  const bytes = await Deno.readFile(`${VEC}record-good.json`);
  const trust = parseTrust(await Deno.readFile(`${VEC}trust-a.json`));
  assertEquals(verifyRecord(bytes, trust, NOW).value.version, "2026.11.20");
});

Deno.test("TM-08 DHT poisoning: records with a key that does not sign them, or expired, are rejected", () => {
  const k = testKey(), other = testKey();
  const good = record("1.0", k);
  const forgedPublic = new TextDecoder().decode(good).replace(k.publicB64, other.publicB64);
  assertThrows(
    () => decodeRecord(new TextEncoder().encode(forgedPublic), NOW),
    /does not match its keyid/,
  );
  const altered = new TextDecoder().decode(good).replace('"1.0"', '"9.0"');
  assertThrows(() => decodeRecord(new TextEncoder().encode(altered), NOW), /does not verify/);
  assertThrows(() => decodeRecord(good, new Date("2027-01-01T00:00:00Z")), /expired/);
});

Deno.test("TM-08 DHT poisoning: a self-consistent record by an untrusted key with a higher version does not win", () => {
  const release = testKey(), attacker = testKey();
  const trust = trustOf(1, release);
  const values = [record("2026.11.20", release), record("2099.1.1", attacker)];
  const trusted = values.flatMap((b) => {
    try {
      return [verifyRecord(b, trust, NOW).value];
    } catch {
      return [];
    }
  });
  assertEquals(trusted.length, 1);
  assertEquals(trusted[selectRecordIndex(trusted)].version, "2026.11.20");
});

Deno.test("record: selection prefers the highest version, then the latest expiry", () => {
  const k = testKey();
  const rs = [
    decodeRecord(record("2026.11.1", k), NOW),
    decodeRecord(record("2026.11.20", k, { expires_at: "2026-12-01T00:00:00Z" }), NOW),
    decodeRecord(record("2026.11.20", k, { expires_at: "2026-12-30T00:00:00Z" }), NOW),
  ];
  assertEquals(selectRecordIndex(rs), 2);
  assertEquals(selectRecordIndex([]), -1);
});
