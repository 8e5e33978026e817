/**
 * End-to-end tests of the `fetch` entrypoint as a subprocess under its own
 * permission set (the exact `deno run` line of its task in deno.json).
 */
import {
  assert,
  assertEquals,
  assertMatch,
  makeRelease,
  serveRelease,
  taskArgv,
  waitFor,
} from "../../testing/mod.ts";
import { auditCache, cacheLayout } from "../cache.ts";
import { EXIT_STATUS } from "../../core/mod.ts";

const ROOT = new URL("../../", import.meta.url).pathname;

function spawnFetch(
  task: "fetch" | "fetch-private",
  args: string[],
  env: Record<string, string> = {},
) {
  return new Deno.Command(Deno.execPath(), {
    args: [...taskArgv(task), ...args],
    cwd: ROOT,
    env,
    stdout: "piped",
    stderr: "piped",
  }).spawn();
}

async function runFetch(
  task: "fetch" | "fetch-private",
  args: string[],
  env: Record<string, string> = {},
) {
  const out = await spawnFetch(task, args, env).output();
  return {
    code: out.code,
    stdout: new TextDecoder().decode(out.stdout),
    stderr: new TextDecoder().decode(out.stderr),
  };
}

Deno.test("fetch entrypoint: exit 0 with every artifact verified, JSON lines on stderr, result on stdout", async () => {
  const rel = await makeRelease();
  const srv = serveRelease(rel);
  try {
    const cache = `${rel.dir}/cache`;
    const r = await runFetch("fetch", [
      "--manifest",
      srv.url,
      "--trust",
      rel.trustPath,
      "--cache",
      cache,
    ]);
    assertEquals(r.code, 0, r.stderr);
    const result = JSON.parse(r.stdout.trim());
    assertEquals(result.ok, true);
    assertEquals(result.version, "2026.11.20");
    assertEquals(result.artifacts.kernel.path, `${cache}/cas/sha256/${rel.hexOf("kernel")}`);
    for (const line of r.stderr.trim().split("\n")) JSON.parse(line); // not a TTY: JSON lines only
    assert(r.stderr.includes('"event":"progress"'));
    assertEquals(await auditCache(cacheLayout(cache)), []);
    // A manifest signed by another key: verify's exit code (E_SIGNATURE = 4), nothing fetched.
    const other = await makeRelease();
    const bad = await runFetch("fetch", [
      "--manifest",
      srv.url,
      "--trust",
      other.trustPath,
      "--cache",
      `${rel.dir}/c2`,
    ]);
    assertEquals(bad.code, EXIT_STATUS.E_SIGNATURE, bad.stderr);
    assert(bad.stderr.includes("phase-fetch: error:"));
    await Deno.remove(other.dir, { recursive: true });
  } finally {
    await srv.close();
    await Deno.remove(rel.dir, { recursive: true });
  }
});

Deno.test("fetch entrypoint: kill -9 at 20 random points never leaves a bad file in cas/, and the next run completes", async () => {
  const rel = await makeRelease({
    sizes: { kernel: 6_000_000, initramfs: 3_000_000, rootfs: 2_000_000 },
  });
  const srv = serveRelease(rel);
  srv.chunkDelayMs = 8; // ~8 MB/s: the whole fetch takes ~1.4 s, so kills land everywhere
  const cache = `${rel.dir}/cache`;
  const args = ["--manifest", srv.url, "--trust", rel.trustPath, "--cache", cache, "--no-parallel"];
  try {
    let killedMidway = 0;
    // Until 20 runs were really killed mid-way (a run that finished first does not count).
    for (let i = 0; i < 40 && killedMidway < 20; i++) {
      // Start from an empty cas/ now and then so kills also land early in later artifacts.
      if (i % 4 === 0) await Deno.remove(`${cache}/cas`, { recursive: true }).catch(() => {});
      const child = spawnFetch("fetch", args);
      await new Promise((r) => setTimeout(r, 150 + Math.random() * 900));
      try {
        child.kill("SIGKILL");
      } catch { /* already exited */ }
      const st = await child.status;
      if (st.signal === "SIGKILL") killedMidway++;
      assert(st.code === 0 || st.signal === "SIGKILL", `run ${i}: ${JSON.stringify(st)}`);
      assertEquals(await auditCache(cacheLayout(cache)), [], `after kill ${i}`);
    }
    assert(killedMidway >= 20, `20 runs were killed mid-way (${killedMidway})`);
    const done = await runFetch("fetch", args);
    assertEquals(done.code, 0, done.stderr);
    assertEquals(await auditCache(cacheLayout(cache)), []);
    for (const name of rel.files.keys()) {
      assertEquals(
        await Deno.readFile(`${cache}/cas/sha256/${rel.hexOf(name)}`),
        rel.files.get(name),
      );
    }
  } finally {
    await srv.close();
    await Deno.remove(rel.dir, { recursive: true });
  }
});

