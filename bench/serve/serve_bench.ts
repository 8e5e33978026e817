/**
 * bench/serve: the provider against nginx on the same files in the same
 * run, with wrk on 127.0.0.1: a large artifact with 4 connections (bytes/s)
 * and the ~1 KiB manifest with 50 connections (requests/s).
 *
 * Usage: deno run -q --no-prompt -P=test bench/serve/serve_bench.ts [MiB=256] [seconds=5] [rounds=3]
 *
 * @module
 */
import { spawnServe, stopServe, tempDir } from "../../testing/mod.ts";

const MIB = Number(Deno.args[0] ?? 256);
const SECONDS = Number(Deno.args[1] ?? 5);
const ROUNDS = Number(Deno.args[2] ?? 3);
const NGINX_PORT = 18_000 + Math.floor(Math.random() * 1000);
/** Longest nginx may take to start, in ms. */
const NGINX_START_MS = 5000;

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
  return {
    rps: Number(rps?.[1] ?? 0),
    bytesPerS: tps ? unit(tps[1], tps[2]) : 0,
    non2xx: Number(errors?.[1] ?? 0),
    p99: p99 ? `${p99[1]}${p99[2]}` : "?",
  };
}

const dir = await tempDir("bench-serve");
let provider: Awaited<ReturnType<typeof spawnServe>> | undefined;
let nginx: Deno.ChildProcess | undefined;
try {
  const rel = `${dir}/root/stable/amd64`;
  await Deno.mkdir(rel, { recursive: true });
  await run("dd", ["if=/dev/urandom", `of=${rel}/kernel`, "bs=1M", `count=${MIB}`, "status=none"]);
  await run("dd", ["if=/dev/urandom", `of=${rel}/initramfs`, "bs=1K", "count=64", "status=none"]);
  provider = await spawnServe([
    "--port",
    "0",
    "--root",
    `${dir}/root`,
    "--state",
    `${dir}/state`,
    "--no-mdns",
    "--no-dht",
  ]);
  const purl = provider.url!;
  // nginx serves the very same files: the artifact hard-linked, the
  // manifest as the provider signed it.
  const ng = `${dir}/nginx/stable/amd64`;
  await Deno.mkdir(ng, { recursive: true });
  await Deno.link(`${rel}/kernel`, `${ng}/kernel`);
  const manifest = new Uint8Array(
    await (await fetch(`${purl}/stable/amd64/manifest.json`)).arrayBuffer(),
  );
  await Deno.writeFile(`${ng}/manifest.json`, manifest);
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
    !(await fetch(`${nurl}/stable/amd64/manifest.json`).then(
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
  // Alternate the servers and keep each one's best round: the machine is
  // shared, so a single run measures the neighbours as much as the server.
  const best = { artifact: { phase: 0, nginx: 0 }, manifest: { phase: 0, nginx: 0 } };
  const ratios = { artifact: [] as number[], manifest: [] as number[] };
  const rounds: unknown[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    const round = {
      artifact: {
        phase: await wrk(`${purl}/stable/amd64/kernel`, 4),
        nginx: await wrk(`${nurl}/stable/amd64/kernel`, 4),
      },
      manifest: {
        phase: await wrk(`${purl}/stable/amd64/manifest.json`, 50),
        nginx: await wrk(`${nurl}/stable/amd64/manifest.json`, 50),
      },
    };
    rounds.push(round);
    best.artifact.phase = Math.max(best.artifact.phase, round.artifact.phase.bytesPerS);
    best.artifact.nginx = Math.max(best.artifact.nginx, round.artifact.nginx.bytesPerS);
    best.manifest.phase = Math.max(best.manifest.phase, round.manifest.phase.rps);
    best.manifest.nginx = Math.max(best.manifest.nginx, round.manifest.nginx.rps);
    ratios.artifact.push(round.artifact.phase.bytesPerS / (round.artifact.nginx.bytesPerS || 1));
    ratios.manifest.push(round.manifest.phase.rps / (round.manifest.nginx.rps || 1));
  }
  const median = (v: number[]) => {
    const s = [...v].sort((a, b) => a - b);
    return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
  };
  const ratio = (a: number, b: number) => (b ? a / b : 0).toFixed(2);
  console.log(
    JSON.stringify(
      { mib: MIB, seconds: SECONDS, rounds, manifest_bytes: manifest.length },
      null,
      2,
    ),
  );
  console.log(
    `artifact ${MIB} MiB c=4 (best of ${ROUNDS}): phase ${
      (best.artifact.phase / 1e9).toFixed(2)
    } GB/s, nginx ${(best.artifact.nginx / 1e9).toFixed(2)} GB/s, ratio ${
      ratio(best.artifact.phase, best.artifact.nginx)
    }, median ratio of the rounds ${median(ratios.artifact).toFixed(2)} (goal >= 0.9)`,
  );
  console.log(
    `manifest ${manifest.length} B c=50 (best of ${ROUNDS}): phase ${
      best.manifest.phase.toFixed(0)
    } req/s, nginx ${best.manifest.nginx.toFixed(0)} req/s, ratio ${
      ratio(best.manifest.phase, best.manifest.nginx)
    }, median ratio of the rounds ${median(ratios.manifest).toFixed(2)} (goal >= 0.8)`,
  );
} finally {
  if (nginx) {
    try {
      nginx.kill("SIGQUIT");
    } catch { /* gone */ }
    await nginx.status;
  }
  if (provider) await stopServe(provider.child);
  await Deno.remove(dir, { recursive: true });
}
