/**
 * bench/serve: the provider against nginx and against a bare `Deno.serve`
 * (the runtime's own ceiling, bench/serve/bare.ts) on the same bytes in the
 * same run, with wrk on 127.0.0.1: a large artifact with 4 connections
 * (bytes/s, provider vs nginx) and the ~1 KiB manifest with 50 connections
 * (requests/s, provider vs bare Deno.serve and vs nginx; issue 17 §2).
 *
 * The provider runs as `deno task serve` does (its permission set, JSON
 * access log on, batched) with its stderr, the access log, written to a
 * file as nginx writes its own; at the end the log's access lines are
 * counted against the requests wrk made, so a run with the log off or
 * losing lines is caught. Within a round the servers are measured one
 * after the other, and the order rotates from round to round, so that the
 * shared machine's load falls on all of them alike.
 *
 * Usage: deno run -q --no-prompt -P=test bench/serve/serve_bench.ts [MiB=256] [seconds=5] [rounds=3]
 *
 * @module
 */
import { REPO, taskArgv, tempDir } from "../../testing/mod.ts";

const MIB = Number(Deno.args[0] ?? 256);
const SECONDS = Number(Deno.args[1] ?? 5);
const ROUNDS = Number(Deno.args[2] ?? 3);
const NGINX_PORT = 18_000 + Math.floor(Math.random() * 1000);
/** Longest nginx may take to start, in ms. */
const NGINX_START_MS = 5000;
/** Longest the provider or the bare server may take to print its address, in ms. */
const SPAWN_START_MS = 30_000;
/** Longest a server may take to stop after SIGTERM before SIGKILL, in ms. */
const STOP_MS = 15_000;
async function run(cmd: string, args: string[]): Promise<string> {
  const out = await new Deno.Command(cmd, {
    args,
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout((SECONDS + 30) * 1000),
  })
    .output();
  if (!out.success) {
    throw new Error(`${cmd} ${args.join(" ")}: ${new TextDecoder().decode(out.stderr)}`);
  }
  return new TextDecoder().decode(out.stdout);
}

function unit(v: string, u: string): number {
  const k: Record<string, number> = {
    "": 1,
    K: 1e3,
    k: 1e3,
    M: 1e6,
    G: 1e9,
    KB: 1024,
    MB: 1024 ** 2,
    GB: 1024 ** 3,
    B: 1,
  };
  return Number(v) * (k[u] ?? 1);
}

async function wrk(url: string, conns: number) {
  const out = await run("wrk", [
    "-t2",
    `-c${conns}`,
    `-d${SECONDS}s`,
    "--timeout",
    "60s",
    "--latency",
    url,
  ]);
  const rps = /Requests\/sec:\s+([\d.]+)/.exec(out);
  const tps = /Transfer\/sec:\s+([\d.]+)([KMG]?B)/.exec(out);
  const errors = /Non-2xx or 3xx responses: (\d+)/.exec(out);
  const p99 = /99%\s+([\d.]+)(us|ms|s)/.exec(out);
  const total = /(\d+) requests in/.exec(out);
  return {
    requests: Number(total?.[1] ?? 0),
    rps: Number(rps?.[1] ?? 0),
    bytesPerS: tps ? unit(tps[1], tps[2]) : 0,
    non2xx: Number(errors?.[1] ?? 0),
    p99: p99 ? `${p99[1]}${p99[2]}` : "?",
  };
}

/** A server process this benchmark started, with the URL it printed. */
interface Spawned {
  readonly child: Deno.ChildProcess;
  readonly url: string;
}

/**
 * Starts `cmd args` with its stderr written to `stderrFile` (through `sh`,
 * which execs it, so a signal reaches the server itself) and waits until
 * stdout matches `ready` (group 1: the URL).
 */
