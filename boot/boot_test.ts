import { createHash } from "node:crypto";
import { EXIT_STATUS, memoryLogger } from "../core/mod.ts";
import { keygen, loadSigningKey, type SigningKey, signRelease } from "../sign/mod.ts";
import { parseTrust } from "../verify/mod.ts";
import { DEFAULT_POLICY, type Policy, PROBE_TIMEOUT_MS } from "../client/mod.ts";
import { assert, assertEquals, tempDir } from "../testing/mod.ts";
import {
  type BootDeps,
  BootError,
  cachedRelease,
  runChain,
  SEED_PATHS,
  type StepResult,
} from "./boot.ts";

function sha256Hex(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

interface ReleaseOpts {
  readonly arch?: "amd64" | "arm64";
  /** When the manifest was signed (expiry is one day later). */
  readonly signedAt?: Date;
}

/** Puts a real signed release of `version` into a CAS cache the way the fetcher lays it out. */
async function cacheRelease(
  dir: string,
  cache: string,
  version: string,
  key: SigningKey,
  o: ReleaseOpts = {},
): Promise<string> {
  const arch = o.arch ?? "amd64";
  const root = `${dir}/rel-${version}-${arch}-${crypto.randomUUID()}`;
  await Deno.mkdir(`${root}/stable/${arch}`, { recursive: true });
  await Deno.writeTextFile(`${root}/stable/${arch}/kernel`, `kernel ${version} ${arch}`);
  await Deno.writeTextFile(`${root}/stable/${arch}/initramfs`, `initramfs ${version} ${arch}`);
  await signRelease({
    root,
    channel: "stable",
    arch,
    version,
    now: o.signedAt ?? new Date(),
    expiresInMs: 86_400_000,
    cmdline: "console=ttyS0",
  }, key);
  await Deno.mkdir(`${cache}/cas/sha256`, { recursive: true });
  for (const f of ["manifest.json", "kernel", "initramfs"]) {
    const bytes = await Deno.readFile(`${root}/stable/${arch}/${f}`);
    await Deno.writeFile(`${cache}/cas/sha256/${sha256Hex(bytes)}`, bytes);
  }
  return `${cache}/cas/sha256/${
    sha256Hex(await Deno.readFile(`${root}/stable/${arch}/manifest.json`))
  }`;
}

async function keys(dir: string, name = "release") {
  const k = await keygen(`${dir}/keys-${name}`, name);
  return {
    key: await loadSigningKey(k.paths.privateKey),
    trustPath: k.paths.trust,
    trust: parseTrust(await Deno.readFile(k.paths.trust)),
  };
}

Deno.test("cachedRelease picks the newest cached release that verifies, with its artifacts' CAS paths", async () => {
  const dir = await tempDir("boot-test");
  try {
    const { key, trust } = await keys(dir);
    const cache = `${dir}/cache`;
    await cacheRelease(dir, cache, "2026.11.1", key);
    const newest = await cacheRelease(dir, cache, "2026.11.20", key);
    await cacheRelease(dir, cache, "2026.9.30", key);
    const sel = { trust, channel: "stable", arch: "amd64" };
    const got = await cachedRelease(cache, sel);
    assert(got, "a cached release is found");
    assertEquals(got.manifest, newest);
    assertEquals(got.version, "2026.11.20");
    assertEquals(await Deno.readTextFile(got.artifacts.kernel), "kernel 2026.11.20 amd64");
    assertEquals(await Deno.readTextFile(got.artifacts.initramfs), "initramfs 2026.11.20 amd64");
    assertEquals(await cachedRelease(cache, { ...sel, channel: "beta" }), undefined);
    assertEquals(await cachedRelease(`${dir}/no-cache`, sel), undefined);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("TM-02 rollback: a local boot from the cache skips newer manifests that do not verify (untrusted signer, expired, other arch, below the floor) and chooses the older valid one", async () => {
  const dir = await tempDir("boot-test");
  try {
    const { key, trust } = await keys(dir);
    const { key: stranger } = await keys(dir, "stranger");
    const cache = `${dir}/cache`;
    const valid = await cacheRelease(dir, cache, "2026.11.1", key);
    const unsigned = await cacheRelease(dir, cache, "2099.1.1", stranger);
    const expired = await cacheRelease(dir, cache, "2099.2.2", key, {
      signedAt: new Date(Date.now() - 3 * 86_400_000),
    });
    const otherArch = await cacheRelease(dir, cache, "2099.3.3", key, { arch: "arm64" });
    // A planted file that only looks like a manifest.
    const junk = `${cache}/cas/sha256/${"a".repeat(64)}`;
    await Deno.writeTextFile(junk, '{"schema":1,"version":"2099.9.9","channel":"stable"}');
    const log = memoryLogger();
    const got = await cachedRelease(cache, { trust, channel: "stable", arch: "amd64", log });
    assert(got, "the older valid release is chosen");
    assertEquals(got.manifest, valid);
    assertEquals(got.version, "2026.11.1");
    const skipped = new Map(
      log.entries.filter((e) => e.event === "cache_manifest_skipped").map((
        e,
      ) => [e.fields.path, e.fields.code]),
    );
    assertEquals(skipped.get(unsigned), "E_SIGNATURE");
    assertEquals(skipped.get(expired), "E_EXPIRED");
    assertEquals(skipped.get(otherArch), "E_MISMATCH");
    assertEquals(skipped.get(junk), "E_SCHEMA");
    // A floor above the valid release leaves nothing to boot.
    assertEquals(
      await cachedRelease(cache, { trust, channel: "stable", arch: "amd64", floor: "2027.1.1" }),
      undefined,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

// ---- The orchestrator's decisions, with the steps injected (no processes, no QEMU).

const MANIFEST_URL = "http://10.0.2.100/stable/amd64/manifest.json";

interface Call {
  readonly step: string;
  readonly args: readonly string[];
}

interface Script {
  discover?: StepResult;
  /** One result, or one per call in order. */
  fetch?: StepResult | StepResult[];
  kexec?: StepResult;
  fallback?: StepResult;
}

const OK = (line: unknown): StepResult => ({ code: 0, stdout: JSON.stringify(line) + "\n" });

const DISCOVERED = OK({
  candidates: [{ manifestUrl: MANIFEST_URL, mirrors: [], providers: [], source: "manual" }],
  rejected: [],
  steps: [{ step: "manual", ms: 1, found: 1 }],
});

function fetched(dir: string): StepResult {
  return OK({
    ok: true,
    version: "2026.11.20",
    channel: "stable",
    arch: "amd64",
    manifest: `${dir}/cache/cas/sha256/${"1".repeat(64)}`,
    source: MANIFEST_URL,
    artifacts: {
      kernel: { path: `${dir}/k`, digest: `sha256:${"2".repeat(64)}`, size: 1, cached: false },
      initramfs: { path: `${dir}/i`, digest: `sha256:${"3".repeat(64)}`, size: 1, cached: true },
    },
  });
}

const LOADED = OK({
  ok: true,
  channel: "stable",
  arch: "amd64",
  version: "2026.11.20",
  method: "file",
  argv: ["/sbin/kexec", "-s", "-l", "k"],
  dryRun: true,
});

async function chain(
  dir: string,
  policy: Policy,
  script: Script,
  o: { dryRun?: boolean; trust?: string; seedVerity?: string; seedRootfs?: string } = {},
) {
  await Deno.mkdir(`${dir}/run`, { recursive: true });
  await Deno.writeTextFile(`${dir}/run/interfaces`, "lo\neth0\n");
  const calls: Call[] = [];
  const said: string[] = [];
  const log = memoryLogger();
  const deps: BootDeps = {
    policy,
    arch: "amd64",
    paths: {
      ...SEED_PATHS,
      bin: "/nonexistent/bin",
      trust: o.trust ?? `${dir}/no-trust.json`,
      cache: `${dir}/cache`,
      run: `${dir}/run`,
      interfaces: `${dir}/run/interfaces`,
    },
    log,
    say: (l) => said.push(l),
    dryRun: o.dryRun ?? true,
    ...(o.seedVerity ? { seedVerity: o.seedVerity } : {}),
    ...(o.seedRootfs ? { seedRootfs: o.seedRootfs } : {}),
    run: (program, args) => {
      const name = program.slice(program.lastIndexOf("/") + 1).replace(/^phase-/, "");
      const step = name === "kexec" && args[0] === "fallback" ? "fallback" : name;
      calls.push({ step, args });
      if (step === "udhcpc") return Promise.resolve({ code: 0, stdout: "" });
      const key = step === "fetch-private" ? "fetch" : step as keyof Script;
      const planned = script[key];
      const r = Array.isArray(planned) ? planned.shift() : planned;
      if (!r) throw new Error(`unexpected step ${step}`);
      return Promise.resolve(r);
    },
  };
  const outcome = runChain(deps).then((v) => ({ ok: true as const, v }), (e) => ({
    ok: false as const,
    e: e as Error,
  }));
  const r = await outcome;
  return { r, calls, said, log };
}

const steps = (calls: readonly Call[]) => calls.map((c) => c.step);
const argOf = (args: readonly string[], flag: string) => args[args.indexOf(flag) + 1];
const FETCH_FAILED: StepResult = { code: EXIT_STATUS.E_FETCH, stdout: "" };

Deno.test("boot: network path: discover -> fetch -> kexec load (which verifies); no separate verify step", async () => {
  const dir = await tempDir("boot-test");
  try {
    const { r, calls } = await chain(dir, DEFAULT_POLICY, {
      discover: DISCOVERED,
      fetch: fetched(dir),
      kexec: LOADED,
    });
    assert(r.ok, r.ok ? "" : r.e.message);
    assertEquals(r.v.source, "network");
    assertEquals(steps(calls), ["udhcpc", "discover", "fetch", "kexec"]);
    const kexec = calls[3].args;
    assertEquals(kexec[0], "load");
    assertEquals(argOf(kexec, "--manifest"), `${dir}/cache/cas/sha256/${"1".repeat(64)}`);
    assert(kexec.includes(`kernel=${dir}/k`) && kexec.includes(`initramfs=${dir}/i`));
    assertEquals(argOf(kexec, "--trust"), `${dir}/no-trust.json`);
    assertEquals(argOf(kexec, "--state"), `${dir}/cache/state`);
    assert(kexec.includes("--dry-run"));
    assert(!kexec.includes("--seed-verity"), "no verity seed, nothing handed on");
    // TM-14: a Secure Boot seed's verity parameters go to kexec, for the target.
    const sb = await chain(dir, DEFAULT_POLICY, {
      discover: DISCOVERED,
      fetch: fetched(dir),
      kexec: LOADED,
    }, { seedVerity: "ab:cd:3" });
    assert(sb.r.ok, sb.r.ok ? "" : sb.r.e.message);
    assertEquals(argOf(sb.calls.find((c) => c.step === "kexec")!.args, "--seed-verity"), "ab:cd:3");
    assert(!sb.calls.find((c) => c.step === "fetch")!.args.includes("--have"));
    // Issue 17: the bytes on a USB seed's own partition are not downloaded again.
    const own = `sha256:${"ab".repeat(32)}`;
    const usb = await chain(dir, DEFAULT_POLICY, {
      discover: DISCOVERED,
      fetch: fetched(dir),
      kexec: LOADED,
    }, { seedRootfs: own });
    assert(usb.r.ok, usb.r.ok ? "" : usb.r.e.message);
    assertEquals(argOf(usb.calls.find((c) => c.step === "fetch")!.args, "--have"), own);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("boot: a command-line provider is fetched from at once, with no discover step (issue 17); when that fails, discovery runs as before and fetch again", async () => {
  const dir = await tempDir("boot-test");
  try {
    const cmdline: Policy = {
      ...DEFAULT_POLICY,
      provider: MANIFEST_URL,
      providerFromCmdline: true,
    };
    // The URL answers: no discovery process at all.
    const fast = await chain(dir, cmdline, { fetch: fetched(dir), kexec: LOADED });
    assert(fast.r.ok, fast.r.ok ? "" : fast.r.e.message);
    assertEquals(steps(fast.calls), ["udhcpc", "fetch", "kexec"]);
    assertEquals(argOf(fast.calls[1].args, "--manifest"), MANIFEST_URL);
    assert(fast.calls[1].args.includes("--rediscover"));
    // A URL that does not answer fails within discover's probe deadline, not fetch's 10 s.
    assertEquals(argOf(fast.calls[1].args, "--headers-timeout"), `${PROBE_TIMEOUT_MS / 1000}s`);
    assert(
      fast.said.some((l) => l.startsWith("phase-boot: discover: not run")),
      fast.said.join("\n"),
    );
    assertEquals(await Deno.readTextFile(`${dir}/run/provider`), MANIFEST_URL + "\n");
    // Private mode: the same, into tmpfs.
    const priv = await chain(dir, { ...cmdline, mode: "private" }, {
      fetch: fetched(dir),
      kexec: LOADED,
    });
    assert(priv.r.ok, priv.r.ok ? "" : priv.r.e.message);
    assertEquals(steps(priv.calls), ["udhcpc", "fetch-private", "kexec"]);

    // The URL fails (down, a portal): discover runs as it always did, then fetch from what it found.
    const lan = "http://10.0.2.7:8080/stable/amd64/manifest.json";
    const slow = await chain(dir, cmdline, {
      discover: OK({
        candidates: [{ manifestUrl: lan, mirrors: [], providers: [], source: "mdns" }],
        rejected: [],
        steps: [{ step: "manual", ms: 1, found: 0 }, { step: "lan", ms: 1, found: 1 }],
      }),
      fetch: [FETCH_FAILED, fetched(dir)],
      kexec: LOADED,
    });
    assert(slow.r.ok, slow.r.ok ? "" : slow.r.e.message);
    assertEquals(steps(slow.calls), ["udhcpc", "fetch", "discover", "fetch", "kexec"]);
    assert(slow.calls[2].args.includes("--provider-first"), slow.calls[2].args.join(" "));
    assertEquals(argOf(slow.calls[3].args, "--manifest"), lan);
    assert(
      !slow.calls[3].args.includes("--headers-timeout"),
      "found by discovery: fetch's own limits",
    );
    assert(slow.log.entries.some((e) => e.event === "cmdline_fetch_failed"));
    assert(slow.said.some((l) => l.includes("command-line provider failed")), slow.said.join("\n"));
    assertEquals(await Deno.readTextFile(`${dir}/run/provider`), lan + "\n");

    // A provider named by the policy file, not the command line: discovery first, as before.
    const file = await chain(dir, { ...cmdline, providerFromCmdline: false }, {
      discover: DISCOVERED,
      fetch: fetched(dir),
      kexec: LOADED,
    });
    assert(file.r.ok, file.r.ok ? "" : file.r.e.message);
    assertEquals(steps(file.calls), ["udhcpc", "discover", "fetch", "kexec"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("TM-09 key compromise and rotation: discover and kexec get the state where fetch keeps the accepted trust versions: <cache>/state, and in private mode the tmpfs root's", async () => {
  const dir = await tempDir("boot-test");
  try {
    for (
      const [mode, state] of [
        ["internet", `${dir}/cache/state`],
        ["local", `${dir}/cache/state`],
        ["private", `${SEED_PATHS.privateRoot}/state`],
      ] as const
    ) {
      const { r, calls } = await chain(dir, { ...DEFAULT_POLICY, mode }, {
        discover: DISCOVERED,
        fetch: fetched(dir),
        kexec: LOADED,
      });
      assert(r.ok, r.ok ? "" : r.e.message);
      const by = (step: string) => calls.find((c) => c.step === step)!.args;
      assertEquals(argOf(by("discover"), "--state"), state, mode);
      assertEquals(argOf(by("kexec"), "--state"), state, mode);
      const fetchStep = mode === "private" ? "fetch-private" : "fetch";
      const where = mode === "private" ? "--root" : "--cache";
      // The state is the one inside what fetch writes into (cacheLayout: <root>/state).
      assertEquals(`${argOf(by(fetchStep), where)}/state`, state, mode);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("TM-13 private-mode privacy: fetch re-discovers LAN peers (--rediscover, mDNS) in internet and local mode, never in private mode", async () => {
  const dir = await tempDir("boot-test");
  try {
    for (const mode of ["internet", "local", "private"] as const) {
      const { r, calls } = await chain(dir, { ...DEFAULT_POLICY, mode }, {
        discover: DISCOVERED,
        fetch: fetched(dir),
        kexec: LOADED,
      });
      assert(r.ok, r.ok ? "" : r.e.message);
      const step = mode === "private" ? "fetch-private" : "fetch";
      const args = calls.find((c) => c.step === step)!.args;
      assertEquals(args.includes("--rediscover"), mode !== "private", `${mode}: ${args.join(" ")}`);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("boot: the policy is loaded once: discover gets its effective values as flags and reads no policy file or command line", async () => {
  const dir = await tempDir("boot-test");
  try {
    const policy: Policy = {
      ...DEFAULT_POLICY,
      mode: "local",
      channel: "beta",
      provider: MANIFEST_URL,
      providerFromCmdline: true,
      bootstrap: ["/ip4/10.0.0.1/tcp/4001"],
    };
    const { calls } = await chain(dir, policy, { discover: DISCOVERED, fetch: FETCH_FAILED });
    const d = calls.find((c) => c.step === "discover");
    assert(d, JSON.stringify(calls));
    assertEquals(argOf(d.args, "--mode"), "local");
    assertEquals(argOf(d.args, "--channel"), "beta");
    assertEquals(argOf(d.args, "--provider"), MANIFEST_URL);
    assertEquals(argOf(d.args, "--bootstrap"), "/ip4/10.0.0.1/tcp/4001");
    assertEquals(argOf(d.args, "--arch"), "amd64");
    assert(d.args.includes("--provider-first"), d.args.join(" "));
    for (const f of ["--policy", "--cmdline", "--order"]) {
      assert(!d.args.includes(f), `${f} in ${d.args.join(" ")}`);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("boot: local mode falls back to the newest cached release that verifies when fetch fails", async () => {
  const dir = await tempDir("boot-test");
  try {
    const { key, trustPath } = await keys(dir);
    const { key: stranger } = await keys(dir, "stranger");
    const valid = await cacheRelease(dir, `${dir}/cache`, "2026.11.1", key);
    const planted = await cacheRelease(dir, `${dir}/cache`, "2099.1.1", stranger);
    const { r, calls, said } = await chain(
      dir,
      { ...DEFAULT_POLICY, mode: "local" },
      { discover: DISCOVERED, fetch: FETCH_FAILED, kexec: LOADED },
      { trust: trustPath },
    );
    assert(r.ok, r.ok ? "" : r.e.message);
    assertEquals(r.v.source, "cache");
    assertEquals(r.v.manifest, valid);
    assertEquals(steps(calls), ["udhcpc", "discover", "fetch", "kexec"]);
    assertEquals(argOf(calls[3].args, "--manifest"), valid);
    assert(said.some((l) => l.includes(`skipped ${planted}`)), said.join("\n"));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("boot: local mode with no valid cached release fails E_NO_RELEASE; internet mode never falls back to the cache", async () => {
  const dir = await tempDir("boot-test");
  try {
    const { key, trustPath } = await keys(dir);
    await cacheRelease(dir, `${dir}/cache`, "2026.11.1", key);
    const local = await chain(dir, { ...DEFAULT_POLICY, mode: "local" }, {
      discover: DISCOVERED,
      fetch: FETCH_FAILED,
    }, { trust: `${dir}/keys-release/../no-such-trust.json` });
    assert(!local.r.ok);
    assert(local.r.e.message.includes("trust"), local.r.e.message);
    const emptyCache = await chain(`${dir}/other`, { ...DEFAULT_POLICY, mode: "local" }, {
      discover: DISCOVERED,
      fetch: FETCH_FAILED,
    }, { trust: trustPath });
    assert(!emptyCache.r.ok);
    assert(emptyCache.r.e instanceof BootError);
    assertEquals(emptyCache.r.e.code, "E_NO_RELEASE");
    const internet = await chain(dir, DEFAULT_POLICY, {
      discover: DISCOVERED,
      fetch: FETCH_FAILED,
    }, { trust: trustPath });
    assert(!internet.r.ok && internet.r.e instanceof BootError);
    assertEquals(internet.r.e.code, "E_STEP");
    assertEquals(steps(internet.calls), ["udhcpc", "discover", "fetch"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("boot: kexec E_LOAD or E_EXEC runs the chainload fallback; other failures and private mode do not", async () => {
  const dir = await tempDir("boot-test");
  try {
    for (const code of [EXIT_STATUS.E_LOAD, EXIT_STATUS.E_EXEC]) {
      for (const seedVerity of [undefined, "ab:cd:3"]) {
        const { r, calls } = await chain(dir, DEFAULT_POLICY, {
          discover: DISCOVERED,
          fetch: fetched(dir),
          kexec: { code, stdout: "" },
          fallback: { code: EXIT_STATUS.E_FALLBACK, stdout: "" },
        }, { dryRun: false, ...(seedVerity ? { seedVerity } : {}) });
        assert(!r.ok && r.e instanceof BootError);
        assertEquals(r.e.code, "E_KEXEC");
        assertEquals(steps(calls), ["udhcpc", "discover", "fetch", "kexec", "fallback"]);
        const load = calls[3].args;
        const fb = calls[4].args;
        assert(load.includes("--exec"));
        assertEquals(load.includes("--seed-verity"), seedVerity !== undefined);
        // `fallback` takes what load verifies and stages, nothing of the load itself.
        const loadOnly = new Set(["--exec", "--seed-verity", seedVerity]);
        assertEquals(fb, ["fallback", ...load.slice(1).filter((a) => !loadOnly.has(a))]);
      }
    }
    for (
      const [policy, code] of [
        [DEFAULT_POLICY, EXIT_STATUS.E_DIGEST],
        [{ ...DEFAULT_POLICY, mode: "private" as const }, EXIT_STATUS.E_LOAD],
      ] as const
    ) {
      const { r, calls } = await chain(dir, policy, {
        discover: DISCOVERED,
        fetch: fetched(dir),
        kexec: { code, stdout: "" },
      }, { dryRun: false });
      assert(!r.ok && r.e instanceof BootError);
      assertEquals(r.e.code, "E_KEXEC");
      assertEquals(steps(calls).at(-1), "kexec");
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("boot: a malformed step result line is E_STEP naming the step and the member", async () => {
  const dir = await tempDir("boot-test");
  try {
    const cases: [Script, RegExp][] = [
      [{ discover: { code: 0, stdout: "not json\n" } }, /'discover'.*not strict JSON/],
      [
        { discover: OK({ candidates: [{ manifestUrl: 7 }], rejected: [], steps: [] }) },
        /'discover'/,
      ],
      [{ discover: OK({ candidates: [], rejected: [], steps: [], extra: 1 }) }, /unknown member/],
      [{ discover: DISCOVERED, fetch: OK({ ok: true }) }, /'fetch'.*missing member/],
      [
        { discover: DISCOVERED, fetch: fetched(dir), kexec: { code: 0, stdout: "" } },
        /'kexec'.*no result line/,
      ],
    ];
    for (const [script, re] of cases) {
      const { r } = await chain(dir, DEFAULT_POLICY, script);
      assert(!r.ok && r.e instanceof BootError, r.ok ? "resolved" : r.e.message);
      assertEquals(r.e.code, "E_STEP");
      assert(re.test(r.e.message), `${r.e.message} !~ ${re}`);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("boot: a failed discover still shows its rejected candidates", async () => {
  const dir = await tempDir("boot-test");
  try {
    const { r, said } = await chain(dir, DEFAULT_POLICY, {
      discover: {
        code: EXIT_STATUS.E_CAPTIVE,
        stdout: JSON.stringify({
          candidates: [],
          rejected: [{
            url: MANIFEST_URL,
            source: "manual",
            reason: "redirected",
            captivePortal: true,
          }],
          steps: [],
        }) + "\n",
      },
    });
    assert(!r.ok);
    assert(
      said.some((l) => l.includes(`rejected ${MANIFEST_URL}`) && l.includes("captive portal")),
      said.join("\n"),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
