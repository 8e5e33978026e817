import { assertEquals, assertRejectsCode, assertThrows } from "../testing/mod.ts";
import { ClientError } from "./errors.ts";
import { applyCmdline, DEFAULT_POLICY, loadPolicy, parsePolicy, splitCmdline } from "./policy.ts";

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

Deno.test("policy: node_accept_jobs and unsafe_node_open (the booted target's Plasm node); default: no node", () => {
  assertEquals(DEFAULT_POLICY.nodeAcceptJobs, []);
  assertEquals(DEFAULT_POLICY.unsafeNodeOpen, false);
  const k = "ed25519:" + "ab".repeat(32);
  const p = parsePolicy(`node_accept_jobs = ["${k}", "${k}"]\nunsafe_node_open = true\n`);
  assertEquals(p.nodeAcceptJobs, [k]);
  assertEquals(p.unsafeNodeOpen, true);
  const cases: [string, RegExp][] = [
    [`node_accept_jobs = ["ed25519:00"]\n`, /:1: node_accept_jobs: 'ed25519:00' is not a keyid/],
    [`node_accept_jobs = "${k}"\n`, /node_accept_jobs: must be an array of keyid strings/],
    [`unsafe_node_open = "yes"\n`, /unsafe_node_open: must be true or false/],
    [
      `node_accept_jobs = [${Array(65).fill(`"${k}"`).join(",")}]\n`,
      /more than 64 submitter keys/,
    ],
  ];
  for (const [text, re] of cases) {
    const err = assertThrows(() => parsePolicy(text), ClientError);
    assertEquals(err.code, "E_POLICY");
    if (!re.test(err.message)) throw new Error(`'${err.message}' does not match ${re}`);
  }
});

Deno.test("policy: private mode forces cache_enabled false", () => {
  assertEquals(parsePolicy(`mode = "private"\ncache_enabled = true\n`).cacheEnabled, false);
});

Deno.test("policy: strictness errors name the line and the key", () => {
  const cases: [string, RegExp][] = [
    [`[table]\n`, /policy\.toml: table: unknown table 'table'/],
    [`mode = "internet"\n[phase]\nmode = "local"\n`, /unknown table 'phase'/],
    [`mode = "internet"\nmode = "local"\n`, /policy\.toml:2:\d+: .*mode/],
    [`colour = "red"\n`, /policy\.toml:1: colour: unknown key 'colour'/],
    [`channel = "stable"\nmode = "usb"\n`, /:2: mode: mode must be internet, local or private/],
    [`cache_enabled = "yes"\n`, /:1: cache_enabled: must be true or false, got a string/],
    [`a.b = "x"\n`, /unknown table 'a'/],
    [`channel = "stable" extra\n`, /policy\.toml:1:\d+: /],
    [`channel = "unterminated\n`, /policy\.toml:1:\d+: /],
    [`min_version = "v1"\n`, /not a version/],
    [`provider = "ftp://x/"\n`, /must be http\(s\)/],
    [`channel = 1\n`, /:1: channel: must be a string, got a number/],
    [`min_version = 2025\n`, /min_version: must be a string, got a number/],
    [`allow_tor = 1979-05-27\n`, /allow_tor: must be true or false, got a date/],
    [`bootstrap = ["not-a-multiaddr"]\n`, /not a multiaddr/],
    [`bootstrap = [1, 2]\n`, /bootstrap: must be an array of multiaddr strings/],
    [`"__proto__" = "x"\n`, /:1:1: __proto__: .*unsafe/],
    [`mode = "internet"\n` + "#".repeat(64 * 1024), /larger than 65536 bytes/],
  ];
  for (const [text, re] of cases) {
    const err = assertThrows(() => parsePolicy(text), ClientError);
    assertEquals(err.code, "E_POLICY");
    if (!re.test(err.message)) throw new Error(`'${err.message}' does not match ${re}`);
  }
});

Deno.test("policy: full TOML syntax (literal strings, escapes, multi-line arrays, comments) reads", () => {
  const p = parsePolicy(`# Phase policy
provider = "http://h/a\\u0062#x" # comment
channel = 'beta'
bootstrap = [
  "/ip4/127.0.0.1/tcp/4001", # first
  "/dns4/x.example/tcp/1",
]
`);
  assertEquals(p.provider, "http://h/ab#x");
  assertEquals(p.channel, "beta");
  assertEquals(p.bootstrap, ["/ip4/127.0.0.1/tcp/4001", "/dns4/x.example/tcp/1"]);
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
  // The seed init's own words (a Secure Boot seed's dm-verity parameters) are known, not ignored.
  assertEquals(
    applyCmdline(DEFAULT_POLICY, "phase.verity=ab phase.verity_salt=cd phase.verity_blocks=3")
      .ignored,
    [],
  );
  // TM-14: they are handed on (to phase-kexec, for the target), all three or none.
  assertEquals(
    applyCmdline(DEFAULT_POLICY, "phase.verity=ab phase.verity_salt=cd phase.verity_blocks=3")
      .seedVerity,
    "ab:cd:3",
  );
  assertEquals(applyCmdline(DEFAULT_POLICY, "console=ttyS0").seedVerity, undefined);
  // A USB seed names its own partition's bytes: handed to fetch as --have (issue 17).
  const own = applyCmdline(DEFAULT_POLICY, `phase.seed_rootfs=${"ab".repeat(32)}`);
  assertEquals(own.seedRootfs, `sha256:${"ab".repeat(32)}`);
  assertEquals(own.ignored, []);
  assertEquals(applyCmdline(DEFAULT_POLICY, "console=ttyS0").seedRootfs, undefined);
  assertThrows(
    () => applyCmdline(DEFAULT_POLICY, "phase.seed_rootfs=../../etc"),
    ClientError,
    "64 lowercase hex",
  );
  assertThrows(
    () => applyCmdline(DEFAULT_POLICY, "phase.verity=ab phase.verity_blocks=3"),
    ClientError,
    "needs all of",
  );
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
