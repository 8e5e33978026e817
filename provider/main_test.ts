import { parseTrust } from "../verify/mod.ts";
import { assert, assertEquals, assertMatch, tempDir } from "../testing/mod.ts";
import { serveOptions } from "./cli.ts";

/** Longest the spawned provider may take to print its banner, in ms. */
const START_TIMEOUT_MS = 20_000;
/** Longest a stop may take, in ms. */
const STOP_TIMEOUT_MS = 15_000;
const REPO = new URL("..", import.meta.url).pathname;

/** Spawns `deno task serve ARGS` and reads stdout until the banner is complete. */
export async function spawnServe(args: string[]) {
  const child = new Deno.Command("deno", {
    args: ["task", "-q", "serve", ...args],
    cwd: REPO,
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const reader = child.stdout.getReader();
  let out = "";
  const deadline = setTimeout(() => child.kill("SIGKILL"), START_TIMEOUT_MS);
  while (!out.includes("phase-serve: ready\n")) {
    const { done, value } = await reader.read();
    if (done) break;
    out += new TextDecoder().decode(value);
  }
  clearTimeout(deadline);
  reader.releaseLock();
  const url = /on (http:\/\/\S+)/.exec(out)?.[1];
  return { child, out, url };
}

/** SIGTERMs a spawned provider and returns its status and stderr. */
export async function stopServe(child: Deno.ChildProcess) {
  child.kill("SIGTERM");
  const killer = setTimeout(() => child.kill("SIGKILL"), STOP_TIMEOUT_MS);
  const [status, err] = await Promise.all([child.status, new Response(child.stderr).text()]);
  await child.stdout.cancel().catch(() => {});
  clearTimeout(killer);
  return { status, err };
}

Deno.test("serve: defaults are loopback:8080, ./artifacts, ./.phase", () => {
  const o = serveOptions([]);
  assertEquals([o.host, o.port, o.root, o.state, o.sign], [
    "127.0.0.1",
    8080,
    "./artifacts",
    "./.phase",
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
    await Deno.remove(dir, { recursive: true });
  }
});