type Snapshot = Map<string, string>;
async function snapshot(dir: string, skip?: string): Promise<Snapshot> {
  const out: Snapshot = new Map();
  const walk = async (d: string) => {
    for await (const e of Deno.readDir(d)) {
      const p = `${d}/${e.name}`;
      if (skip && (p === skip || p.startsWith(skip + "/"))) continue;
      const st = await Deno.lstat(p);
      out.set(
        p,
        `${e.isDirectory ? "d" : e.isSymlink ? "l" : "f"}:${st.size}:${st.mtime?.getTime()}`,
      );
      if (e.isDirectory) await walk(p);
    }
  };
  await walk(dir);
  return out;
}

/** Runs a shell script and returns stdout (the test set cannot read /dev or /proc paths itself). */
async function sh(script: string, env: Record<string, string> = {}): Promise<string> {
  const out = await new Deno.Command("sh", {
    args: ["-c", script],
    env,
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) {
    throw new Error(`sh failed: ${script}: ${new TextDecoder().decode(out.stderr)}`);
  }
  return new TextDecoder().decode(out.stdout);
}

Deno.test("TM-13 private-mode privacy: fetch-private writes only under its tmpfs root (cache dir and $HOME unchanged)", async () => {
  const rel = await makeRelease();
  const srv = serveRelease(rel);
  const home = `${rel.dir}/home`;
  await Deno.mkdir(`${home}/.config`, { recursive: true });
  await Deno.writeTextFile(`${home}/.profile`, "# a user's home\n");
  const cache = `${rel.dir}/cache`; // a normal cache exists on disk too
  await Deno.mkdir(`${cache}/cas/sha256`, { recursive: true });
  try {
    const env = {
      HOME: home,
      DENO_DIR: Deno.env.get("DENO_DIR") ?? `${Deno.env.get("HOME")}/.cache/deno`,
      PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
    };
    const beforeHome = await snapshot(home);
    const beforeDir = await snapshot(rel.dir, home);
    // A private mount namespace with a tmpfs on /run/phase, as an initramfs
    // has: the mount is gone when the namespace ends, the machine is untouched.
    const argv = [Deno.execPath(), ...taskArgv("fetch-private")].map((a) => `'${a}'`).join(" ");
    const list =
      "find /run/phase -path /run/phase/t/root -prune -o -printf '%p %y %s %T@\\n' | sort";
    const script = `set -e
mkdir -p /run/phase
mount -t tmpfs -o size=64m,mode=0755 tmpfs /run/phase
mkdir /run/phase/t
cp '${rel.trustPath}' /run/phase/t/trust.json
mkdir -m 0700 /run/phase/t/root
${list}
echo '=== run'
set +e
cd '${ROOT}'
${argv} --root /run/phase/t/root --manifest '${srv.url}' --trust /run/phase/t/trust.json 2>/dev/null
echo "=== code $?"
set -e
${list}
echo '=== cas'
cd /run/phase/t/root/cas/sha256 && sha256sum *
`;
    const out = await sh(`exec unshare -m sh -c "$SCRIPT"`, { ...env, SCRIPT: script });
    const [before, rest] = out.split("=== run\n");
    const code = /=== code (\d+)\n/.exec(rest);
    assertEquals(code?.[1], "0", out);
    const [after, cas] = rest.split(/=== code \d+\n/)[1].split("=== cas\n");
    // Outside the root nothing changed on the tmpfs; on disk, nothing changed at all.
    assertEquals(after, before);
    assertEquals(await snapshot(home), beforeHome);
    assertEquals(await snapshot(rel.dir, home), beforeDir);
    // Inside the root: the verified artifacts, each hashing to its name.
    for (const name of rel.files.keys()) {
      assert(cas.includes(`${rel.hexOf(name)}  ${rel.hexOf(name)}`), cas);
    }
    // A root that is not a tmpfs (/run is ext4 here) is refused before anything is written.
    const notTmpfs = `/run/phase/client-test-${crypto.randomUUID()}`;
    const refused = await runFetch("fetch-private", [
      "--root",
      notTmpfs,
      "--manifest",
      srv.url,
      "--trust",
      rel.trustPath,
    ], env);
    assertEquals(refused.code, EXIT_STATUS.E_PRIVATE_ROOT, refused.stderr);
    assert(refused.stderr.includes("not a tmpfs"), refused.stderr);
    await Deno.lstat(notTmpfs).then(() => {
      throw new Error(`${notTmpfs} was created`);
    }, (err) => assert(err instanceof Deno.errors.NotFound));
    // The private set cannot reach the ordinary cache at all.
    const escaped = await runFetch("fetch-private", [
      "--root",
      `${rel.dir}/cache`,
      "--manifest",
      srv.url,
      "--trust",
      rel.trustPath,
    ], env);
    assert(escaped.code !== 0);
    assertEquals(await snapshot(rel.dir, home), beforeDir);
  } finally {
    await srv.close();
    await Deno.remove(rel.dir, { recursive: true });
  }
});

Deno.test("fetch entrypoint: --candidates - takes discover's JSON on stdin and fetches the first candidate that verifies", async () => {
  const rel = await makeRelease();
  const rogueRel = await makeRelease({ version: "2099.1.1" });
  const genuine = serveRelease(rel);
  const rogue = serveRelease(rogueRel);
  try {
    const discovered = {
      candidates: [
        { manifestUrl: rogue.url, mirrors: [], providers: [], source: "mdns", version: "2099.1.1" },
        { manifestUrl: genuine.url, mirrors: [], providers: [], source: "mdns" },
      ],
      rejected: [],
      steps: [],
    };
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        ...taskArgv("fetch"),
        "--candidates",
        "-",
        "--trust",
        rel.trustPath,
        "--cache",
        `${rel.dir}/cache`,
      ],
      cwd: ROOT,
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const w = child.stdin.getWriter();
    await w.write(new TextEncoder().encode(JSON.stringify(discovered)));
    await w.close();
    const out = await child.output();
    const stderr = new TextDecoder().decode(out.stderr);
    assertEquals(out.code, 0, stderr);
    const res = JSON.parse(new TextDecoder().decode(out.stdout));
    assertEquals(res.source, genuine.url);
    assertEquals(res.version, "2026.11.20");
    assert(stderr.includes('"event":"candidate_failed"') && stderr.includes("E_SIGNATURE"), stderr);
    // Besides the trust-chain probe (formats.md §1.1), only the manifest was asked for.
    assertEquals(
      rogue.requests.map((r) => r.path).filter((p) => !p.startsWith("/trust/")),
      ["/stable/amd64/manifest.json"],
    );
  } finally {
    await genuine.close();
    await rogue.close();
    await Deno.remove(rel.dir, { recursive: true });
    await Deno.remove(rogueRel.dir, { recursive: true });
  }
});

