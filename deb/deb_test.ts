/**
 * The package for real (`deno task test:deb`, issue 16 §3): built twice
 * byte-identically, clean under lintian and the launcher audit, then
 * installed into a Debian bookworm system that runs systemd as PID 1
 * (a rootfs from mmdebstrap, cached under ./.cache/deb-rootfs, booted with
 * `systemd-nspawn --boot --private-network`): start, serve a release signed
 * on the host, verify it inside with phase-verify, stop; start the job node,
 * check it listens under its own peer id, stop it; remove, purge.
 * Runs as root (nspawn); CI runs it from .ci/run.
 */
import { assert, assertEquals, tempDir, waitFor } from "../testing/mod.ts";
import { auditLaunchers } from "../audit/mod.ts";
import { debFileName, NODE_UNIT, PROVIDER_UNIT, SERVICE_USER } from "./mod.ts";
import { phaseVersion } from "../cli/mod.ts";

const repo = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
/** The rootfs: what mmdebstrap installs (the cache key hashes this list). */
const ROOTFS = {
  suite: "bookworm",
  variant: "minbase",
  include: ["systemd", "dbus", "curl"],
} as const;
/** Longest one host command may take (a package build, mmdebstrap), in ms. */
const COMMAND_TIMEOUT_MS = 10 * 60_000;
/** Longest the container may take to boot to a running system, in ms. */
const BOOT_TIMEOUT_MS = 90_000;
/** Longest one command inside the container may take, in ms. */
const EXEC_TIMEOUT_MS = 120_000;
/** Longest the container may take to power off, in ms. */
const POWEROFF_TIMEOUT_MS = 30_000;

const dec = new TextDecoder();
type Out = { code: number; out: string; err: string };

async function run(
  cmd: string,
  args: string[],
  opts: { cwd?: string; env?: Record<string, string>; timeoutMs?: number } = {},
): Promise<Out> {
  const r = await new Deno.Command(cmd, {
    args,
    cwd: opts.cwd,
    env: opts.env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(opts.timeoutMs ?? COMMAND_TIMEOUT_MS),
  }).output();
  return { code: r.code, out: dec.decode(r.stdout), err: dec.decode(r.stderr) };
}

async function ok(cmd: string, args: string[], opts = {}): Promise<string> {
  const r = await run(cmd, args, opts);
  assertEquals(r.code, 0, `${cmd} ${args.join(" ")}:\n${r.out}\n${r.err}`);
  return r.out;
}

