import { parseTrust } from "../verify/mod.ts";
import {
  assert,
  assertEquals,
  assertMatch,
  spawnServe,
  stopServe,
  tempDir,
} from "../testing/mod.ts";
import { serveOptions } from "./cli.ts";

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
