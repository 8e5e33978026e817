/**
 * Verifier throughput: streaming artifact check (size + SHA-256 through
 * verify/'s checkArtifactFile) vs `openssl dgst -sha256` on the same file,
 * and manifest verifications per second.
 *
 * Run: deno run -P=test bench/verify/verify_bench.ts [MiB]
 */
import { createHash } from "node:crypto";
import { checkArtifactFile, verifyManifest } from "../../verify/mod.ts";
import { manifestDoc, NOW, signedManifest, testKey, trustOf } from "../../testing/mod.ts";

const MIB = Number(Deno.args[0] ?? 1024);
await Deno.mkdir("/tmp/phase", { recursive: true });
const dir = await Deno.makeTempDir({ dir: "/tmp/phase", prefix: "bench-verify-" });
try {
  const path = `${dir}/artifact`;
  const chunk = new Uint8Array(1024 * 1024);
  crypto.getRandomValues(chunk.subarray(0, 65536));
  const h = createHash("sha256");
  const f = await Deno.open(path, { write: true, create: true });
  for (let i = 0; i < MIB; i++) {
    chunk[0] = i & 0xff;
    h.update(chunk);
    await f.write(chunk);
  }
  f.close();
  const digest = "sha256:" + h.digest("hex");
  const size = MIB * 1024 * 1024;
  const k = testKey();
  const doc = manifestDoc({ artifacts: { kernel: { digest, size }, initramfs: { digest, size } } });
  const v = verifyManifest(signedManifest(doc, k), trustOf(1, k), { now: NOW });

  const best = async (fn: () => Promise<void>, runs = 3) => {
    let min = Infinity;
    for (let i = 0; i < runs; i++) {
      const t = performance.now();
      await fn();
      min = Math.min(min, performance.now() - t);
    }
    return min;
  };
  const phaseMs = await best(async () => {
    const file = await Deno.open(path);
    await checkArtifactFile(v, "kernel", file);
  });
  const opensslMs = await best(async () => {
    const o = await new Deno.Command("openssl", { args: ["dgst", "-sha256", path], stdout: "null" })
      .output();
    if (o.code !== 0) throw new Error("openssl failed");
  });
  const bytes = signedManifest(doc, k);
  const trust = trustOf(1, k);
  const n = 5000;
  const t0 = performance.now();
  for (let i = 0; i < n; i++) verifyManifest(bytes, trust, { now: NOW });
  const perSec = n / ((performance.now() - t0) / 1000);
  const mbps = (ms: number) => (size / 1e6 / (ms / 1000)).toFixed(0);
  console.log(JSON.stringify({
    mib: MIB,
    phase_check_artifact_mb_s: Number(mbps(phaseMs)),
    openssl_dgst_mb_s: Number(mbps(opensslMs)),
    ratio: Number((opensslMs / phaseMs).toFixed(2)),
    manifest_verifications_per_s: Math.round(perSec),
  }));
} finally {
  await Deno.remove(dir, { recursive: true });
}