async function sha256(path: string): Promise<string> {
  const d = await crypto.subtle.digest("SHA-256", await Deno.readFile(path));
  return [...new Uint8Array(d)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** The cached rootfs tarball, built by mmdebstrap once per package list. */
async function rootfsTarball(): Promise<string> {
  const key = await crypto.subtle.digest(
    "SHA-256",
    new TextEncoder().encode(JSON.stringify(ROOTFS)),
  );
  const hex = [...new Uint8Array(key)].slice(0, 8).map((b) => b.toString(16).padStart(2, "0"))
    .join("");
  const dir = `${repo}/.cache/deb-rootfs`;
  const tar = `${dir}/${ROOTFS.suite}-${hex}.tar`;
  if (await Deno.stat(tar).then(() => true, () => false)) return tar;
  await Deno.mkdir(dir, { recursive: true });
  const t0 = performance.now();
  await ok("mmdebstrap", [
    "--quiet",
    `--variant=${ROOTFS.variant}`,
    `--include=${ROOTFS.include.join(",")}`,
    "--skip=output/dev",
    "--format=tar",
    ROOTFS.suite,
    `${tar}.part`,
  ]);
  await Deno.rename(`${tar}.part`, tar);
  console.log(`deb test: rootfs built in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  return tar;
}

/** A booted container: run commands in it through nsenter. */
interface Container {
  readonly root: string;
  exec(script: string): Promise<Out>;
  ok(script: string): Promise<string>;
  poweroff(): Promise<void>;
}

/** `systemctl start UNIT...`; a unit that fails to start fails the test with its journal. */
async function start(c: Container, ...units: string[]): Promise<void> {
  const r = await c.exec(`systemctl start ${units.join(" ")}`);
  if (r.code === 0) return;
  const journal = await c.exec(
    `journalctl ${units.map((u) => `-u ${u}`).join(" ")} -n 40 -o cat --no-pager`,
  );
  assertEquals(r.code, 0, `systemctl start ${units.join(" ")}:\n${r.err}\n${journal.out}`);
}

async function boot(root: string, log: string): Promise<Container> {
  const logFile = await Deno.open(log, { write: true, create: true, truncate: true });
  // No machined and no system bus on this host: nspawn neither registers nor
  // asks for a scope; /run/systemd/nspawn must be a tmpfs (nspawn refuses to
  // clean a directory on a disk), so it gets its own in a private mount namespace.
  const child = new Deno.Command("unshare", {
    args: [
      "-m",
      "--propagation",
      "private",
      "sh",
      "-c",
      'mkdir -p /run/systemd/nspawn && mount -t tmpfs tmpfs /run/systemd/nspawn && exec "$@"',
      "sh",
      "systemd-nspawn",
      "--quiet",
      "--boot",
      "--register=no",
      "--keep-unit",
      "--private-network",
      `--machine=phase-deb-${Deno.pid}`,
      "-D",
      root,
    ],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  // The console and nspawn's own messages, for a failure's post-mortem.
  const drained = Promise.all([
    child.stdout.pipeTo(logFile.writable),
    child.stderr.pipeTo(Deno.openSync(`${log}.err`, { write: true, create: true }).writable),
  ]).catch(() => {});
  // Deno grants nothing under /proc without --allow-all (deno-facts.md): ask cat.
  const init = async (): Promise<number> => {
    const kids = await run("cat", [`/proc/${child.pid}/task/${child.pid}/children`]);
    for (const k of kids.out.trim().split(/\s+/).filter(Boolean)) {
      if ((await run("cat", [`/proc/${k}/comm`])).out.trim() === "systemd") return Number(k);
    }
    return 0;
  };
  let pid1 = 0;
  try {
    await waitFor(async () => (pid1 = await init()) > 0, BOOT_TIMEOUT_MS, "the container's init");
  } catch (err) {
    if (pid1) await run("kill", ["-KILL", String(pid1)]);
    child.kill("SIGKILL");
    throw err;
  }
  const exec = (script: string) =>
    run("nsenter", [
      "--target",
      String(pid1),
      "--mount",
      "--uts",
      "--ipc",
      "--net",
      "--pid",
      "--root",
      "--wd",
      "/usr/bin/env",
      "-i",
      "PATH=/usr/sbin:/usr/bin:/sbin:/bin",
      "LC_ALL=C",
      "/bin/sh",
      "-c",
      script,
    ], { timeoutMs: EXEC_TIMEOUT_MS });
  const c: Container = {
    root,
    exec,
    ok: async (script) => {
      const r = await exec(script);
      assertEquals(r.code, 0, `in the container: ${script}\n${r.out}\n${r.err}`);
      return r.out;
    },
    poweroff: async () => {
      await exec("systemctl poweroff").catch(() => {});
      // Killing nspawn alone would orphan the container: kill its PID 1 first.
      const timer = setTimeout(() => {
        run("kill", ["-KILL", String(pid1)]).finally(() => {
          try {
            child.kill("SIGKILL");
          } catch { /* gone */ }
        });
      }, POWEROFF_TIMEOUT_MS);
      await child.status;
      clearTimeout(timer);
      await drained;
    },
  };
  // Boot finished: "running", or "degraded" (units a container cannot run).
  // systemctl answers once PID 1 has opened its private socket.
  let r: Out = { code: 1, out: "", err: "" };
  await waitFor(
    async () => {
      r = await exec("systemctl is-system-running --wait");
      return !/Failed to connect/.test(r.err);
    },
    BOOT_TIMEOUT_MS,
    "systemd in the container",
  ).catch(() => {});
  if (!/running|degraded/.test(r.out)) {
    await c.poweroff();
    throw new Error(`boot: ${r.out}${r.err}`);
  }
  return c;
}

/** The job node's default listen address (deb/units/node.env). */
const NODE_LISTEN = "/ip4/127.0.0.1/tcp/4101";
/** A TCP connect to the node's port: curl prints a non-zero connect time when it connected. */
const NODE_CONNECT =
  "curl -s -o /dev/null -w '%{time_connect}' --max-time 0.5 telnet://127.0.0.1:4101 </dev/null";

/** Processes in the container that run the packaged Deno. */
const PHASE_PROCS =
  "for p in /proc/[0-9]*; do c=$(tr '\\0' ' ' < $p/cmdline 2>/dev/null); case \"$c\" in '/usr/lib/phase/deno '*) echo \"$c\";; esac; done";

Deno.test({
  name:
    "deb: builds byte-identically twice, lintian has no errors, the installed launchers match the table",
  fn: async (t) => {
    const dir = await tempDir("deb-build");
    const timings: Record<string, string> = {};
    const build = async (out: string) => {
      const t0 = performance.now();
      await ok("deno", ["task", "-q", "deb", "--arch", "amd64", "--out", out], { cwd: repo });
      return ((performance.now() - t0) / 1000).toFixed(1);
    };
    const name = debFileName(phaseVersion(), "amd64");
    await t.step("two builds, byte-identical", async () => {
      timings.build1 = await build(`${dir}/a`);
      timings.build2 = await build(`${dir}/b`);
      assertEquals(await sha256(`${dir}/a/${name}`), await sha256(`${dir}/b/${name}`));
    });
    await t.step("lintian: no errors", async () => {
      const t0 = performance.now();
      const r = await run("lintian", [`${dir}/a/${name}`]);
      timings.lintian = ((performance.now() - t0) / 1000).toFixed(1);
      const errors = r.out.split("\n").filter((l) => l.startsWith("E:"));
      assertEquals(errors, [], r.out);
      console.log(`deb test: lintian:\n${r.out.trim() || "(nothing)"}`);
    });
    await t.step("the audit: every launcher in /usr/bin matches its set", async () => {
      await ok("dpkg-deb", ["-x", `${dir}/a/${name}`, `${dir}/tree`]);
      assertEquals(await auditLaunchers(`${dir}/tree`), []);
    });
    console.log(`deb test: timings (s): ${JSON.stringify(timings)}`);
    // Keep the package for the install test below.
    await Deno.mkdir(`${repo}/.cache/deb-test`, { recursive: true });
    await Deno.copyFile(`${dir}/a/${name}`, `${repo}/.cache/deb-test/${name}`);
    await Deno.remove(dir, { recursive: true });
  },
});

Deno.test({
  name:
    "deb: installed in a booted Debian (nspawn), the provider starts, serves a signed release that phase-verify accepts, stops; the job node starts and stops; removed and purged",
  fn: async (t) => {
    const name = debFileName(phaseVersion(), "amd64");
    const deb = `${repo}/.cache/deb-test/${name}`;
    if (!(await Deno.stat(deb).then(() => true, () => false))) {
      await ok(
        "deno",
        ["task", "-q", "deb", "--arch", "amd64", "--out", `${repo}/.cache/deb-test`],
        { cwd: repo },
      );
    }
    const dir = await tempDir("deb-nspawn");
    const root = `${dir}/root`;
    const timings: Record<string, string> = {};
    let t0 = performance.now();
    const tar = await rootfsTarball();
    await Deno.mkdir(root);
    await ok("tar", ["-C", root, "-xf", tar]);
    timings.rootfs = ((performance.now() - t0) / 1000).toFixed(1);
    await Deno.copyFile(deb, `${root}/root/${name}`);

    // A release signed on the host, as a user signs one.
    const rel = `${dir}/release`;
    await ok("deno", ["task", "-q", "keygen", "--out", `${rel}/keys`], { cwd: repo });
    await Deno.mkdir(`${rel}/srv/stable/amd64`, { recursive: true });
    await Deno.writeTextFile(`${rel}/srv/stable/amd64/kernel`, "kernel bytes\n".repeat(1000));
    await Deno.writeTextFile(`${rel}/srv/stable/amd64/initramfs`, "initramfs bytes\n".repeat(500));
    await ok("deno", [
      "task",
      "-q",
      "sign",
      "--root",
      `${rel}/srv`,
      "--channel",
      "stable",
      "--arch",
      "amd64",
      // One word: this branch's main() takes a bare --version as the version
      // request (fixed upstream: a --version followed by a value is a flag).
      "--version=2026.11.30",
      "--key",
      `${rel}/keys/release.pem`,
    ], { cwd: repo });

    t0 = performance.now();
    const c = await boot(root, `${dir}/console.log`);
    timings.boot = ((performance.now() - t0) / 1000).toFixed(1);
    try {
      await t.step("dpkg -i installs the package and creates the service user", async () => {
        await c.ok(`dpkg -i /root/${name}`);
        await c.ok(`getent passwd ${SERVICE_USER}`);
        await c.ok(
          "test -x /usr/bin/phase-serve && test -x /usr/bin/phase-node && test -d /srv/phase",
        );
      });
      await t.step("MemoryDenyWriteExecute=yes: V8's JIT cannot start (measured)", async () => {
        await c.ok(
          `mkdir -p /run/systemd/system/${PROVIDER_UNIT}.d && printf '[Service]\\nMemoryDenyWriteExecute=yes\\n' > /run/systemd/system/${PROVIDER_UNIT}.d/mdwe.conf && systemctl daemon-reload`,
        );
        const r = await c.exec(`systemctl start ${PROVIDER_UNIT}`);
        assert(r.code !== 0, "the provider started under MemoryDenyWriteExecute=yes: turn it on");
        const why = await c.exec(`journalctl -u ${PROVIDER_UNIT} -n 20 --no-pager`);
        console.log(`deb test: under MemoryDenyWriteExecute=yes:\n${why.out.trim()}`);
        await c.ok(
          `rm -r /run/systemd/system/${PROVIDER_UNIT}.d && systemctl daemon-reload && systemctl reset-failed ${PROVIDER_UNIT}`,
        );
      });
      await t.step(
        "a signed release in /srv/phase; systemctl start waits for /health 200",
        async () => {
          await ok("cp", ["-r", `${rel}/srv/stable`, `${root}/srv/phase/`]);
          // What packaging.md tells an administrator serving pre-signed releases.
          await ok("cp", [`${rel}/keys/trust.json`, `${root}/etc/phase/trust.json`]);
          await c.ok(
            "sed -i 's|^PHASE_SERVE_FLAGS=.*|PHASE_SERVE_FLAGS=--no-mdns --no-dht --no-sign --trust /etc/phase/trust.json|' /etc/phase/provider.env",
          );
          const s0 = performance.now();
          await start(c, PROVIDER_UNIT);
          timings.start = ((performance.now() - s0) / 1000).toFixed(1);
          assertEquals((await c.ok(`systemctl is-active ${PROVIDER_UNIT}`)).trim(), "active");
          // Started means ready: /health already answers 200, with no retry.
          assertEquals(
            (await c.ok("curl -sS -o /dev/null -w '%{http_code}' http://127.0.0.1:8080/health"))
              .trim(),
            "200",
          );
          const user = await c.ok(`systemctl show -p User --value ${PROVIDER_UNIT}`);
          assertEquals(user.trim(), SERVICE_USER);
        },
      );
      await t.step("the release is served and phase-verify accepts it inside", async () => {
        const got = await c.exec(
          "mkdir -p /tmp/phase/got && cd /tmp/phase/got && for f in manifest.json kernel initramfs; do curl -fsS -o $f http://127.0.0.1:8080/stable/amd64/$f || exit 1; done",
        );
        if (got.code !== 0) {
          const journal = await c.exec(
            `journalctl -u ${PROVIDER_UNIT} -n 30 --no-pager; ls -lR /srv/phase`,
          );
          throw new Error(`not served: ${got.err}\n${journal.out}`);
        }
        const out = await c.ok(
          "phase-verify --manifest /tmp/phase/got/manifest.json --trust /etc/phase/trust.json --channel stable --arch amd64 --artifact kernel=/tmp/phase/got/kernel --artifact initramfs=/tmp/phase/got/initramfs --json",
        );
        // One JSON document (a pipe gets JSON anyway: cli/output.ts).
        const verdict = JSON.parse(out);
        assertEquals(
          [verdict.ok, verdict.channel, verdict.arch, verdict.version],
          [true, "stable", "amd64", "2026.11.30"],
          out,
        );
        assertEquals(verdict.artifacts_checked, ["kernel", "initramfs"], out);
        // And refuses a changed artifact.
        const bad = await c.exec(
          "echo x >> /tmp/phase/got/kernel; phase-verify --manifest /tmp/phase/got/manifest.json --trust /etc/phase/trust.json --artifact kernel=/tmp/phase/got/kernel",
        );
        assert(bad.code !== 0, bad.out);
      });
      await t.step("systemctl stop stops it cleanly", async () => {
        await c.ok(`systemctl stop ${PROVIDER_UNIT}`);
        assertEquals((await c.exec(`systemctl is-active ${PROVIDER_UNIT}`)).out.trim(), "inactive");
        assertEquals(
          (await c.ok(`systemctl show -p Result --value ${PROVIDER_UNIT}`)).trim(),
          "success",
        );
        assertEquals((await c.ok(PHASE_PROCS)).trim(), "");
      });
      await t.step(
        "phase-node: systemctl start waits until it listens; its peer id is its key's",
        async () => {
          const s0 = performance.now();
          await start(c, NODE_UNIT);
          timings.nodeStart = ((performance.now() - s0) / 1000).toFixed(1);
          assertEquals((await c.ok(`systemctl is-active ${NODE_UNIT}`)).trim(), "active");
          // Started means ready: the port already accepts, with no retry.
          const connect = (await c.exec(NODE_CONNECT)).out.trim();
          assert(/[1-9]/.test(connect), `the node's port does not accept: ${connect}`);
          assertEquals(
            (await c.ok(`systemctl show -p User --value ${NODE_UNIT}`)).trim(),
            SERVICE_USER,
          );
          // Its state: the node's own directory, 0700, holding its key.
          assertEquals(
            (await c.ok("stat -c '%U %a' /var/lib/phase/node")).trim(),
            `${SERVICE_USER} 700`,
          );
          // The peer id the node key gives (read as the service user) is the one it listens under.
          const id = (await c.ok(
            `runuser -u ${SERVICE_USER} -- phase-node id --state /var/lib/phase/node`,
          )).trim();
          assert(/^12D3KooW[1-9A-HJ-NP-Za-km-z]+$/.test(id), id);
          const journal = await c.ok(`journalctl -u ${NODE_UNIT} -o cat --no-pager`);
          assert(
            journal.includes(`phase-node: listening ${NODE_LISTEN}/p2p/${id}`),
            `not listening as ${id}:\n${journal}`,
          );
          // Closed by default: it says so.
          assert(journal.includes("no_submitter_allowed"), journal);
          // On loopback it stays off the LAN: no mDNS, and it says why.
          assert(/mdns_off.*loopback/.test(journal), journal);
          // Inside its sandbox /var/lib/phase holds only the node's directory:
          // the provider's key is out of reach.
          const pid = (await c.ok(`systemctl show -p MainPID --value ${NODE_UNIT}`)).trim();
          assertEquals(
            (await c.ok(`nsenter -t ${pid} -m ls -A /var/lib/phase`)).trim(),
            "node",
          );
          assert((await c.ok("ls -A /var/lib/phase")).split("\n").length > 1);
        },
      );
      await t.step("phase-node: systemctl stop stops it cleanly", async () => {
        await c.ok(`systemctl stop ${NODE_UNIT}`);
        assertEquals((await c.exec(`systemctl is-active ${NODE_UNIT}`)).out.trim(), "inactive");
        assertEquals(
          (await c.ok(`systemctl show -p Result --value ${NODE_UNIT}`)).trim(),
          "success",
        );
        assertEquals((await c.ok(PHASE_PROCS)).trim(), "");
        assert(!/[1-9]/.test((await c.exec(NODE_CONNECT)).out), "the node's port still accepts");
      });
      await t.step("dpkg -r of a running provider and node leaves no process", async () => {
        await start(c, PROVIDER_UNIT, NODE_UNIT);
        assertEquals((await c.ok(PHASE_PROCS)).trim().split("\n").length, 2, "not both running");
        await c.ok("dpkg -r phase");
        assertEquals((await c.ok(PHASE_PROCS)).trim(), "");
        await c.ok("test ! -e /usr/bin/phase-serve");
        // Configuration and state stay until purge.
        await c.ok(
          "test -f /etc/phase/provider.env && test -f /etc/phase/node.env && test -d /var/lib/phase/node",
        );
      });
      await t.step("dpkg --purge removes its state, configuration and user", async () => {
        await c.ok("dpkg --purge phase");
        await c.ok(
          "test ! -e /var/lib/phase/node && test ! -e /var/lib/phase && test ! -e /etc/phase/provider.env && test ! -e /etc/phase/node.env",
        );
        assert(
          (await c.exec(`getent passwd ${SERVICE_USER}`)).code !== 0,
          "the user is still there",
        );
        // The administrator's releases stay.
        await c.ok("test -f /srv/phase/stable/amd64/manifest.json");
      });
    } finally {
      await c.poweroff();
      console.log(`deb test: timings (s): ${JSON.stringify(timings)}`);
    }
    await Deno.remove(dir, { recursive: true });
  },
});
