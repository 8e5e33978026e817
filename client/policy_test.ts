import { assertEquals, assertRejectsCode, assertThrows } from "../testing/mod.ts";
import { ClientError } from "./errors.ts";
import {
  applyCmdline,
  DEFAULT_POLICY,
  loadPolicy,
  parsePolicy,
  parseTomlSubset,
  splitCmdline,
} from "./policy.ts";

Deno.test("policy: the formats.md §6 example parses", () => {
  const p = parsePolicy(`mode = "internet"        # internet | local | private
channel = "stable"
cache_enabled = true     # forced false in private mode
min_version = "2025.10.01"
allow_tor = false
provider = ""            # manual manifest URL
bootstrap = ["/ip4/127.0.0.1/tcp/4001/p2p/12D3KooWabc", "/dns4/x.example/tcp/1"]
`);
  assertEquals(p.mode, "internet");
  assertEquals(p.channel, "stable");
  assertEquals(p.cacheEnabled, true);
  assertEquals(p.minVersion, "2025.10.01");
  assertEquals(p.allowTor, false);
  assertEquals(p.provider, "");
  assertEquals(p.bootstrap.length, 2);
});

Deno.test("policy: private mode forces cache_enabled false", () => {
  assertEquals(parsePolicy(`mode = "private"\ncache_enabled = true\n`).cacheEnabled, false);
});

Deno.test("policy: strictness errors name the line", () => {
  const cases: [string, RegExp][] = [
    [`[table]\n`, /:1: tables are not supported/],
    [`mode = "internet"\nmode = "local"\n`, /:2: 'mode' is set twice/],
    [`colour = "red"\n`, /unknown key 'colour'/],
    [`mode = "usb"\n`, /mode must be internet, local or private/],
    [`cache_enabled = "yes"\n`, /must be true or false/],
    [`a.b = "x"\n`, /dotted keys/],
    [`channel = "stable" extra\n`, /unexpected text/],
    [`channel = "unterminated\n`, /unterminated string/],
    [`min_version = "v1"\n`, /not a version/],
    [`provider = "ftp://x/"\n`, /must be http\(s\)/],
    [`channel = 1\n`, /value must be/],
    [`bootstrap = ["not-a-multiaddr"]\n`, /not a multiaddr/],
  ];
  for (const [text, re] of cases) {
    const err = assertThrows(() => parsePolicy(text), ClientError);
    assertEquals(err.code, "E_POLICY");
    if (!re.test(err.message)) throw new Error(`'${err.message}' does not match ${re}`);
  }
});

Deno.test("policy: strings honour escapes and comments after values", () => {
  const kv = parseTomlSubset(`provider = "http://h/a\\u0062#x" # comment\n`);
  assertEquals(kv.get("provider"), "http://h/ab#x");
});

Deno.test("policy: kernel command line overrides, manual URL goes first", () => {
  const { policy, ignored } = applyCmdline(
    DEFAULT_POLICY,
    'console=ttyS0 phase.mode=private phase.channel=beta "phase.provider=http://10.0.2.100/stable/amd64/manifest.json" phase.min_version=2026.1 phase.debug=1',
  );
  assertEquals(policy.mode, "private");
  assertEquals(policy.cacheEnabled, false);
  assertEquals(policy.channel, "beta");
  assertEquals(policy.provider, "http://10.0.2.100/stable/amd64/manifest.json");
  assertEquals(policy.providerFromCmdline, true);
  assertEquals(policy.minVersion, "2026.1");
  assertEquals(ignored, ["phase.debug=1"]);
  assertThrows(() => applyCmdline(DEFAULT_POLICY, "phase.mode=usb"), ClientError, "mode must be");
  assertEquals(splitCmdline(' a "b c"  d=" e"\n'), ["a", "b c", "d= e"]);
});

Deno.test("policy: loadPolicy reads a file and a command line; a missing file means defaults", async () => {
  await Deno.mkdir("/tmp/phase", { recursive: true });
  const dir = await Deno.makeTempDir({ dir: "/tmp/phase" });
  try {
    await Deno.writeTextFile(
      `${dir}/policy.toml`,
      `channel = "beta"\nprovider = "http://a/m.json"\n`,
    );
    await Deno.writeTextFile(`${dir}/cmdline`, "quiet phase.channel=edge\n");
    const { policy } = await loadPolicy({
      policyPath: `${dir}/policy.toml`,
      cmdlinePath: `${dir}/cmdline`,
    });
    assertEquals(policy.channel, "edge");
    assertEquals(policy.provider, "http://a/m.json");
    assertEquals(policy.providerFromCmdline, false);
    const none = await loadPolicy({
      policyPath: `${dir}/absent.toml`,
      cmdlinePath: `${dir}/absent`,
    });
    assertEquals(none.policy, DEFAULT_POLICY);
    await Deno.writeFile(`${dir}/big.toml`, new Uint8Array(70 * 1024).fill(0x23));
    await assertRejectsCode(loadPolicy({ policyPath: `${dir}/big.toml` }), ClientError, "E_POLICY");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
