import { consoleLogger, EXIT_STATUS, memoryLogger, UsageError } from "../core/mod.ts";
import { rawTasks, SYSTEM_TRUST_FILE, TRUST_FILE } from "../cli/mod.ts";
import {
  assert,
  assertEquals,
  assertMatch,
  assertRejectsCode,
  assertThrows,
  releaseKey,
  REPO,
  signFixture,
  spawnServe,
  stopLeftovers,
  stopServe,
  taskArgv,
  tempDir,
  writeRelease,
} from "../testing/mod.ts";
import { serveOptions } from "./cli.ts";
import { PROVIDER_USAGE, SERVE_USAGE } from "./_help.ts";
import { startProvider } from "./server.ts";
import { ProviderError } from "./errors.ts";
import { createHandler, newMetrics } from "./http.ts";
import { emptyCatalog } from "./catalog.ts";
import { ROOT_POLL_INTERVAL_MS } from "./_rescan.ts";

/** Longest a new release may take to be served once written, in ms (issue 11 §3: "within a few seconds"). */
const APPEAR_TIMEOUT_MS = 5_000;
/** Pause between polls of the provider in these tests, in ms. */
const POLL_MS = 50;

async function waitFor(url: string, timeoutMs: number): Promise<number> {
  const t0 = performance.now();
  while (performance.now() - t0 < timeoutMs) {
    const res = await fetch(url);
    await res.body?.cancel();
    if (res.status === 200) return performance.now() - t0;
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
  throw new Error(`${url} not served within ${timeoutMs} ms`);
}

Deno.test("serve trust defaults: without --trust the CLI looks for ./.phase/trust/trust.json then /etc/phase/trust.json; --trust replaces both", () => {
  assertEquals(serveOptions([]).trustCandidates, [TRUST_FILE, SYSTEM_TRUST_FILE]);
  const o = serveOptions(["--trust", "/tmp/phase/t.json"]);
  assertEquals([o.trustPath, o.trustCandidates], ["/tmp/phase/t.json", undefined]);
});

Deno.test("serve trust defaults (issue 11 §1): a release signed offline is served with --no-sign and no --trust when the default trust file holds its key; the provider that signs also serves it", async () => {
  const dir = await tempDir("firstrun");
  try {
    const root = `${dir}/artifacts`;
    await writeRelease(root);
    // keygen's layout: the key in keys/, the trust file in trust/.
    const { key } = await releaseKey(`${dir}/keys`);
    await Deno.mkdir(`${dir}/trust`);
    await Deno.rename(`${dir}/keys/trust.json`, `${dir}/trust/trust.json`);
    await signFixture(root, key);
    for (const sign of [false, true]) {
      const p = await startProvider({
        root,
        state: `${dir}/state-${sign}`,
        port: 0,
        sign,
        trustCandidates: [`${dir}/missing/trust.json`, `${dir}/trust/trust.json`],
        logger: memoryLogger(),
        watch: false,
      });
      try {
        const r = p.catalog().releases.get("stable/amd64");
        assert(r, JSON.stringify(p.catalog().refused));
        assertEquals([r.origin, r.signers, r.trustedBy], [
          "pre-signed",
          [key.keyid],
          `${dir}/trust/trust.json`,
        ]);
        assertEquals(p.trustFiles[0], `${dir}/trust/trust.json`);
        assertEquals((await fetch(`${p.url}/stable/amd64/manifest.json`)).status, 200);
      } finally {
        await p.close();
      }
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("serve trust (issue 11 §1): a refusal names the trust file used, the keyids it expects and the keyids that signed", async () => {
  const dir = await tempDir("firstrun");
  try {
    const root = `${dir}/artifacts`;
    await writeRelease(root);
    const signer = await releaseKey(`${dir}/keys`);
    const other = await releaseKey(`${dir}/other`);
    await signFixture(root, signer.key);
    const logger = memoryLogger();
    const p = await startProvider({
      root,
      state: `${dir}/state`,
      port: 0,
      sign: false,
      trustPath: other.trustPath,
      logger,
      watch: false,
    });
    try {
      assertEquals(p.catalog().releases.size, 0);
      const reason = p.catalog().refused[0].reason;
      assertMatch(reason, /valid trusted signature/);
      assert(reason.includes(other.trustPath), reason);
      assert(reason.includes(`expects 1 of [${other.key.keyid}]`), reason);
      assert(reason.includes(`signed by [${signer.key.keyid}]`), reason);
      assertEquals(p.catalog().refused[0].code, "E_SIGNATURE");
      const logged = logger.entries.find((e) => e.event === "release_refused");
      assert(String(logged?.fields.reason).includes(other.trustPath));
    } finally {
      await p.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("serve trust (issue 11 §1): --trust naming a missing file, or --no-sign with no trust file at all, is E_TRUST with a hint", async () => {
  const dir = await tempDir("firstrun");
  try {
    await assertRejectsCode(
      () =>
        startProvider({
          root: `${dir}/artifacts`,
          state: `${dir}/state`,
          port: 0,
          trustPath: `${dir}/nope.json`,
          logger: memoryLogger(),
          watch: false,
        }),
      ProviderError,
      "E_TRUST",
    );
    await assertRejectsCode(
      () =>
        startProvider({
          root: `${dir}/artifacts`,
          state: `${dir}/state2`,
          port: 0,
          sign: false,
          trustCandidates: [`${dir}/nope.json`],
          logger: memoryLogger(),
          watch: false,
        }),
      ProviderError,
      "E_TRUST",
    );
    // Through the CLI: the exit status of the registry, the file named, a hint.
    const out = await new Deno.Command("deno", {
      args: [
        ...taskArgv("serve"),
        "--root",
        `${dir}/artifacts`,
        "--state",
        `${dir}/state3`,
        "--trust",
        `${dir}/nope.json`,
        "--port",
        "0",
        "--no-mdns",
        "--no-dht",
      ],
      cwd: REPO,
      stdout: "piped",
      stderr: "piped",
      signal: AbortSignal.timeout(30_000),
    }).output();
    const err = new TextDecoder().decode(out.stderr);
    assertEquals(out.code, EXIT_STATUS.E_TRUST, err);
    assertMatch(err, new RegExp(`trust file ${dir}/nope.json does not exist`));
    assertMatch(err, /^hint: .*deno task keygen/m);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("serve watcher (issue 11 §3): a release written into a root that did not exist at start is served within a few seconds", async () => {
  const dir = await tempDir("firstrun");
  const logger = memoryLogger();
  const p = await startProvider({
    root: `${dir}/later/artifacts`,
    state: `${dir}/state`,
    port: 0,
    logger,
  });
  try {
    assert(logger.entries.some((e) => e.event === "root_missing"));
    await writeRelease(`${dir}/later/artifacts`);
    const ms = await waitFor(`${p.url}/stable/amd64/manifest.json`, APPEAR_TIMEOUT_MS);
    assert(ms < ROOT_POLL_INTERVAL_MS * 4, `${ms} ms`);
    // The watch now runs on the new root: a second release is seen too.
    await writeRelease(`${dir}/later/artifacts`, "beta", "amd64");
    await waitFor(`${p.url}/beta/amd64/manifest.json`, APPEAR_TIMEOUT_MS);
  } finally {
    await p.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("serve first run (issue 11 §3): every command of the empty-root hint is a real task or runs here, and the release it makes is served within seconds", async () => {
  const dir = await tempDir("firstrun");
  try {
    const root = `${dir}/artifacts`;
    const { child, out, url } = await spawnServe([
      "--port",
      "0",
      "--root",
      root,
      "--state",
      `${dir}/state`,
      "--no-mdns",
      "--no-dht",
    ]);
    assert(url, out);
    const hint = out.split("\n").filter((l) => l.startsWith("  ")).map((l) => l.trim());
    const tasks = hint.filter((l) => l.startsWith("deno task "));
    assertEquals(tasks.map((l) => l.split(" ")[2]), ["keygen", "sign"]);
    for (const t of tasks) assert(rawTasks()[t.split(" ")[2]], `${t}: no such task`);
    assertMatch(out, /snapshots: 0\.0 MiB in .*\/state\/snapshots/);
    const shell = hint.filter((l) => !l.startsWith("deno task "));
    assertEquals(shell.length, 4, out);
    // The printed lines, run as printed (the host kernel of this machine).
    const run = await new Deno.Command("sh", {
      args: ["-ec", shell.join("\n")],
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert(run.success, new TextDecoder().decode(run.stderr));
    await waitFor(
      `${url}/stable/${shell[0].split("/").pop()}/manifest.json`,
      APPEAR_TIMEOUT_MS * 2,
    );
    const { status, err } = await stopServe(child);
    assertEquals(status.code, 0, err);
  } finally {
    await stopLeftovers();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("access log on a TTY (issue 11 §3): no 'undefined' fields, and bodies that were sent have their length", async () => {
  const dir = await tempDir("firstrun");
  const lines: string[] = [];
  try {
    await writeRelease(`${dir}/root`);
    const p = await startProvider({
      root: `${dir}/root`,
      state: `${dir}/state`,
      port: 0,
      logger: consoleLogger("serve", { json: false, write: (l) => lines.push(l) }),
      watch: false,
    });
    try {
      for (const [path, accept] of [["/", "text/html"], ["/", "application/json"], ["/nope", ""]]) {
        const body = await (await fetch(`${p.url}${path}`, { headers: { accept } })).arrayBuffer();
        assert(body.byteLength > 0);
        const line = lines.findLast((l) => l.includes(`event: access`) || l.includes("access "));
        assert(line?.includes(`length=${body.byteLength}`), `${line} (${body.byteLength} bytes)`);
      }
      await (await fetch(`${p.url}/stable/amd64/kernel`, { method: "HEAD" })).arrayBuffer();
      assertMatch(lines.findLast((l) => l.includes("access"))!, /length=0 /);
      await (await fetch(`${p.url}/stable/amd64/kernel`, { headers: { range: "bytes=0-9" } }))
        .arrayBuffer();
      assertMatch(lines.findLast((l) => l.includes("access"))!, /length=10 .*range=bytes=0-9/);
      for (const l of lines) assert(!l.includes("undefined"), l);
    } finally {
      await p.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("/health (issue 11 §3): 503 starting until the first catalog is loaded, then 200 serving, 503 stopping", async () => {
  let ready = false;
  let serving = true;
  const h = createHandler({
    name: "t",
    catalog: () => emptyCatalog(),
    metrics: newMetrics(),
    logger: memoryLogger(),
    startedAt: new Date(),
    ready: () => ready,
    serving: () => serving,
  });
  const health = async () => {
    const res = await h(new Request("http://127.0.0.1/health"));
    return [res.status, (await res.json()).status];
  };
  assertEquals(await health(), [503, "starting"]);
  ready = true;
  assertEquals(await health(), [200, "serving"]);
  serving = false;
  assertEquals(await health(), [503, "stopping"]);
});

/** Size of the artifact whose hashing the readiness test watches, in bytes (sparse: no disk). */
const BIG_ARTIFACT_BYTES = 256 * 1024 * 1024;

Deno.test("/health end to end (issue 11 §3): while a 256 MiB artifact is hashed at start, /health is 503 starting and the manifest 404; once ready, 200 and the manifest is there", async () => {
  const dir = await tempDir("firstrun");
  try {
    const root = `${dir}/root`;
    await writeRelease(root);
    // A sparse kernel: hashing (and snapshotting) it takes a while, on no disk.
    const f = await Deno.open(`${root}/stable/amd64/kernel`, { write: true, truncate: true });
    await f.truncate(BIG_ARTIFACT_BYTES);
    f.close();
    // A free port known before the provider starts, so /health can be polled during start.
    const probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = (probe.addr as Deno.NetAddr).port;
    probe.close();
    const starting = startProvider({
      root,
      state: `${dir}/state`,
      port,
      snapshot: false,
      logger: memoryLogger(),
      watch: false,
    });
    let done = false;
    starting.finally(() => done = true).catch(() => {});
    const seen: string[] = [];
    while (!done) {
      try {
        const res = await fetch(`http://127.0.0.1:${port}/health`);
        const body = await res.json();
        const m = await fetch(`http://127.0.0.1:${port}/stable/amd64/manifest.json`);
        await m.body?.cancel();
        if (!done) seen.push(`${res.status} ${body.status} manifest ${m.status}`);
      } catch { /* not listening yet */ }
    }
    const p = await starting;
    try {
      assert(seen.length > 0, "no answer while the catalog was loading");
      for (const s of seen) assertEquals(s, "503 starting manifest 404");
      const res = await fetch(`${p.url}/health`);
      assertEquals([res.status, (await res.json()).status], [200, "serving"]);
      assertEquals((await fetch(`${p.url}/stable/amd64/manifest.json`)).status, 200);
    } finally {
      await p.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("serve/provider --help (issue 11 §4): a summary, every flag of the usage with the defaults, two examples, the exit statuses", async () => {
  for (const [task, usage] of [["serve", SERVE_USAGE], ["provider", PROVIDER_USAGE]] as const) {
    const out = await new Deno.Command("deno", {
      args: ["task", "-q", task, "--help"],
      cwd: REPO,
      stdout: "piped",
      stderr: "piped",
      signal: AbortSignal.timeout(30_000),
    }).output();
    const text = new TextDecoder().decode(out.stdout);
    assertEquals(out.code, 0, text);
    assertMatch(text, new RegExp(`^phase-${task} \\S+: \\S`));
    const flags = text.slice(text.indexOf("\nflags:"), text.indexOf("\nexamples:"));
    for (const f of new Set(usage.match(/--[a-z-]+/g))) {
      assertMatch(flags, new RegExp(`^  ${f}\\b`, "m"), `${task}: ${f} not described`);
    }
    const examples = text.slice(text.indexOf("\nexamples:"), text.indexOf("\nexit statuses:"));
    assert(examples.split("\n").filter((l) => l.startsWith(`  deno task ${task}`)).length >= 2);
    assertMatch(text, new RegExp(`^  ${EXIT_STATUS.E_USAGE} +E_USAGE$`, "m"));
  }
  const serve = new TextDecoder().decode(
    (await new Deno.Command("deno", { args: ["task", "-q", "serve", "--help"], cwd: REPO })
      .output()).stdout,
  );
  assertMatch(serve, /--trust FILE .*\(default: \.\/\.phase\/trust\/trust\.json/);
  assertMatch(serve, /snapshots.*as much disk again/);
  assertMatch(serve, new RegExp(`^  ${EXIT_STATUS.E_TRUST} +E_TRUST$`, "m"));
});

Deno.test("serve flags: --port, --dht-port and --max-downloads take decimal whole numbers in range only (0x50, 1e3 and ' 80' are usage errors)", () => {
  assertEquals(serveOptions(["--port", "8081", "--max-downloads", "4"]).port, 8081);
  for (
    const [flag, bad] of [
      ["--port", "0x50"],
      ["--port", "1e3"],
      ["--port", " 80"],
      ["--dht-port", "65536"],
      ["--max-downloads", "0"],
    ]
  ) {
    const e = assertThrows(() => serveOptions([flag, bad]), UsageError);
    assert(e.message.startsWith(`${flag} must be a whole number`), e.message);
    assertEquals(e.hint, SERVE_USAGE);
  }
});
