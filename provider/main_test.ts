import { EXIT_STATUS } from "../core/mod.ts";
import { parseTrust } from "../verify/mod.ts";
import {
  assert,
  assertEquals,
  assertMatch,
  REPO,
  spawnServe,
  stopLeftovers,
  stopServe,
  tempDir,
  writeRelease,
} from "../testing/mod.ts";
import { serveOptions } from "./cli.ts";

Deno.test("TM-12 compromised component: serve defaults to loopback:8080, ./artifacts and its own state folder ./.phase/provider (never ./.phase/keys)", () => {
  const o = serveOptions([]);
  assertEquals([o.host, o.port, o.root, o.state, o.sign], [
    "127.0.0.1",
    8080,
    "./artifacts",
    "./.phase/provider",
    true,
  ]);
});

Deno.test("serve: first run generates a 0600 key and trust.json, prints the keyid, hints on an empty root, and stops on SIGTERM with status 0", async () => {
  const dir = await tempDir("serve");
  try {
    const { child, out, url } = await spawnServe([
      "--port",
      "0",
      "--root",
      `${dir}/artifacts`,
      "--state",
      `${dir}/state`,
      "--no-mdns",
      "--no-dht",
    ]);
    assert(url, out);
    const keyid = /provider key: (ed25519:[0-9a-f]{64})/.exec(out)?.[1];
    assert(keyid, out);
    assertMatch(out, /no release under .* yet/);
    assertEquals((await Deno.stat(`${dir}/state/provider.pem`)).mode! & 0o777, 0o600);
    const trust = parseTrust(await Deno.readFile(`${dir}/state/trust.json`));
    assert(trust.keys.has(keyid));
    const info = await (await fetch(`${url}/`)).json();
    assertEquals(info.channels, []);
    const { status, err } = await stopServe(child);
    assertEquals(status.code, 0, err);
    assertMatch(err, /"event":"stopped"/);
  } finally {
    await stopLeftovers();
    await Deno.remove(dir, { recursive: true });
  }
});

async function providerCli(args: string[]) {
  const out = await new Deno.Command("deno", {
    args: ["task", "-q", "provider", ...args],
    cwd: REPO,
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(30_000),
  }).output();
  return {
    code: out.code,
    out: new TextDecoder().decode(out.stdout),
    err: new TextDecoder().decode(out.stderr),
  };
}

Deno.test("serve: JSON access log on stderr, 'provider status|list' tables and --json, SIGINT stops with status 0", async () => {
  const dir = await tempDir("serve");
  try {
    await writeRelease(`${dir}/artifacts`, "stable", "amd64");
    const { child, url, out } = await spawnServe([
      "--port",
      "0",
      "--root",
      `${dir}/artifacts`,
      "--state",
      `${dir}/state`,
      "--no-mdns",
      "--no-dht",
      "--name",
      "cli-test",
    ]);
    assert(url, out);
    assertMatch(out, /stable\/amd64 \S+ \(generated\)/);
    await (await fetch(`${url}/stable/amd64/kernel`)).arrayBuffer();
    const status = await providerCli(["status", url]);
    assertEquals(status.code, 0, status.err);
    assertMatch(status.out, /^name\s+cli-test$/m);
    assertMatch(status.out, /^releases\s+1$/m);
    const sj = JSON.parse((await providerCli(["status", url, "--json"])).out);
    assertEquals(sj.name, "cli-test");
    assertEquals(sj.perArtifact["stable/amd64/kernel"].bytes, 70_000);
    const list = await providerCli(["list", url]);
    assertMatch(list.out, /^channel\s+arch\s+version\s+origin\s+expires\s+signers\s+manifest$/m);
    // Issue 11 §4: signers and the manifest URL, as the JSON has them.
    const keyid = /provider key: (ed25519:[0-9a-f]{64})/.exec(out)![1];
    assertMatch(
      list.out,
      new RegExp(
        `^stable\\s+amd64\\s+\\S+\\s+generated\\s+\\S+\\s+${keyid}\\s+${url}/stable/amd64/manifest.json$`,
        "m",
      ),
    );
    assertMatch(list.out, /^channel\s+arch\s+artifact\s+size\s+digest$/m);
    assertMatch(list.out, /^stable\s+amd64\s+kernel\s+70000\s+sha256:[0-9a-f]{64}$/m);
    const lj = JSON.parse((await providerCli(["list", url, "--json"])).out);
    assertEquals(lj[0].artifacts.map((a: { name: string }) => a.name), ["kernel", "initramfs"]);
    const bad = await providerCli(["status", "http://127.0.0.1:1"]);
    assertEquals(bad.code, EXIT_STATUS.E_FETCH);
    assertMatch(bad.err, /phase-provider: error: cannot reach/);
    const { status: st, err } = await stopServe(child, "SIGINT");
    assertEquals(st.code, 0, err);
    const lines = err.trim().split("\n").map((l) => JSON.parse(l));
    const access = lines.find((l) => l.event === "access" && l.path === "/stable/amd64/kernel");
    assert(access, err);
    assertEquals([access.method, access.status, access.length], ["GET", 200, 70_000]);
    assert(typeof access.ts === "string" && typeof access.ms === "number");
  } finally {
    await stopLeftovers();
    await Deno.remove(dir, { recursive: true });
  }
});
