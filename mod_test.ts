/**
 * The public API as a toolkit user meets it: a project OUTSIDE this
 * repository, with its own deno.json that links this package by path,
 * imports the sub-path exports (`@phase/phase/verify`, ...) and signs,
 * serves, fetches, verifies and runs a WASM job. Nothing from this
 * repository's import map or unstable flags leaks into it.
 */
import { deepStrictEqual as assertEquals, ok } from "node:assert/strict";

const REPO = new URL(".", import.meta.url).pathname.replace(/\/$/, "");

const SCRIPT = `
import { EXIT_STATUS, PhaseError } from "@phase/phase/core";
import { keygen, loadSigningKey, signRelease } from "@phase/phase/sign";
import { parseTrust, verifyManifest } from "@phase/phase/verify";
import { startProvider } from "@phase/phase/provider";
import { fetchRelease } from "@phase/phase/client";
import { runJob } from "@phase/phase/wasm";

const dir = Deno.args[0];
const hello = Deno.args[1];
const { paths } = await keygen(dir + "/keys", "release");
const key = await loadSigningKey(paths.privateKey);
const release = dir + "/artifacts/stable/amd64";
await Deno.mkdir(release, { recursive: true });
await Deno.writeFile(release + "/kernel", new Uint8Array(70_000).fill(7));
await Deno.writeFile(release + "/initramfs", new Uint8Array(30_000).fill(9));
const signed = await signRelease({
  root: dir + "/artifacts", channel: "stable", arch: "amd64", version: "2026.11.29",
  expiresInMs: 86_400_000, now: new Date(),
}, key);
const trustBytes = await Deno.readFile(paths.trust);
const trust = parseTrust(trustBytes);
const provider = await startProvider({
  root: dir + "/artifacts", state: dir + "/state", host: "127.0.0.1", port: 0,
  sign: false, trustPath: paths.trust, mdns: false, dht: false, watch: false,
  logger: { info() {}, warn() {}, error() {} },
});
try {
  const fetched = await fetchRelease({
    manifestUrl: provider.url + "/stable/amd64/manifest.json",
    trust, cacheDir: dir + "/cache", channel: "stable", arch: "amd64",
  });
  const again = await verifyManifest(await Deno.readFile(signed.path), trust, {
    channel: "stable", arch: "amd64", now: new Date(),
  });
  let refused = "";
  try {
    await verifyManifest(await Deno.readFile(signed.path), trust, {
      channel: "stable", arch: "arm64", now: new Date(),
    });
  } catch (err) {
    if (err instanceof PhaseError) refused = err.code + "=" + EXIT_STATUS[err.code];
  }
  const job = await runJob({
    module: await Deno.readFile(hello), input: new TextEncoder().encode("Hello, World"),
  });
  console.log(JSON.stringify({
    fetchedVersion: fetched.verified.value.version,
    artifacts: Object.keys(fetched.artifacts).sort(),
    verifiedVersion: again.value.version,
    refused,
    job: job.outcome,
    stdout: new TextDecoder().decode(job.stdout),
  }));
} finally {
  await provider.close();
}
`;

Deno.test("public API: a project outside the repository signs, serves, fetches, verifies and runs a job through the sub-path exports", async () => {
  await Deno.mkdir("/tmp/phase", { recursive: true });
  const dir = await Deno.makeTempDir({ dir: "/tmp/phase", prefix: "outside-" });
  try {
    // The import map names the package by its bare name only: a sub-path
    // import resolves through deno.json "exports", as it would from JSR.
    await Deno.writeTextFile(
      `${dir}/deno.json`,
      JSON.stringify({
        links: [REPO],
        imports: {
          "@phase/phase": "jsr:@phase/phase@^0.1.0",
          "@phase/phase/": "jsr:/@phase/phase@^0.1.0/",
        },
        unstable: ["worker-options"],
        lock: false,
      }),
    );
    await Deno.writeTextFile(`${dir}/script.ts`, SCRIPT);
    const out = await new Deno.Command("deno", {
      args: [
        "run",
        "-q",
        "--no-prompt",
        `--allow-read=${dir},${REPO}`,
        `--allow-write=${dir}`,
        "--allow-net=127.0.0.1",
        "--allow-env",
        "--allow-sys=hostname",
        "script.ts",
        dir,
        `${REPO}/wasm/examples/hello.wasm`,
      ],
      cwd: dir,
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stderr = new TextDecoder().decode(out.stderr);
    assertEquals(out.code, 0, stderr);
    const result = JSON.parse(new TextDecoder().decode(out.stdout).trim().split("\n").at(-1)!);
    assertEquals(result.fetchedVersion, "2026.11.29");
    assertEquals(result.verifiedVersion, "2026.11.29");
    assertEquals(result.artifacts, ["initramfs", "kernel"]);
    ok(result.refused.startsWith("E_MISMATCH="), result.refused);
    assertEquals(result.job, "ok");
    // hello.wat reverses its input (wasm/examples/hello.wat).
    assertEquals(result.stdout, [..."Hello, World"].reverse().join(""));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