Deno.test("TM-06 slow retrieval: a FIFO given as a file to read is refused at once, never opened", async () => {
  await Deno.mkdir("/tmp/phase", { recursive: true });
  const dir = await Deno.makeTempDir({ dir: "/tmp/phase" });
  try {
    const fifo = `${dir}/fifo`;
    const mk = await new Deno.Command("mkfifo", { args: [fifo] }).output();
    assertEquals(mk.code, 0);
    const t0 = performance.now();
    // No writer ever opens the FIFO: opening it for reading would block forever.
    const trust = await runFetch("fetch", [
      "--manifest",
      "http://127.0.0.1:9/stable/amd64/manifest.json",
      "--trust",
      fifo,
      "--cache",
      `${dir}/cache`,
    ]);
    assertEquals(trust.code, EXIT_STATUS.E_TRUST, trust.stderr);
    assert(trust.stderr.includes(`${fifo} is not a regular file`), trust.stderr);
    const rel = await makeRelease({ dir: `${dir}/rel` });
    const candidates = await runFetch("fetch", [
      "--candidates",
      fifo,
      "--trust",
      rel.trustPath,
      "--cache",
      `${dir}/cache`,
    ]);
    assertEquals(candidates.code, EXIT_STATUS.E_USAGE, candidates.stderr);
    assert(candidates.stderr.includes(`${fifo} is not a regular file`), candidates.stderr);
    // --have takes a manifest digest only; anything else is a usage error before any request.
    const have = await runFetch("fetch", [
      "--manifest",
      "http://127.0.0.1:9/stable/amd64/manifest.json",
      "--trust",
      rel.trustPath,
      "--cache",
      `${dir}/cache`,
      "--have",
      "sha256:XYZ",
    ]);
    assertEquals(have.code, EXIT_STATUS.E_USAGE, have.stderr);
    assert(have.stderr.includes("--have needs a digest sha256:"), have.stderr);
    assert(performance.now() - t0 < 20_000, "refused without waiting for a writer");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/** Longest the interrupted fetch may take to reach the point where it is interrupted, in milliseconds. */
const INTERRUPT_WAIT_MS = 30_000;
/** Pause the slow server makes before each 64 KiB chunk, in milliseconds. */
const SLOW_CHUNK_DELAY_MS = 40;

Deno.test("fetch entrypoint: Ctrl-C on 'deno task fetch' keeps the partial file, says how to resume, exits E_INTERRUPTED; the resume fetches only the rest and its rate counts only new bytes", async () => {
  const rel = await makeRelease({ sizes: { kernel: 4_000_000, initramfs: 200_000 } });
  const srv = serveRelease(rel);
  srv.chunkDelayMs = SLOW_CHUNK_DELAY_MS;
  const cache = `${rel.dir}/cache`;
  const partial = `${cacheLayout(cache).partialDir}/${rel.hexOf("kernel")}`;
  const size = async (p: string) => (await Deno.stat(p).catch(() => ({ size: 0 }))).size;
  try {
    // A terminal's Ctrl-C signals the whole foreground process group.
    // setsid gives the test such a group. The entrypoint runs with the
    // fetch task's own command line, not under `deno task`: the task runner,
    // signalled too, may answer 130 itself before the entrypoint's own exit
    // status reaches it (seen under load), and that status is what this
    // test is about.
    const child = new Deno.Command("setsid", {
      args: [Deno.execPath(), ...taskArgv("fetch"), "--manifest", srv.url, "--trust"]
        .concat([rel.trustPath, "--cache", cache]),
      cwd: ROOT,
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const output = child.output();
    await waitFor(async () => await size(partial) >= 3_000_000, INTERRUPT_WAIT_MS, "3 MB");
    Deno.kill(-child.pid, "SIGINT");
    const out = await output;
    const stderr = new TextDecoder().decode(out.stderr);
    assertEquals(out.code, EXIT_STATUS.E_INTERRUPTED, stderr);
    const kept = await size(partial);
    assert(kept >= 3_000_000 && kept < 4_000_000, String(kept));
    // What is kept is the artifact's true prefix, and nothing unverified reached cas/.
    assertEquals(await Deno.readFile(partial), rel.files.get("kernel")!.subarray(0, kept));
    assertEquals(await size(`${cacheLayout(cache).casDir}/${rel.hexOf("kernel")}`), 0);
    assertMatch(stderr, /phase-fetch: error: interrupted \(Ctrl-C\): kept 1 partial file\(s\), /);
    assert(stderr.includes(`kernel `) && stderr.includes(`of 3.8 MiB (${partial})`), stderr);
    const resume =
      `deno task fetch --manifest ${srv.url} --trust ${rel.trustPath} --cache ${cache}`;
    assert(stderr.includes(`\nhint: resume with: ${resume} (`), stderr);
    // The exact command of the hint resumes: a Range request from the kept byte.
    srv.requests.length = 0;
    const again = await new Deno.Command(Deno.execPath(), {
      args: resume.split(" ").slice(1),
      cwd: ROOT,
      stdout: "piped",
      stderr: "piped",
    }).output();
    const err2 = new TextDecoder().decode(again.stderr);
    assertEquals(again.code, 0, err2);
    assert(
      srv.requests.some((r) =>
        r.path.endsWith(rel.hexOf("kernel")) || r.path.endsWith("/kernel")
      ) &&
        srv.requests.some((r) => r.range === `bytes=${kept}-`),
      JSON.stringify(srv.requests),
    );
    const lines = err2.split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l))
      .filter((l) => l.event === "progress");
    const last = lines.at(-1);
    assertEquals(last.total_bytes, 4_200_000);
    assertEquals(last.transferred_bytes, 4_200_000 - kept);
    // The server sends at most 64 KiB per SLOW_CHUNK_DELAY_MS: a rate above
    // that (with the resumed prefix counted, ~4x) would be a lie.
    const ceiling = (65_536 * 1000) / SLOW_CHUNK_DELAY_MS;
    assert(last.rate_bps > 0 && last.rate_bps <= ceiling * 1.1, `${last.rate_bps} > ${ceiling}`);
  } finally {
    await srv.close();
    await Deno.remove(rel.dir, { recursive: true });
  }
});

Deno.test("TM-13 private-mode privacy: fetch --rediscover runs under the fetch set (interfaces listed for mDNS) and fetches; fetch-private and --socks refuse it before any request", async () => {
  const rel = await makeRelease();
  const srv = serveRelease(rel);
  try {
    const r = await runFetch("fetch", [
      "--manifest",
      srv.url,
      "--trust",
      rel.trustPath,
      "--cache",
      `${rel.dir}/cache`,
      "--rediscover",
    ]);
    assertEquals(r.code, 0, r.stderr);
    assertEquals(await auditCache(cacheLayout(`${rel.dir}/cache`)), []);
    const before = srv.requests.length;
    for (
      const [task, extra] of [
        ["fetch-private", ["--root", `${rel.dir}/private`]],
        ["fetch", ["--cache", `${rel.dir}/c2`, "--socks", "127.0.0.1:9"]],
      ] as const
    ) {
      const refused = await runFetch(task, [
        "--manifest",
        srv.url,
        "--trust",
        rel.trustPath,
        ...extra,
        "--rediscover",
      ]);
      assertEquals(refused.code, EXIT_STATUS.E_USAGE, refused.stderr);
      assertMatch(refused.stderr, /--rediscover asks the LAN \(mDNS\)/);
    }
    assertEquals(srv.requests.length, before, "nothing was asked");
  } finally {
    await srv.close();
    await Deno.remove(rel.dir, { recursive: true });
  }
});

Deno.test("fetch entrypoint: --headers-timeout gives up on a provider that accepts and never answers within that deadline, not the default 10 s", async () => {
  const rel = await makeRelease();
  // Accepts connections, reads nothing, answers nothing (an address that is up but hangs).
  const silent = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const held: Deno.Conn[] = [];
  const accepting = (async () => {
    try {
      for await (const c of silent) held.push(c);
    } catch { /* closed */ }
  })();
  try {
    const t0 = performance.now();
    const r = await runFetch("fetch", [
      "--manifest",
      `http://127.0.0.1:${silent.addr.port}/stable/amd64/manifest.json`,
      "--trust",
      rel.trustPath,
      "--cache",
      `${rel.dir}/cache`,
      "--headers-timeout",
      "1s",
    ]);
    const ms = performance.now() - t0;
    assertEquals(r.code, EXIT_STATUS.E_FETCH, r.stderr);
    assert(held.length > 0, "fetch connected");
    // Deno's own start is part of it; the default deadline alone is 10 s.
    assert(ms < 8_000, `gave up after ${ms.toFixed(0)} ms`);
  } finally {
    silent.close();
    await accepting;
    for (const c of held) c.close();
    await Deno.remove(rel.dir, { recursive: true });
  }
});