async function spawnServer(
  cmd: string,
  args: string[],
  stderrFile: string,
  ready: RegExp,
): Promise<Spawned> {
  const child = new Deno.Command("sh", {
    args: ["-c", 'f="$1"; shift; exec "$@" 2>"$f"', "sh", stderrFile, cmd, ...args],
    cwd: REPO,
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const reader = child.stdout.getReader();
  const deadline = setTimeout(() => child.kill("SIGKILL"), SPAWN_START_MS);
  let out = "";
  try {
    while (!ready.test(out)) {
      const { done, value } = await reader.read();
      if (done) break;
      out += new TextDecoder().decode(value);
    }
  } finally {
    clearTimeout(deadline);
    reader.releaseLock();
  }
  // Keep draining stdout so the server never blocks on it.
  child.stdout.pipeTo(new WritableStream()).catch(() => {});
  const url = ready.exec(out)?.[1];
  if (!url) {
    await stopServer(child);
    throw new Error(
      `${cmd} did not start: ${out}\n${await Deno.readTextFile(stderrFile).catch(() => "")}`,
    );
  }
  return { child, url };
}

async function stopServer(child: Deno.ChildProcess): Promise<Deno.CommandStatus> {
  try {
    child.kill("SIGTERM");
  } catch { /* gone */ }
  const killer = setTimeout(() => {
    try {
      child.kill("SIGKILL");
    } catch { /* gone */ }
  }, STOP_MS);
  const status = await child.status;
  clearTimeout(killer);
  return status;
}

async function countLines(file: string, needle: string): Promise<number> {
  const out = await new Deno.Command("grep", { args: ["-c", "-F", needle, file], stdout: "piped" })
    .output();
  return Number(new TextDecoder().decode(out.stdout).trim() || 0);
}

const loadavg = () => Deno.loadavg()[0];
const CLK_TCK = 100;

/** A file under /proc, read by `cat` (Deno 2.9.6 grants /proc only with --allow-all). */
async function procText(path: string): Promise<string> {
  const out = await new Deno.Command("cat", { args: [path], stdout: "piped", stderr: "null" })
    .output();
  return out.success ? new TextDecoder().decode(out.stdout) : "";
}

/** CPU time (user + system) of `pid` and of its child processes, in seconds (Linux /proc). */
async function cpuSeconds(pid: number): Promise<number> {
  const one = async (p: number) => {
    const stat = await procText(`/proc/${p}/stat`);
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(f[11] ?? 0) + Number(f[12] ?? 0)) / CLK_TCK;
  };
  const kids = (await procText(`/proc/${pid}/task/${pid}/children`))
    .trim().split(/\s+/).filter(Boolean).map(Number);
  let t = await one(pid);
  for (const k of kids) t += await one(k);
  return t;
}
const median = (v: number[]) => {
  const s = [...v].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

const dir = await tempDir("bench-serve");
let provider: Spawned | undefined;
let bare: Spawned | undefined;
let nginx: Deno.ChildProcess | undefined;
const providerLog = `${dir}/provider.log`;
try {
  const rel = `${dir}/root/stable/amd64`;
  await Deno.mkdir(rel, { recursive: true });
  await run("dd", ["if=/dev/urandom", `of=${rel}/kernel`, "bs=1M", `count=${MIB}`, "status=none"]);
  await run("dd", ["if=/dev/urandom", `of=${rel}/initramfs`, "bs=1K", "count=64", "status=none"]);
  const serveArgs = [
    "--port",
    "0",
    "--root",
    `${dir}/root`,
    "--state",
    `${dir}/state`,
    "--no-mdns",
    "--no-dht",
  ];
  provider = await spawnServer(
    "deno",
    [...taskArgv("serve"), ...serveArgs],
    providerLog,
    /phase-serve: serving \S+ on (http:\/\/\S+)[\s\S]*phase-serve: ready\n/,
  );
  const purl = provider.url;
  const manifestPath = "/stable/amd64/manifest.json";
  // nginx and the bare server answer the very same bytes: the artifact
  // hard-linked, the manifest as the provider signed it (bare: with the
  // provider's own response headers too).
  const first = await fetch(`${purl}${manifestPath}`);
  const manifest = new Uint8Array(await first.arrayBuffer());
  const providerHeaders: Record<string, string> = {};
  first.headers.forEach((v, k) => {
    if (k !== "date") providerHeaders[k] = v;
  });
  const ng = `${dir}/nginx/stable/amd64`;
  await Deno.mkdir(ng, { recursive: true });
  await Deno.link(`${rel}/kernel`, `${ng}/kernel`);
  await Deno.writeFile(`${ng}/manifest.json`, manifest);
  bare = await spawnServer(
    "deno",
    [
      "run",
      "-q",
      "--no-prompt",
      "-P=test",
      "bench/serve/bare.ts",
      `${ng}/manifest.json`,
      JSON.stringify(providerHeaders),
    ],
    `${dir}/bare.err`,
    /bare: listening on (http:\/\/\S+)/,
  );
  const burl = bare.url;
  await Deno.writeTextFile(
    `${dir}/nginx.conf`,
    `daemon off; user root; worker_processes auto; pid ${dir}/nginx.pid; error_log ${dir}/nginx.err warn;
events { worker_connections 1024; }
http { access_log ${dir}/nginx.access combined buffer=64k flush=1s; sendfile on; tcp_nopush on; keepalive_requests 100000;
  types { application/json json; } default_type application/octet-stream;
  client_body_temp_path ${dir}/ngtmp; proxy_temp_path ${dir}/ngtmp; fastcgi_temp_path ${dir}/ngtmp;
  uwsgi_temp_path ${dir}/ngtmp; scgi_temp_path ${dir}/ngtmp;
  server { listen 127.0.0.1:${NGINX_PORT}; root ${dir}/nginx; } }
`,
  );
  nginx = new Deno.Command("nginx", {
    args: ["-c", `${dir}/nginx.conf`, "-e", `${dir}/nginx.err`],
    stdout: "null",
    stderr: "inherit",
  }).spawn();
  const nurl = `http://127.0.0.1:${NGINX_PORT}`;
  const end = Date.now() + NGINX_START_MS;
  while (
    !(await fetch(`${nurl}${manifestPath}`).then(
      (r) => r.arrayBuffer().then(() => r.ok),
      () => false,
    ))
  ) {
    if (Date.now() > end) {
      throw new Error(
        `nginx did not start: ${await Deno.readTextFile(`${dir}/nginx.err`).catch(() => "")}`,
      );
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  // Warm the page cache.
  await run("cat", [`${rel}/kernel`]).catch(() => "");
  const loadBefore = loadavg();
  type Wrk = Awaited<ReturnType<typeof wrk>> & { cpuUsPerRequest: number };
  const measures = [
    {
      key: "artifact phase",
      url: `${purl}/stable/amd64/kernel`,
      conns: 4,
      pid: provider.child.pid,
    },
    { key: "artifact nginx", url: `${nurl}/stable/amd64/kernel`, conns: 4, pid: nginx.pid },
    { key: "manifest phase", url: `${purl}${manifestPath}`, conns: 50, pid: provider.child.pid },
    { key: "manifest bare", url: `${burl}${manifestPath}`, conns: 50, pid: bare.child.pid },
    { key: "manifest nginx", url: `${nurl}${manifestPath}`, conns: 50, pid: nginx.pid },
  ] as const;
  type Key = typeof measures[number]["key"];
  const rounds: Record<Key, Wrk>[] = [];
  const loads: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    // The order rotates from round to round: no server always runs first
    // (or right after the artifact's page-cache work).
    const round = {} as Record<Key, Wrk>;
    for (let i = 0; i < measures.length; i++) {
      const m = measures[(i + r) % measures.length];
      // CPU time per request of the server (all its threads and worker
      // processes): unlike req/s, it hardly depends on what else runs.
      const cpu0 = await cpuSeconds(m.pid);
      const w = await wrk(m.url, m.conns);
      const cpu = await cpuSeconds(m.pid) - cpu0;
      round[m.key] = { ...w, cpuUsPerRequest: w.requests ? (cpu * 1e6) / w.requests : 0 };
    }
    rounds.push(round);
    loads.push(loadavg());
  }
  const loadAfter = loadavg();
  const col = (k: Key, f: (w: Wrk) => number) => rounds.map((x) => f(x[k]));
  const rps = (k: Key) => col(k, (w) => w.rps);
  const bps = (k: Key) => col(k, (w) => w.bytesPerS);
  const perRound = (a: number[], b: number[]) => a.map((v, i) => (b[i] ? v / b[i] : 0));
  const best = (v: number[]) => Math.max(...v);
  const f2 = (v: number) => v.toFixed(2);
  const k = (v: number) => `${(v / 1000).toFixed(1)}k`;
  const vsBare = perRound(rps("manifest phase"), rps("manifest bare"));
  const vsNginx = perRound(rps("manifest phase"), rps("manifest nginx"));
  const bareVsNginx = perRound(rps("manifest bare"), rps("manifest nginx"));
  const artVsNginx = perRound(bps("artifact phase"), bps("artifact nginx"));
  // The access log was on and lost nothing: one line per request answered.
  await stopServer(provider.child);
  provider = undefined;
  const phaseRequests = col("manifest phase", (w) => w.requests).reduce((a, b) => a + b, 0) +
    col("artifact phase", (w) => w.requests).reduce((a, b) => a + b, 0);
  const accessLines = await countLines(providerLog, '"event":"access"');
  const non2xx = rounds.reduce(
    (n, x) => n + Object.values(x).reduce((m, w) => m + w.non2xx, 0),
    0,
  );
  console.log(
    JSON.stringify(
      {
        mib: MIB,
        seconds: SECONDS,
        manifest_bytes: manifest.length,
        load_before: loadBefore,
        load_after_each_round: loads,
        rounds,
      },
      null,
      2,
    ),
  );
  const line = (name: string, v: number[], fmt: (x: number) => string, lowIsBest = false) =>
    console.log(
      `  ${name.padEnd(26)} ${v.map(fmt).join("  ")}   best ${
        fmt(lowIsBest ? Math.min(...v) : best(v))
      }, median ${fmt(median(v))}`,
    );
  console.log(
    `\nper round (${ROUNDS} rounds, ${SECONDS} s each, load ${loadBefore.toFixed(2)} -> ${
      loadAfter.toFixed(2)
    }):`,
  );
  line("manifest phase req/s", rps("manifest phase"), k);
  line("manifest bare Deno req/s", rps("manifest bare"), k);
  line("manifest nginx req/s", rps("manifest nginx"), k);
  line("phase / bare Deno.serve", vsBare, f2);
  line("phase / nginx", vsNginx, f2);
  line("bare Deno.serve / nginx", bareVsNginx, f2);
  const cpu = (k: Key) => col(k, (w) => w.cpuUsPerRequest);
  const us = (v: number) => `${v.toFixed(1)}us`;
  line("CPU/request phase", cpu("manifest phase"), us, true);
  line("CPU/request bare Deno", cpu("manifest bare"), us, true);
  line("CPU/request nginx", cpu("manifest nginx"), us, true);
  line("bare CPU / phase CPU", perRound(cpu("manifest bare"), cpu("manifest phase")), f2);
  line(`artifact phase GB/s`, bps("artifact phase"), (v) => (v / 1e9).toFixed(2));
  line(`artifact nginx GB/s`, bps("artifact nginx"), (v) => (v / 1e9).toFixed(2));
  line("artifact phase / nginx", artVsNginx, f2);
  console.log(
    `\nmanifest ${manifest.length} B c=50: phase / bare Deno.serve median ${
      f2(median(vsBare))
    } (best rounds ${
      f2(best(rps("manifest phase")) / best(rps("manifest bare")))
    }; goal >= 0.75), phase / nginx median ${f2(median(vsNginx))} (best rounds ${
      f2(best(rps("manifest phase")) / best(rps("manifest nginx")))
    })`,
  );
  console.log(
    `artifact ${MIB} MiB c=4: phase / nginx median ${f2(median(artVsNginx))} (best rounds ${
      f2(best(bps("artifact phase")) / best(bps("artifact nginx")))
    }; goal >= 0.9)`,
  );
  console.log(
    `access log: ${accessLines} lines for ${phaseRequests} requests wrk completed${
      accessLines >= phaseRequests ? "" : " (LINES MISSING)"
    }; non-2xx answers: ${non2xx}`,
  );
} finally {
  if (nginx) {
    try {
      nginx.kill("SIGQUIT");
    } catch { /* gone */ }
    await nginx.status;
  }
  if (provider) await stopServer(provider.child);
  if (bare) await stopServer(bare.child);
  await Deno.remove(dir, { recursive: true });
}
