/**
 * `deno task test:vm`: the seeds' test plan. Builds the amd64 USB image,
 * starts a provider on loopback and boots the image with OVMF under TCG;
 * the guest reaches the provider at http://10.0.2.100/ through a user-mode
 * guestfwd, so nothing leaves loopback. Each scenario is a named test with
 * a time bound. It takes minutes, so deno.json's `test.exclude` keeps it
 * out of `deno task test`; `deno task test:vm` un-excludes exactly this file.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { assert, assertEquals, readUntil } from "../testing/mod.ts";
import { startProvider } from "../provider/mod.ts";
import { keygen, loadSigningKey, signRelease, trustInit, trustRotate } from "../sign/mod.ts";
import { memoryLogger } from "../core/mod.ts";
import { bootVm, type ConsoleLine, OVMF_MS, OVMF_SNAKEOIL, type VmRun } from "./vm.ts";
import {
  SELFHOST_FROM_SEED,
  SELFHOST_PORT,
  SELFHOST_PRIVATE,
  SELFHOST_SERVING,
} from "./_selfhost.ts";
import {
  PART_NAMES,
  SEED_SHELL_MARKER,
  TARGET_MARKER,
  TARGET_NODE_PORT,
  TARGET_SEED_REFUSED,
  TARGET_SEED_VERIFIED,
  VERITY_REFUSED_MARKER,
} from "./_files.ts";
import { publicKeyOfPeerId } from "../node/mod.ts";
import { encodeBase64, keyidOf } from "../verify/mod.ts";
import { SNAKEOIL_CERT, SNAKEOIL_KEY } from "./_secureboot.ts";
import { findUstarMember, GRUB_BOOT_MARKER } from "./_grub.ts";
import { startTorNet } from "../testing/tor_net.ts";
import { imagesTaskArgs } from "./task.ts";

/** Bound of one boot in a scenario (TCG, 2 shared cores; a good boot takes ~40 s). */
const BOOT_TIMEOUT_MS = 240_000;
/** Bound of the GRUB scenario's boot (measured 39 s under TCG on a busy host: firmware, systemd-boot, GRUB menu 3 s, fetch, verify, kexec). */
const GRUB_BOOT_TIMEOUT_MS = 120_000;
/** Bound of the arm64 boot (TCG emulates a cortex-a57: ~75 s measured). */
const ARM64_BOOT_TIMEOUT_MS = 600_000;
/** Bound of the Tor boot (tor bootstraps under TCG, and the release comes over three hops). */
const TOR_BOOT_TIMEOUT_MS = 480_000;
/** Bound of a Secure Boot boot to the target (firmware signature checks of a 17 MB UKI under TCG, dm-verity read of the seed). */
const SECURE_BOOT_TIMEOUT_MS = 240_000;
/** Bound of a boot the firmware or the seed must refuse: a refusal shows within this (a good boot reaches the seed's init in ~15 s). */
const SECURE_BOOT_REFUSAL_TIMEOUT_MS = 90_000;
/** Bound of the image build. */
const BUILD_TIMEOUT_MS = 300_000;
const MiB = 1024 * 1024;
const REPO = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
const PROVIDER_URL = "http://10.0.2.100/stable/amd64/manifest.json";

await Deno.mkdir("/tmp/phase", { recursive: true });
const WORK = await Deno.makeTempDir({ dir: "/tmp/phase", prefix: "vm-plan-" });
const OUT = `${WORK}/out`;
const ARTIFACTS = `${WORK}/artifacts`;
const KEYS = `${WORK}/keys`;
const IMAGE = `${OUT}/phase-amd64.img`;

/**
 * `deno task images` into `out`, signing the release into `artifacts` with
 * the plan's keys; `extra` adds flags (arch, sysroot, tor, ...). Throws
 * with the tail of its stderr.
 */
async function buildImage(
  out: string,
  artifacts: string,
  provider: string,
  arch: "amd64" | "arm64",
  extra: string[] = [],
): Promise<void> {
  const t0 = performance.now();
  const r = await new Deno.Command("deno", {
    args: imagesTaskArgs({ arch, out, artifacts, keys: KEYS, provider, extra }),
    cwd: REPO,
    stdout: "null",
    stderr: "piped",
    signal: AbortSignal.timeout(BUILD_TIMEOUT_MS),
  }).output();
  if (r.code !== 0) {
    throw new Error(`image build failed:\n${new TextDecoder().decode(r.stderr).slice(-3000)}`);
  }
  console.log(
    `vm-plan: image ${out} built in ${((performance.now() - t0) / 1000).toFixed(1)} s`,
  );
}

/** Bound of `deno task job key` on the host. */
const JOB_KEY_TIMEOUT_MS = 60_000;
/** The host's submitter key for [vm job] (state of `deno task job`). */
const JOB_STATE = `${WORK}/job`;

/** Creates the host's submitter key; returns its keyid. */
async function submitterKey(): Promise<string> {
  const r = await new Deno.Command("deno", {
    args: ["task", "-q", "job", "key", "--state", JOB_STATE],
    cwd: REPO,
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(JOB_KEY_TIMEOUT_MS),
  }).output();
  assertEquals(r.code, 0, new TextDecoder().decode(r.stderr));
  return new TextDecoder().decode(r.stdout).trim();
}

// The image's policy allow-lists the host's submitter key (node_accept_jobs):
// the booted target starts its Plasm node, after the marker ([vm job]).
const SUBMITTER = await submitterKey();
await buildImage(OUT, ARTIFACTS, PROVIDER_URL, "amd64", ["--node-allow", SUBMITTER]);

/**
 * A real Phase provider on an ephemeral loopback port, serving the signed
 * release; `trustPath` is the trust file it checks pre-signed releases with.
 */
async function provider(root = ARTIFACTS, trustPath = `${KEYS}/trust.json`) {
  return await startProvider({
    root,
    state: `${WORK}/provider-state-${crypto.randomUUID()}`,
    host: "127.0.0.1",
    port: 0,
    sign: false,
    trustPath,
    mdns: false,
    dht: false,
    watch: false,
    logger: memoryLogger(),
  });
}

/** Boots with a real provider serving `root` for the length of the boot. */
async function bootServed(
  o: Omit<Parameters<typeof bootVm>[0], "providerPort">,
  root = ARTIFACTS,
  trustPath?: string,
): Promise<VmRun> {
  const p = await provider(root, trustPath);
  try {
    return await bootVm({ ...o, providerPort: p.port });
  } finally {
    await p.close();
  }
}

/** A hostile static server: serves whatever files are in `dir`, no checks. */
function hostileServer(dir: string) {
  const digests = new Map<string, string>();
  for (const name of ["kernel", "initramfs"]) {
    const bytes = Deno.readFileSync(`${dir}/${name}`);
    digests.set(createHash("sha256").update(bytes).digest("hex"), name);
  }
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
    const path = new URL(req.url).pathname;
    // It poses as a healthy Phase provider (formats §3 /health).
    if (path === "/health") return Response.json({ status: "serving" });
    let name: string | undefined;
    const cas = /^\/cas\/sha256\/([0-9a-f]{64})$/.exec(path);
    if (cas) name = digests.get(cas[1]);
    const m = /^\/stable\/amd64\/(manifest\.json|kernel|initramfs)$/.exec(path);
    if (m) name = m[1];
    if (!name) return new Response("not found", { status: 404 });
    const bytes = await Deno.readFile(`${dir}/${name}`);
    return new Response(req.method === "HEAD" ? null : bytes, {
      headers: {
        "content-length": String(bytes.length),
        "content-type": "application/octet-stream",
      },
    });
  });
  return { port: server.addr.port, close: () => server.shutdown() };
}

function tail(run: VmRun, n = 25): string {
  return run.lines.filter((l) => !l.text.startsWith("[ ")).slice(-n).map((l) => `${l.ms} ${l.text}`)
    .join("\n");
}

const UNTIL = {
  target: new RegExp(TARGET_MARKER),
  shell: new RegExp(SEED_SHELL_MARKER),
};
const WATCH = {
  seedInit: /phase-seed: init/,
  network: /phase-boot: network up/,
  discover: /phase-boot: discover:/,
  fetch: /phase-boot: fetch:/,
  kexec: /phase-boot: kexec:/,
  targetInit: /phase-target: init/,
  wasm: /phase-wasm: hello:/,
};

async function vmCopy(name: string): Promise<string> {
  const p = `${WORK}/${name}.img`;
  await Deno.copyFile(IMAGE, p);
  return p;
}

/** Byte offset and size of a GPT partition by name (sfdisk --json). */
async function partition(img: string, name: string): Promise<{ offset: number; size: number }> {
  const out = await new Deno.Command("sfdisk", { args: ["--json", img], stdout: "piped" }).output();
  const table = JSON.parse(new TextDecoder().decode(out.stdout)).partitiontable;
  const p = table.partitions.find((x: { name?: string }) => x.name === name);
  return { offset: p.start * 512, size: p.size * 512 };
}

/** Makes `entry` systemd-boot's default on the image's ESP (mtools at the partition offset). */
async function setDefaultEntry(img: string, entry: string): Promise<void> {
  const esp = await partition(img, PART_NAMES.esp);
  const conf = `${WORK}/loader-${entry}.conf`;
  await Deno.writeTextFile(conf, `default ${entry}\ntimeout 0\neditor no\nconsole-mode keep\n`);
  const r = await new Deno.Command("mcopy", {
    args: ["-o", "-i", `${img}@@${esp.offset}`, conf, "::/loader/loader.conf"],
    env: { MTOOLS_SKIP_CHECK: "1" },
    stderr: "piped",
  }).output();
  assertEquals(r.code, 0, new TextDecoder().decode(r.stderr));
}

/** Rewrites one loader entry on the image's ESP. */
async function editEntry(
  img: string,
  entry: string,
  edit: (text: string) => string,
): Promise<void> {
  const esp = await partition(img, PART_NAMES.esp);
  const local = `${WORK}/entry-${crypto.randomUUID()}.conf`;
  const env = { MTOOLS_SKIP_CHECK: "1" };
  const get = await new Deno.Command("mcopy", {
    args: ["-i", `${img}@@${esp.offset}`, `::/loader/entries/${entry}`, local],
    env,
  }).output();
  assertEquals(get.code, 0);
  await Deno.writeTextFile(local, edit(await Deno.readTextFile(local)));
  const put = await new Deno.Command("mcopy", {
    args: ["-o", "-i", `${img}@@${esp.offset}`, local, `::/loader/entries/${entry}`],
    env,
  }).output();
  assertEquals(put.code, 0);
}

async function partitionDigest(img: string, name: string): Promise<string> {
  const { offset, size } = await partition(img, name);
  const f = await Deno.open(img);
  try {
    await f.seek(offset, Deno.SeekMode.Start);
    const h = createHash("sha256");
    const buf = new Uint8Array(4 * MiB);
    let left = size;
    while (left > 0) {
      const n = await f.read(buf.subarray(0, Math.min(buf.length, left)));
      if (n === null) break;
      h.update(buf.subarray(0, n));
      left -= n;
    }
    return h.digest("hex");
  } finally {
    f.close();
  }
}

function report(name: string, run: VmRun): void {
  console.log(
    `vm-plan: ${name}: outcome=${run.outcome} elapsed=${run.elapsedMs} ms marks=${
      JSON.stringify(run.marks)
    }`,
  );
}

Deno.test("[vm internet] fetch, verify and kexec into the target, whose init prints the marker", async () => {
  const run = await bootServed({
    image: IMAGE,
    timeoutMs: BOOT_TIMEOUT_MS,
    until: UNTIL,
    watch: WATCH,
  });
  report("internet", run);
  assertEquals(run.outcome, "target", tail(run));
  assert("wasm" in run.marks, "the target ran the post-boot WASM job\n" + tail(run));
  // Issue #6: the post-boot service prints the job's output and the receipt's keyid.
  assert(run.lines.some((l) => l.text.includes("phase-wasm: hello: dlroW ,olleH")), tail(run));
  assert(
    run.lines.some((l) => /phase-wasm: receipt keyid ed25519:[0-9a-f]{64}/.test(l.text)),
    tail(run),
  );
  assert(run.lines.some((l) => l.text.includes("mode=internet")), tail(run));
  // Issue 17: the job above ran Deno with the libraries of the seed
  // partition; the target's initramfs holds no copy of them, only the list
  // its init links (and nothing of the ESP's filesystem, which it never mounts).
  const initramfs = `${ARTIFACTS}/stable/amd64/initramfs`;
  const held = (await unpacked(initramfs, [])).split("\n");
  for (const banned of [/\.so(\.\d+)*$/, /\/(vfat|fat|nls_\w+)\.ko$/]) {
    assertEquals(held.filter((p) => banned.test(p)), [], `${banned} in the target initramfs`);
  }
  const links = (await unpacked(initramfs, ["etc/phase/runtime-links"])).trim().split("\n");
  const partition = await tool("unsquashfs", ["-l", `${OUT}/phase-amd64-seed.squashfs`]);
  for (const lib of ["/lib64/ld-linux-x86-64.so.2", "/lib/x86_64-linux-gnu/libc.so.6"]) {
    assert(links.includes(lib), links.join("\n"));
  }
  for (const lib of links) assert(partition.includes(`squashfs-root/runtime${lib}\n`), lib);
});

/** The paths of a zstd cpio (no `members`), or those members' contents. */
async function unpacked(file: string, members: string[]): Promise<string> {
  const args = members.length ? ["-i", "--quiet", "--to-stdout", ...members] : ["-t", "--quiet"];
  return await tool("sh", ["-c", `zstd -dc "$0" | cpio ${args.join(" ")}`, file]);
}

/** Bound of the host's job submission to the booted guest (TCG: the guest's Deno compiles and runs the job). */
const JOB_SUBMIT_TIMEOUT_MS = 180_000;
/** Bound of one `deno task receipt verify` on the host. */
const RECEIPT_VERIFY_TIMEOUT_MS = 60_000;
/** The target's node line: its listening multiaddr on the guest's LAN address. */
const NODE_LISTENING = new RegExp(
  `phase-node: listening /ip4/[0-9.]+/tcp/${TARGET_NODE_PORT}/p2p/(\\w+)`,
);

/** A free loopback TCP port (bound and released). */
function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

/** Runs `deno task -q ARGS` from the repository; returns status and text. */
async function task(args: string[], timeoutMs: number) {
  const r = await new Deno.Command("deno", {
    args: ["task", "-q", ...args],
    cwd: REPO,
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(timeoutMs),
  }).output();
  const d = new TextDecoder();
  return { code: r.code, stdout: d.decode(r.stdout), stderr: d.decode(r.stderr) };
}

Deno.test("[vm job] the host submits hello.wasm to the booted target's Plasm node over libp2p; the receipt verifies against the guest's node key", async () => {
  const p = await provider();
  const hostPort = freePort();
  const input = "Hello from the host";
  let run: VmRun;
  try {
    run = await bootVm({
      image: IMAGE,
      timeoutMs: BOOT_TIMEOUT_MS + JOB_SUBMIT_TIMEOUT_MS,
      until: { shell: UNTIL.shell },
      watch: { ...WATCH, target: UNTIL.target },
      // User networking as in the other scenarios, plus a host port
      // forwarded to the node's port on the guest (10.0.2.15).
      netArgs: [
        "-netdev",
        `user,id=n0,restrict=on,guestfwd=tcp:10.0.2.100:80-cmd:/bin/busybox nc 127.0.0.1 ${p.port},hostfwd=tcp:127.0.0.1:${hostPort}-:${TARGET_NODE_PORT}`,
        "-device",
        "virtio-net-pci,netdev=n0",
      ],
      hold: {
        when: NODE_LISTENING,
        task: (line) =>
          task([
            "job",
            "submit",
            "wasm/examples/hello.wasm",
            "--peer",
            `/ip4/127.0.0.1/tcp/${hostPort}/p2p/${NODE_LISTENING.exec(line)![1]}`,
            "--input",
            input,
            "--json",
            "--state",
            JOB_STATE,
          ], JOB_SUBMIT_TIMEOUT_MS),
      },
    });
  } finally {
    await p.close();
  }
  report("job", run);
  assertEquals(run.outcome, "held", tail(run, 40));
  assert("target" in run.marks && run.marks.target < run.marks.hold, "node after the marker");
  const sub = run.held?.value as Awaited<ReturnType<typeof task>> | undefined;
  assert(sub, `the submission failed: ${String(run.held?.error)}\n${tail(run, 40)}`);
  assertEquals(sub.code, 0, `${sub.stdout}\n${sub.stderr}\n${tail(run, 40)}`);
  const out = JSON.parse(sub.stdout.trim().split("\n").at(-1)!);
  assertEquals(out.output, [...input].reverse().join(""));
  assertEquals(out.outcome, "ok");
  assertEquals(out.verified, true);
  // The guest's node key: the peer id the host dialled (noise-authenticated)
  // carries the public key; the console names its keyid.
  const peer = NODE_LISTENING.exec(run.lines.find((l) => NODE_LISTENING.test(l.text))!.text)![1];
  assertEquals(out.peer, peer);
  const publicRaw = publicKeyOfPeerId(peer);
  assert(publicRaw, `no Ed25519 key in the peer id ${peer}`);
  const keyid = keyidOf(publicRaw);
  assert(run.lines.some((l) => l.text.includes(`phase-node: node key ${keyid}`)), tail(run, 40));
  assertEquals(out.node, keyid);
  // `deno task receipt verify` anchored on the guest's key: ok; on another key: refused.
  const trust = `${WORK}/job-guest-trust.json`;
  await Deno.writeTextFile(
    trust,
    JSON.stringify({ threshold: 1, keys: { [keyid]: { public: encodeBase64(publicRaw) } } }),
  );
  const ok = await task(
    ["receipt", "verify", out.receipt, "--trust", trust, "--json"],
    RECEIPT_VERIFY_TIMEOUT_MS,
  );
  assertEquals(ok.code, 0, ok.stderr);
  const verdict = JSON.parse(ok.stdout);
  assertEquals([verdict.ok, verdict.anchored, verdict.node], [true, true, keyid]);
  const other = await task(
    ["receipt", "verify", out.receipt, "--trust", `${JOB_STATE}/node-key/trust.json`, "--json"],
    RECEIPT_VERIFY_TIMEOUT_MS,
  );
  assert(other.code !== 0, "a receipt must not verify against another key\n" + other.stdout);
});

Deno.test("TM-01 tampering: [vm tamper] a tampered kernel aborts to the seed shell, nothing is kexec'd", async () => {
  const dir = `${WORK}/tampered`;
  await Deno.mkdir(dir, { recursive: true });
  for (const f of ["manifest.json", "kernel", "initramfs"]) {
    await Deno.copyFile(`${ARTIFACTS}/stable/amd64/${f}`, `${dir}/${f}`);
  }
  const k = await Deno.readFile(`${dir}/kernel`);
  k[k.length - 4096] ^= 0x01; // one bit, deep in the image
  await Deno.writeFile(`${dir}/kernel`, k);
  const server = hostileServer(dir);
  try {
    const run = await bootVm({
      image: IMAGE,
      providerPort: server.port,
      timeoutMs: BOOT_TIMEOUT_MS,
      until: { target: UNTIL.target, diag: /== end of phase-diag/ },
      watch: { ...WATCH, shell: UNTIL.shell },
      // At the seed shell, a person would type phase-diag.
      input: [{ when: UNTIL.shell, text: "phase-diag\n" }],
    });
    report("tamper", run);
    assertEquals(run.outcome, "diag", tail(run));
    assert("shell" in run.marks, "aborted to the seed shell\n" + tail(run));
    const texts = run.lines.map((l) => l.text);
    const at = texts.findIndex((t) => t.includes("== last error"));
    assert(
      at >= 0 && /fetch/.test(texts.slice(at + 1).join("\n")),
      "phase-diag shows the last error\n" + tail(run, 40),
    );
    assert(
      !("kexec" in run.marks) && !("targetInit" in run.marks),
      "nothing may reach kexec\n" + tail(run),
    );
    assert(
      run.lines.some((l) => /E_DIGEST|hashes to|digest/i.test(l.text)),
      "the console names the digest failure\n" + tail(run),
    );
  } finally {
    await server.close();
  }
});

Deno.test("TM-03 freeze: [vm expired] an expired manifest aborts to the seed shell", async () => {
  const root = `${WORK}/expired`;
  await Deno.mkdir(`${root}/stable/amd64`, { recursive: true });
  for (const f of ["kernel", "initramfs"]) {
    await Deno.copyFile(`${ARTIFACTS}/stable/amd64/${f}`, `${root}/stable/amd64/${f}`);
  }
  const key = await loadSigningKey(`${KEYS}/release.pem`);
  await signRelease({
    root,
    channel: "stable",
    arch: "amd64",
    version: "2099.1.1",
    now: new Date(Date.now() - 3 * 86_400_000),
    expiresInMs: 86_400_000,
    cmdline: "console=ttyS0",
  }, key);
  const server = hostileServer(`${root}/stable/amd64`);
  try {
    const run = await bootVm({
      image: IMAGE,
      providerPort: server.port,
      timeoutMs: BOOT_TIMEOUT_MS,
      until: UNTIL,
      watch: WATCH,
    });
    report("expired", run);
    assertEquals(run.outcome, "shell", tail(run));
    assert(!("kexec" in run.marks), tail(run));
    assert(
      run.lines.some((l) => /expired/i.test(l.text)),
      "the console says expired\n" + tail(run),
    );
  } finally {
    await server.close();
  }
});

/** Runs `ip args`; throws with its stderr. */
async function ip(...args: string[]): Promise<void> {
  const r = await new Deno.Command("ip", { args, stderr: "piped", stdout: "null" }).output();
  if (r.code !== 0) throw new Error(`ip ${args.join(" ")}: ${new TextDecoder().decode(r.stderr)}`);
}

/** Longest wait for a process in the guest's LAN to print its ready line. */
const LAN_READY_TIMEOUT_MS = 60_000;

/**
 * The argv of the real provider on 10.77.0.1:`port` in a scenario's
 * namespace, serving `root` pre-signed under the scenario keys' trust file.
 * `deno run`, not `deno task`: `ip netns exec` execs it, so the pid killed
 * is the server's.
 */
function lanServeArgv(root: string, state: string, port: number, extra: string[]): string[] {
  return [
    "deno",
    "run",
    "-q",
    "--no-prompt",
    "--no-remote",
    "-P=serve",
    "provider/main.ts",
    "serve",
    "--root",
    root,
    "--state",
    state,
    "--trust",
    `${KEYS}/trust.json`,
    "--no-sign",
    "--host",
    "10.77.0.1",
    "--port",
    String(port),
    ...extra,
  ];
}

/**
 * A network namespace as the guest's LAN: `tap0` with `addresses` (the
 * first is 10.77.0.1), busybox udhcpd leasing 10.77.0.10-20, and the
 * processes a scenario starts in it. QEMU joins it through `wrap` and
 * `netArgs`.
 */
class GuestLan {
  readonly procs: Deno.ChildProcess[] = [];
  readonly wrap: readonly string[];
  readonly netArgs: readonly string[] = [
    "-netdev",
    "tap,id=n0,ifname=tap0,script=no,downscript=no",
    "-device",
    "virtio-net-pci,netdev=n0",
  ];
  private constructor(readonly ns: string) {
    this.wrap = ["ip", "netns", "exec", ns];
  }

  static async create(tag: string, addresses = ["10.77.0.1"]): Promise<GuestLan> {
    const lan = new GuestLan(`phase-${tag}-${crypto.randomUUID().slice(0, 8)}`);
    const ns = lan.ns;
    await ip("netns", "add", ns);
    try {
      await ip("-n", ns, "link", "set", "lo", "up");
      await ip("-n", ns, "tuntap", "add", "dev", "tap0", "mode", "tap");
      for (const a of addresses) await ip("-n", ns, "addr", "add", `${a}/24`, "dev", "tap0");
      await ip("-n", ns, "link", "set", "tap0", "up");
      const conf = `${WORK}/udhcpd-${ns}.conf`;
      await Deno.writeTextFile(`${WORK}/udhcpd-${ns}.leases`, "");
      await Deno.writeTextFile(
        conf,
        `interface tap0\nstart 10.77.0.10\nend 10.77.0.20\nlease_file ${WORK}/udhcpd-${ns}.leases\noption subnet 255.255.255.0\n`,
      );
      lan.spawn(["busybox", "udhcpd", "-f", conf], { stdout: "null" });
    } catch (err) {
      await lan.close();
      throw err;
    }
    return lan;
  }

  /**
   * A LAN for `guests` guests at once (self-hosting): bridge `br0` with
   * 10.77.0.1 and udhcpd, one tap per guest (`tap<i>`, see {@link netArgsFor}).
   */
  static async bridged(tag: string, guests: number): Promise<GuestLan> {
    const lan = new GuestLan(`phase-${tag}-${crypto.randomUUID().slice(0, 8)}`);
    const ns = lan.ns;
    await ip("netns", "add", ns);
    try {
      await ip("-n", ns, "link", "set", "lo", "up");
      await ip("-n", ns, "link", "add", "br0", "type", "bridge");
      await ip("-n", ns, "addr", "add", "10.77.0.1/24", "dev", "br0");
      for (let i = 0; i < guests; i++) {
        await ip("-n", ns, "tuntap", "add", "dev", `tap${i}`, "mode", "tap");
        await ip("-n", ns, "link", "set", `tap${i}`, "master", "br0");
        await ip("-n", ns, "link", "set", `tap${i}`, "up");
      }
      await ip("-n", ns, "link", "set", "br0", "up");
      const conf = `${WORK}/udhcpd-${ns}.conf`;
      await Deno.writeTextFile(`${WORK}/udhcpd-${ns}.leases`, "");
      await Deno.writeTextFile(
        conf,
        `interface br0\nstart 10.77.0.10\nend 10.77.0.20\nlease_file ${WORK}/udhcpd-${ns}.leases\noption subnet 255.255.255.0\n`,
      );
      lan.spawn(["busybox", "udhcpd", "-f", conf], { stdout: "null" });
    } catch (err) {
      await lan.close();
      throw err;
    }
    return lan;
  }

  /** QEMU network arguments of guest `i` on a {@link bridged} LAN (its own tap and MAC). */
  netArgsFor(i: number): string[] {
    return [
      "-netdev",
      `tap,id=n0,ifname=tap${i},script=no,downscript=no`,
      "-device",
      `virtio-net-pci,netdev=n0,mac=52:54:00:77:00:${(0x10 + i).toString(16)}`,
    ];
  }

  /** Starts `argv` in the namespace (from the repository root); stderr is dropped unless piped. */
  spawn(
    argv: string[],
    o: { stdout?: "piped" | "null"; stderr?: "piped" | "null" } = {},
  ): Deno.ChildProcess {
    const child = new Deno.Command("ip", {
      args: ["netns", "exec", this.ns, ...argv],
      cwd: REPO,
      stdout: o.stdout ?? "piped",
      stderr: o.stderr ?? "null",
    }).spawn();
    this.procs.push(child);
    return child;
  }

  /** Waits for `text` on `child`'s stdout, then keeps draining it so it never blocks. */
  async ready(child: Deno.ChildProcess, text: string): Promise<void> {
    const { found, seen } = await readUntil(
      child.stdout,
      (s) => s.includes(text) || undefined,
      LAN_READY_TIMEOUT_MS,
    );
    assert(found, `no '${text}' in the namespace ${this.ns}:\n${seen}`);
  }

  /** The real provider on 10.77.0.1:8080 in the namespace, serving `root` pre-signed, no DHT. */
  async provider(
    root: string,
    state: string,
    extra: string[],
    stderr: "piped" | "null" = "null",
  ): Promise<Deno.ChildProcess> {
    const serve = this.spawn(lanServeArgv(root, state, 8080, ["--no-dht", ...extra]), { stderr });
    await this.ready(serve, "phase-serve: ready");
    return serve;
  }

  async close(): Promise<void> {
    for (const p of this.procs) {
      try {
        p.kill("SIGTERM");
      } catch { /* gone */ }
      await p.status;
    }
    await ip("netns", "del", this.ns).catch(() => {});
  }
}

Deno.test("[vm lan] discovery by mDNS through a tap device in a network namespace", async () => {
  // No manual URL: the command line loses phase.provider, so only the LAN step can find the provider.
  const img = await vmCopy("lan");
  await editEntry(img, "internet.conf", (t) => t.replace(/ phase\.provider=\S+/, ""));
  const lan = await GuestLan.create("lan");
  try {
    // The real provider with its mDNS responder, inside the namespace.
    await lan.provider(ARTIFACTS, `${WORK}/lan-state`, []);
    const run = await bootVm({
      image: img,
      timeoutMs: BOOT_TIMEOUT_MS,
      until: UNTIL,
      watch: WATCH,
      wrap: lan.wrap,
      netArgs: lan.netArgs,
    });
    report("lan", run);
    assertEquals(run.outcome, "target", tail(run));
    assert(
      run.lines.some((l) => /phase-boot: discover: .*\(mdns\)/.test(l.text)),
      "found by mDNS\n" + tail(run),
    );
  } finally {
    await lan.close();
    await Deno.remove(img).catch(() => {});
  }
});

Deno.test("TM-15 captive portal and redirects: [vm captive] a fake portal stands in for the command line's provider URL and answers on the LAN: both are rejected, the real provider found on the LAN wins", async () => {
  const img = await vmCopy("captive");
  // The command line names an address where the portal answers: a command-line
  // URL that answers /health ends discovery (issue 17), so this one must be
  // seen through as a portal for the LAN to be asked at all.
  await editEntry(
    img,
    "internet.conf",
    (t) =>
      t.replace(
        /phase\.provider=\S+/,
        "phase.provider=http://10.77.0.2/stable/amd64/manifest.json",
      ),
  );
  const lan = await GuestLan.create("cap", ["10.77.0.1", "10.77.0.2"]);
  try {
    // The real provider advertises itself on mDNS; so does the portal.
    await lan.provider(ARTIFACTS, `${WORK}/captive-state`, []);
    const portal = lan.spawn([
      "deno",
      "run",
      "-q",
      "--no-prompt",
      "-P=test",
      "images/_portal.ts",
      "10.77.0.2",
    ]);
    await lan.ready(portal, "portal: ready");
    const run = await bootVm({
      image: img,
      timeoutMs: BOOT_TIMEOUT_MS,
      until: UNTIL,
      watch: WATCH,
      wrap: lan.wrap,
      netArgs: lan.netArgs,
    });
    report("captive", run);
    assertEquals(run.outcome, "target", tail(run));
    assert(
      run.lines.some((l) =>
        /phase-boot: discover: rejected http:\/\/10\.77\.0\.2.*captive portal/.test(l.text)
      ),
      "the portal was seen and rejected\n" + tail(run),
    );
    assert(
      run.lines.some((l) =>
        /phase-boot: discover: .*using http:\/\/10\.77\.0\.1:8080.*\(mdns\)/.test(l.text)
      ),
      tail(run),
    );
    assert(
      !run.lines.some((l) => /using http:\/\/10\.77\.0\.2/.test(l.text)),
      "the portal was never used\n" + tail(run),
    );
  } finally {
    await lan.close();
    await Deno.remove(img).catch(() => {});
  }
});

Deno.test("[vm local] a second boot from the cache with the provider down reaches the target", async () => {
  const img = await vmCopy("local");
  const vars = `${WORK}/local-vars.fd`;
  await Deno.copyFile("/usr/share/OVMF/OVMF_VARS_4M.fd", vars);
  try {
    const first = await bootServed({
      image: img,
      timeoutMs: BOOT_TIMEOUT_MS,
      until: UNTIL,
      watch: WATCH,
      persistent: true,
      vars,
    });
    report("local (first boot, internet)", first);
    assertEquals(first.outcome, "target", tail(first));
    await setDefaultEntry(img, "local.conf");
    // Provider down: nothing listens behind the guest's 10.0.2.100.
    const run = await bootVm({
      image: img,
      timeoutMs: BOOT_TIMEOUT_MS,
      until: UNTIL,
      watch: WATCH,
      persistent: true,
      vars,
    });
    report("local (second boot, provider down)", run);
    assertEquals(run.outcome, "target", tail(run));
    assert(
      run.lines.some((l) => l.text.includes("phase-boot: cache:")),
      "booted from the cache\n" + tail(run),
    );
    assert(run.lines.some((l) => l.text.includes("mode=local")), tail(run));
  } finally {
    await Deno.remove(img).catch(() => {});
  }
});

Deno.test("TM-02 rollback: [vm rollback] after booting a release, an older validly signed one is refused on the device", async () => {
  const img = await vmCopy("rollback");
  const vars = `${WORK}/rollback-vars.fd`;
  await Deno.copyFile("/usr/share/OVMF/OVMF_VARS_4M.fd", vars);
  const old = `${WORK}/rollback-old`;
  await Deno.mkdir(`${old}/stable/amd64`, { recursive: true });
  for (const f of ["kernel", "initramfs"]) {
    await Deno.copyFile(`${ARTIFACTS}/stable/amd64/${f}`, `${old}/stable/amd64/${f}`);
  }
  await signRelease({
    root: old,
    channel: "stable",
    arch: "amd64",
    version: "2026.1.1",
    now: new Date(),
    expiresInMs: 7 * 86_400_000,
    cmdline: "console=ttyS0",
  }, await loadSigningKey(`${KEYS}/release.pem`));
  try {
    const first = await bootServed({
      image: img,
      timeoutMs: BOOT_TIMEOUT_MS,
      until: UNTIL,
      watch: WATCH,
      persistent: true,
      vars,
    });
    report("rollback (first boot, current release)", first);
    assertEquals(first.outcome, "target", tail(first));
    const server = hostileServer(`${old}/stable/amd64`);
    try {
      const run = await bootVm({
        image: img,
        providerPort: server.port,
        timeoutMs: BOOT_TIMEOUT_MS,
        until: UNTIL,
        watch: WATCH,
        persistent: true,
        vars,
      });
      report("rollback (second boot, older release)", run);
      assertEquals(run.outcome, "shell", tail(run));
      assert(!("kexec" in run.marks), tail(run));
      assert(
        run.lines.some((l) => /E_ROLLBACK|below the/.test(l.text)),
        "the console names the rollback\n" + tail(run),
      );
    } finally {
      await server.close();
    }
  } finally {
    await Deno.remove(img).catch(() => {});
  }
});

Deno.test("TM-13 private-mode privacy: [vm private] the cache partition is byte-identical before and after a private boot", async () => {
  const img = await vmCopy("private");
  try {
    await setDefaultEntry(img, "private.conf");
    const before = await partitionDigest(img, PART_NAMES.cache);
    const run = await bootServed({
      image: img,
      timeoutMs: BOOT_TIMEOUT_MS,
      until: UNTIL,
      watch: WATCH,
      persistent: true,
    });
    report("private", run);
    assertEquals(run.outcome, "target", tail(run));
    assert(run.lines.some((l) => l.text.includes("mode=private")), tail(run));
    assertEquals(
      await partitionDigest(img, PART_NAMES.cache),
      before,
      "cache partition changed in private mode",
    );
  } finally {
    await Deno.remove(img).catch(() => {});
  }
});

Deno.test("TM-13 private-mode privacy: [vm private-tor] a private boot with allow_tor reaches the target through a real Tor network; the provider sees only the exit relay", async () => {
  // The guest's LAN holds a private five-relay Tor network and the
  // provider, both on 10.77.0.1. The seed is built with tor, allow_tor =
  // true and the test network's authorities as its torrc fragment.
  const out = `${WORK}/out-tor`;
  const artifacts = `${WORK}/artifacts-tor`;
  const lan = await GuestLan.create("tor");
  let net: Awaited<ReturnType<typeof startTorNet>> | undefined;
  try {
    const t0 = performance.now();
    net = await startTorNet(`${WORK}/tornet`, { address: "10.77.0.1", wrap: lan.wrap });
    console.log(
      `vm-plan: private-tor: Tor network up in ${((performance.now() - t0) / 1000).toFixed(1)} s`,
    );
    const torrc = `${WORK}/tor-fragment.torrc`;
    await Deno.writeTextFile(torrc, net.clientTorrc.join("\n") + "\n");
    await buildImage(out, artifacts, "http://10.77.0.1:8080/stable/amd64/manifest.json", "amd64", [
      "--with-tor",
      "--allow-tor",
      "--torrc",
      torrc,
    ]);
    const img = `${out}/phase-amd64.img`;
    await setDefaultEntry(img, "private.conf");
    const serve = await lan.provider(artifacts, `${WORK}/tor-state`, ["--no-mdns"], "piped");
    const accessLog = new Response(serve.stderr).text();
    const run = await bootVm({
      image: img,
      timeoutMs: TOR_BOOT_TIMEOUT_MS,
      until: UNTIL,
      watch: { ...WATCH, tor: /phase-boot: tor: ready/ },
      wrap: lan.wrap,
      netArgs: lan.netArgs,
    });
    report("private-tor", run);
    assertEquals(run.outcome, "target", tail(run, 40));
    const text = run.lines.map((l) => l.text).join("\n");
    assert(/phase-boot: mode private/.test(text), tail(run));
    assert(/phase-boot: tor: bootstrapped 100%/.test(text), tail(run, 40));
    assert(/phase-boot: tor: ready/.test(text), tail(run, 40));
    assert(!/WITHOUT Tor/.test(text), tail(run, 40));
    // The provider served the release, and every request it saw came from
    // the exit relay (10.77.0.1), none from the guest's DHCP address.
    serve.kill("SIGTERM");
    await serve.status;
    const remotes = new Set<string>();
    let artifactRequests = 0;
    for (const line of (await accessLog).split("\n")) {
      if (!line.includes('"event":"access"')) continue;
      const e = JSON.parse(line);
      remotes.add(e.remote);
      if (/\/(kernel|initramfs)$|\/cas\//.test(e.path)) artifactRequests++;
    }
    assert(artifactRequests >= 2, `artifact requests: ${artifactRequests}`);
    assertEquals([...remotes], ["10.77.0.1"]);
  } finally {
    await lan.close();
    await net?.stop();
    await Deno.remove(out, { recursive: true }).catch(() => {});
  }
});

Deno.test("[vm kexec] a kexec failure leads to the chainload fallback entry, which boots the target", async () => {
  const img = await vmCopy("kexec");
  try {
    // A real refusal by the kernel, no test hook in Phase: with
    // kexec_load_disabled=1 both kexec_load and kexec_file_load fail (EPERM).
    await editEntry(
      img,
      "internet.conf",
      (t) => t.replace(/^options (.*)$/m, "options $1 sysctl.kernel.kexec_load_disabled=1"),
    );
    const run = await bootServed({
      image: img,
      timeoutMs: BOOT_TIMEOUT_MS,
      until: UNTIL,
      watch: { ...WATCH, fallback: /phase-kexec: fallback: LoaderEntryOneShot=/ },
      allowReboot: true,
    });
    report("kexec", run);
    assertEquals(run.outcome, "target", tail(run, 40));
    assert("fallback" in run.marks, "the one-shot entry was set\n" + tail(run, 40));
    assert(
      run.lines.some((l) => l.text.includes("via=chainload")),
      "the target came up through the chainload entry\n" + tail(run),
    );
  } finally {
    await Deno.remove(img).catch(() => {});
  }
});

Deno.test("[vm grub] the GRUB fallback (systemd-boot's grub.conf entry) boots the internet entry's kernel and command line to the target marker", async () => {
  const img = await vmCopy("grub");
  const esp = await partition(img, PART_NAMES.esp);
  const internet = await new Deno.Command("mtype", {
    args: ["-i", `${img}@@${esp.offset}`, "::/loader/entries/internet.conf"],
    env: { MTOOLS_SKIP_CHECK: "1" },
    stdout: "piped",
  }).output();
  const options = /^options (.*)$/m.exec(new TextDecoder().decode(internet.stdout))?.[1];
  assert(options, "internet.conf has options");
  try {
    // The firmware starts systemd-boot (EFI/BOOT), whose default is now the
    // entry that chainloads /EFI/phase/grubx64.efi; GRUB's default is internet.
    await setDefaultEntry(img, "grub.conf");
    const run = await bootServed({
      image: img,
      timeoutMs: GRUB_BOOT_TIMEOUT_MS,
      until: UNTIL,
      watch: {
        grubMenu: /GNU GRUB/,
        grub: new RegExp(`${GRUB_BOOT_MARKER} internet`),
        // GRUB took the kernel from the ESP it was loaded from (its $cmdpath).
        grubEsp: /phase-grub: ESP \(hd\d+,gpt1\)/,
        kernelCmdline: /Command line: /,
        ...WATCH,
      },
    });
    report("grub", run);
    assertEquals(run.outcome, "target", tail(run));
    assert("grub" in run.marks, "GRUB booted the internet entry\n" + tail(run));
    assert("grubEsp" in run.marks, "GRUB used the ESP it came from\n" + tail(run));
    assert(run.marks.grub < run.marks.seedInit, "GRUB ran before the seed's init\n" + tail(run));
    // The seed kernel got exactly the loader entry's command line (GRUB adds BOOT_IMAGE).
    const cmdline = run.lines.find((l) => l.text.includes("Command line: "))?.text ?? "";
    assertEquals(
      cmdline.slice(cmdline.indexOf("Command line: ") + "Command line: ".length).trim(),
      `BOOT_IMAGE=/phase/linux ${options}`,
    );
    assert(run.lines.some((l) => l.text.includes("mode=internet")), tail(run));
  } finally {
    await Deno.remove(img).catch(() => {});
  }
});

let arm64Built: Promise<{ out: string; artifacts: string }> | undefined;

/** The arm64 image and release (built once per run; needs images/fetch_arm64.sh). */
function arm64Image(): Promise<{ out: string; artifacts: string }> {
  arm64Built ??= (async () => {
    const sysroot = Deno.env.get("PHASE_ARM64_SYSROOT") ?? `${REPO}/.cache/arm64/root`;
    const deno = Deno.env.get("PHASE_ARM64_DENO") ?? `${REPO}/.cache/arm64/deno/package/deno`;
    try {
      await Deno.stat(`${sysroot}/sbin/kexec`);
      await Deno.stat(deno);
    } catch {
      throw new Error(
        `no arm64 sysroot at ${sysroot} or Deno at ${deno}: run images/fetch_arm64.sh first`,
      );
    }
    const out = `${WORK}/out-arm64`;
    const artifacts = `${WORK}/artifacts-arm64`;
    await buildImage(out, artifacts, "http://10.0.2.100/stable/arm64/manifest.json", "arm64", [
      "--sysroot",
      sysroot,
      "--deno",
      deno,
    ]);
    return { out, artifacts };
  })();
  return arm64Built;
}

Deno.test("[vm arm64] the arm64 image (AAVMF, systemd-bootaa64, kexec -l with the zeroed-seed DTB) boots to the target marker", async () => {
  const { out, artifacts } = await arm64Image();
  const run = await bootServed({
    arch: "arm64",
    image: `${out}/phase-arm64.img`,
    timeoutMs: ARM64_BOOT_TIMEOUT_MS,
    until: UNTIL,
    watch: WATCH,
  }, artifacts);
  report("arm64", run);
  assertEquals(run.outcome, "target", tail(run));
  assert(run.lines.some((l) => l.text.includes("arch arm64")), tail(run));
});

// --- Secure Boot (TM-14, docs/secure-boot.md) -------------------------------
const SB = `${WORK}/secure-boot`;
const SB_IMAGE = `${SB}/out/phase-amd64.img`;
const SB_ARTIFACTS = `${SB}/artifacts`;
let sbBuilt: Promise<void> | undefined;

/** Runs a host tool; throws with its stderr when it fails. */
async function tool(
  cmd: string,
  args: string[],
  env: Record<string, string> = {},
): Promise<string> {
  const r = await new Deno.Command(cmd, { args, env, stdout: "piped", stderr: "piped" }).output();
  const err = new TextDecoder().decode(r.stderr);
  assertEquals(r.code, 0, `${cmd} ${args.join(" ")}: ${err}`);
  return new TextDecoder().decode(r.stdout) + err;
}

/**
 * The Secure Boot image, built once for the scenarios that need it: signed
 * with Debian's snakeoil key (a decrypted copy: sbsign cannot prompt) and
 * the plan's release keys, with --unsafe-test-key.
 */
function secureBootImage(): Promise<void> {
  sbBuilt ??= (async () => {
    await Deno.mkdir(SB, { recursive: true });
    await tool("openssl", [
      "pkey",
      "-in",
      SNAKEOIL_KEY,
      "-passin",
      "pass:snakeoil",
      "-out",
      `${SB}/db.key`,
    ]);
    await Deno.copyFile(SNAKEOIL_CERT, `${SB}/db.crt`);
    await buildImage(`${SB}/out`, SB_ARTIFACTS, PROVIDER_URL, "amd64", [
      "--secure-boot",
      "--db-key",
      `${SB}/db.key`,
      "--db-cert",
      `${SB}/db.crt`,
      "--unsafe-test-key",
    ]);
  })();
  return sbBuilt;
}

async function sbCopy(name: string): Promise<string> {
  await secureBootImage();
  const p = `${WORK}/${name}.img`;
  await Deno.copyFile(SB_IMAGE, p);
  return p;
}

/** Flips every bit of the byte at `offset` of `file`. */
async function flipByte(file: string, offset: number): Promise<void> {
  const f = await Deno.open(file, { read: true, write: true });
  try {
    const b = new Uint8Array(1);
    await f.seek(offset, Deno.SeekMode.Start);
    await f.read(b);
    b[0] ^= 0xff;
    await f.seek(offset, Deno.SeekMode.Start);
    await f.write(b);
  } finally {
    f.close();
  }
}

/** Boots with a real provider whose access log is kept; returns the run and the paths it served. */
async function bootServedLogged(
  o: Omit<Parameters<typeof bootVm>[0], "providerPort">,
  root: string,
): Promise<{ run: VmRun; paths: string[] }> {
  const logger = memoryLogger();
  const p = await startProvider({
    root,
    state: `${WORK}/provider-state-${crypto.randomUUID()}`,
    host: "127.0.0.1",
    port: 0,
    sign: false,
    trustPath: `${KEYS}/trust.json`,
    mdns: false,
    dht: false,
    watch: false,
    logger,
  });
  try {
    const run = await bootVm({ ...o, providerPort: p.port });
    return {
      run,
      paths: logger.entries.filter((e) => e.event === "access").map((e) => String(e.fields.path)),
    };
  } finally {
    await p.close();
  }
}

const SB_WATCH = {
  ...WATCH,
  secureBoot: /phase-seed: secure boot: enabled; lockdown: .*\[integrity\]/,
  verity: /phase-seed: dm-verity: seed partition .* verified/,
  kexecFile: /phase-kexec: loaded with \S*kexec -s /,
};

Deno.test("TM-14 secure boot and lockdown: [vm secure-boot] with Secure Boot enforced (snakeoil db) the signed seed UKI boots, dm-verity verifies the seed, lockdown is on, and kexec -s loads the db-signed target", async () => {
  const img = await sbCopy("secure-boot");
  try {
    const { run, paths } = await bootServedLogged({
      image: img,
      firmware: OVMF_SNAKEOIL,
      timeoutMs: SECURE_BOOT_TIMEOUT_MS,
      until: UNTIL,
      watch: SB_WATCH,
    }, SB_ARTIFACTS);
    report("secure-boot", run);
    assertEquals(run.outcome, "target", tail(run, 40));
    for (const m of ["secureBoot", "verity", "kexecFile"]) {
      assert(m in run.marks, `no ${m} line\n${tail(run, 40)}`);
    }
    assert(run.lines.some((l) => /Kernel is locked down from EFI Secure Boot/.test(l.text)));
    assert(paths.some((p) => /kernel|cas/.test(p)), `fetched: ${paths.join(" ")}`);
    // TM-14: the target opened the seed partition through dm-verity too, then ran the job from it.
    assert(run.lines.some((l) => l.text.startsWith(TARGET_SEED_VERIFIED)), tail(run, 40));
    assert("wasm" in run.marks, tail(run, 40));
  } finally {
    await Deno.remove(img).catch(() => {});
  }
});

Deno.test("TM-14 secure boot and lockdown: [vm secure-boot-tamper-target] the medium changes after the seed verified it (one byte, written while the seed hands over): the target's dm-verity refuses the partition and runs nothing from it", async () => {
  const img = await sbCopy("sb-tamper-target");
  try {
    const seed = await partition(img, PART_NAMES.seed);
    // A medium that answers the second read differently: the byte changes
    // on the host while the seed kernel hands over (the guest reads the
    // image file through QEMU, with no copy of its own).
    let flipped: Promise<void> | undefined;
    const { run } = await bootServedLogged({
      image: img,
      firmware: OVMF_SNAKEOIL,
      timeoutMs: SECURE_BOOT_TIMEOUT_MS,
      until: UNTIL,
      watch: SB_WATCH,
      onLine: (l) => {
        if (!flipped && /phase-kexec: executing the loaded kernel/.test(l.text)) {
          flipped = flipByte(img, seed.offset + 3 * MiB + 4321);
        }
      },
    }, SB_ARTIFACTS);
    await flipped;
    report("secure-boot-tamper-target", run);
    assert(flipped, "the seed handed over\n" + tail(run, 40));
    assert("verity" in run.marks, "the seed verified its partition first\n" + tail(run, 40));
    assertEquals(run.outcome, "target", tail(run, 40));
    assert(
      run.lines.some((l) => l.text.startsWith(`${TARGET_SEED_REFUSED}: it does not match`)),
      tail(run, 40),
    );
    assert(!("wasm" in run.marks), "no post-boot job from the changed partition\n" + tail(run, 40));
  } finally {
    await Deno.remove(img).catch(() => {});
  }
});

Deno.test("TM-14 secure boot and lockdown: [vm secure-boot-tamper-uki] one byte of the seed UKI on the ESP changed: the firmware refuses it and no seed runs", async () => {
  const img = await sbCopy("sb-tamper-uki");
  const esp = await partition(img, PART_NAMES.esp);
  const local = `${WORK}/seed-internet.efi`;
  const env = { MTOOLS_SKIP_CHECK: "1" };
  try {
    await tool("mcopy", ["-i", `${img}@@${esp.offset}`, "::/phase/seed-internet.efi", local], env);
    await flipByte(local, Math.floor((await Deno.stat(local)).size / 2));
    await tool(
      "mcopy",
      ["-o", "-i", `${img}@@${esp.offset}`, local, "::/phase/seed-internet.efi"],
      env,
    );
    const run = await bootVm({
      image: img,
      firmware: OVMF_SNAKEOIL,
      timeoutMs: SECURE_BOOT_REFUSAL_TIMEOUT_MS,
      until: {
        refused: /Security Violation|Access Denied/i,
        seed: /Linux version|phase-seed:|EFI stub:/,
      },
    });
    report("secure-boot-tamper-uki", run);
    assertEquals(run.outcome, "refused", tail(run, 40));
    assert(!run.lines.some((l) => /Linux version|phase-seed:/.test(l.text)), tail(run, 40));
  } finally {
    await Deno.remove(img).catch(() => {});
  }
});

Deno.test("TM-14 secure boot and lockdown: [vm secure-boot-tamper-seed] one byte of the seed squashfs changed: dm-verity refuses it, the seed stops with its message, nothing is fetched", async () => {
  const img = await sbCopy("sb-tamper-seed");
  try {
    const seed = await partition(img, PART_NAMES.seed);
    await flipByte(img, seed.offset + 3 * MiB + 4321);
    const { run, paths } = await bootServedLogged({
      image: img,
      firmware: OVMF_SNAKEOIL,
      timeoutMs: SECURE_BOOT_TIMEOUT_MS,
      until: UNTIL,
      watch: { ...SB_WATCH, refused: new RegExp(VERITY_REFUSED_MARKER) },
    }, SB_ARTIFACTS);
    report("secure-boot-tamper-seed", run);
    assertEquals(run.outcome, "shell", tail(run, 40));
    assert("refused" in run.marks, tail(run, 40));
    assert("secureBoot" in run.marks, tail(run, 40));
    assert(!run.lines.some((l) => l.text.startsWith("phase-boot:")), tail(run, 40));
    assertEquals(paths, [], "the provider served nothing");
  } finally {
    await Deno.remove(img).catch(() => {});
  }
});

Deno.test("TM-14 secure boot and lockdown: [vm secure-boot-unsigned-target] a target kernel the manifest signs but no Secure Boot key signed: kexec_file_load refuses it under lockdown, Phase says so, and the chainload fallback is disabled", async () => {
  const img = await sbCopy("sb-unsigned");
  const root = `${SB}/artifacts-unsigned`;
  await Deno.mkdir(`${root}/stable/amd64`, { recursive: true });
  await Deno.copyFile(`${SB_ARTIFACTS}/stable/amd64/initramfs`, `${root}/stable/amd64/initramfs`);
  const kernel = `${root}/stable/amd64/kernel`;
  await Deno.copyFile(`${SB_ARTIFACTS}/stable/amd64/kernel`, kernel);
  await tool("sbattach", ["--remove", kernel]);
  assert(!/signature \d/.test(await tool("sbverify", ["--list", kernel])), "kernel still signed");
  await signRelease({
    root,
    channel: "stable",
    arch: "amd64",
    version: "2099.1.1",
    now: new Date(),
    expiresInMs: 7 * 86_400_000,
    cmdline: "console=ttyS0",
  }, await loadSigningKey(`${KEYS}/release.pem`));
  try {
    const { run } = await bootServedLogged({
      image: img,
      firmware: OVMF_SNAKEOIL,
      timeoutMs: SECURE_BOOT_TIMEOUT_MS,
      until: UNTIL,
      watch: {
        ...SB_WATCH,
        refused: /refused .* under lockdown \(integrity\): the target kernel is not signed/,
        noFallback: /chainload fallback is disabled under Secure Boot/,
      },
      allowReboot: true,
    }, root);
    report("secure-boot-unsigned-target", run);
    assertEquals(run.outcome, "shell", tail(run, 40));
    assert("refused" in run.marks, "the kernel's refusal is named\n" + tail(run, 40));
    assert("noFallback" in run.marks, "the fallback refused\n" + tail(run, 40));
    assert(!run.lines.some((l) => l.text.includes(TARGET_MARKER)), tail(run, 40));
  } finally {
    await Deno.remove(img).catch(() => {});
  }
});

/** Debian's Microsoft-signed shim and Debian-signed GRUB (shim-signed, grub-efi-amd64-signed). */
const SHIM_SIGNED = "/usr/lib/shim/shimx64.efi.signed";
const GRUB_SIGNED = "/usr/lib/grub/x86_64-efi-signed/grubx64.efi.signed";

Deno.test("TM-14 secure boot and lockdown: [vm secure-boot-ms] the Microsoft path (OVMF with Microsoft's keys, shim-signed, Debian-signed GRUB and kernel) boots a seed under lockdown", async () => {
  // The ordinary image's ESP gets the distribution's signed chain: shim as
  // EFI/BOOT/BOOTX64.EFI, Debian's signed GRUB beside it, and the grub.cfg
  // the image already carries (GRUB fallback memdisk) where that GRUB looks.
  const img = await vmCopy("sb-ms");
  const esp = await partition(img, PART_NAMES.esp);
  const fat = `${img}@@${esp.offset}`;
  const env = { MTOOLS_SKIP_CHECK: "1" };
  const kernel = `${WORK}/ms-linux`;
  try {
    await tool("mcopy", ["-i", fat, "::/phase/linux", kernel], env);
    // Debian's kernel carries Debian's signature (shim trusts Debian's CA).
    assert(
      /Debian Secure Boot/.test(await tool("sbverify", ["--list", kernel])),
      "the seed kernel is Debian-signed",
    );
    await tool("mcopy", ["-i", fat, "::/EFI/phase/grubx64.efi", `${WORK}/ms-grub-src.efi`], env);
    const grubEfi = await Deno.readFile(`${WORK}/ms-grub-src.efi`);
    const cfg = findUstarMember(grubEfi, "boot/grub/grub.cfg");
    assert(cfg, "the image's grub.cfg");
    await Deno.writeFile(`${WORK}/ms-grub.cfg`, cfg);
    await tool("mcopy", ["-o", "-i", fat, SHIM_SIGNED, "::/EFI/BOOT/BOOTX64.EFI"], env);
    await tool("mcopy", ["-o", "-i", fat, GRUB_SIGNED, "::/EFI/BOOT/grubx64.efi"], env);
    await tool("mcopy", ["-o", "-i", fat, `${WORK}/ms-grub.cfg`, "::/EFI/BOOT/grub.cfg"], env);
    await tool("mmd", ["-i", fat, "::/EFI/debian"], env);
    await tool("mcopy", ["-o", "-i", fat, `${WORK}/ms-grub.cfg`, "::/EFI/debian/grub.cfg"], env);
    const run = await bootServed({
      image: img,
      firmware: OVMF_MS,
      timeoutMs: SECURE_BOOT_TIMEOUT_MS,
      until: UNTIL,
      watch: {
        ...WATCH,
        grub: new RegExp(`${GRUB_BOOT_MARKER} internet`),
        secureBoot: /phase-seed: secure boot: enabled; lockdown: .*\[integrity\]/,
        kexecFile: /phase-kexec: loaded with \S*kexec -s /,
      },
    });
    report("secure-boot-ms", run);
    assertEquals(run.outcome, "target", tail(run, 40));
    assert("grub" in run.marks, "Debian's GRUB (under shim) booted the entry\n" + tail(run, 40));
    assert("secureBoot" in run.marks, "Secure Boot and lockdown in the seed\n" + tail(run, 40));
    assert("kexecFile" in run.marks, tail(run, 40));
  } finally {
    await Deno.remove(img).catch(() => {});
  }
});

// --- Trust rotation (TM-09, formats.md §1.1) --------------------------------

/** Copies the plan's kernel and initramfs into `root` and signs them as `version` with `key`. */
async function releaseSignedBy(
  root: string,
  version: string,
  key: Awaited<ReturnType<typeof loadSigningKey>>,
): Promise<void> {
  await Deno.mkdir(`${root}/stable/amd64`, { recursive: true });
  for (const f of ["kernel", "initramfs"]) {
    await Deno.copyFile(`${ARTIFACTS}/stable/amd64/${f}`, `${root}/stable/amd64/${f}`);
  }
  await signRelease({
    root,
    channel: "stable",
    arch: "amd64",
    version,
    now: new Date(),
    expiresInMs: 7 * 86_400_000,
    cmdline: "console=ttyS0",
  }, key);
}

/** A file of the image's cache partition (ext4), read with debugfs; undefined when absent. */
async function cacheFile(img: string, path: string): Promise<string | undefined> {
  const { offset, size } = await partition(img, PART_NAMES.cache);
  const part = `${WORK}/cache-${crypto.randomUUID()}.ext4`;
  const dd = await new Deno.Command("dd", {
    args: [
      `if=${img}`,
      `of=${part}`,
      "bs=1M",
      `skip=${offset}`,
      `count=${size}`,
      "iflag=skip_bytes,count_bytes",
    ],
    stderr: "piped",
  }).output();
  assertEquals(dd.code, 0, new TextDecoder().decode(dd.stderr));
  try {
    const r = await new Deno.Command("debugfs", {
      args: ["-R", `cat ${path}`, part],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const text = new TextDecoder().decode(r.stdout);
    return r.code === 0 && text.length > 0 ? text : undefined;
  } finally {
    await Deno.remove(part).catch(() => {});
  }
}

/** What the rotation scenarios serve: trust v2 (A → B) and releases signed by B and by A. */
interface Rotation {
  /** Trust file of the provider: A and B (it is not the device's trust). */
  readonly providerTrust: string;
  /** Root with `trust/2.json` and release 2099.6.1 signed by B only. */
  readonly rotated: string;
  /** Root without the chain, with the newer release 2099.6.2 signed by the retired key A only. */
  readonly stolen: string;
}
let rotation: Promise<Rotation> | undefined;

/**
 * The rotation, made once: key A is the plan's release key (the image's
 * /etc/phase/trust.json, version 1, trusts it only); key B is new.
 */
function rotationRoots(): Promise<Rotation> {
  rotation ??= (async () => {
    const dir = `${WORK}/rotate`;
    const pinned = `${KEYS}/trust.json`;
    const keyA = await loadSigningKey(`${KEYS}/release.pem`);
    const b = await keygen(`${dir}/keys-b`, "release-b", {
      trustPath: `${dir}/keys-b/trust.json`,
    });
    const keyB = await loadSigningKey(b.paths.privateKey);
    const providerTrust = `${dir}/provider-trust.json`;
    await trustInit(
      providerTrust,
      [{ path: `${KEYS}/release.pub.pem` }, { path: b.paths.publicKey }],
      1,
    );
    // The signers publish trust v2 (A → B), signed by A and by B, and a release signed by B only.
    const rotated = `${dir}/rotated`;
    await Deno.mkdir(`${rotated}/trust`, { recursive: true });
    const rot = await trustRotate({
      from: pinned,
      out: `${rotated}/trust/2.json`,
      addKeys: [b.paths.publicKey],
      removeKeys: [keyA.keyid],
      expiresInMs: 365 * 86_400_000,
      signWith: [`${KEYS}/release.pem`, b.paths.privateKey],
    });
    assert(rot.rotation.complete, "trust v2 is signed by both thresholds");
    await releaseSignedBy(rotated, "2099.6.1", keyB);
    // Whoever holds the retired key A signs a newer release and serves it
    // without the chain: only what the device kept can refuse it.
    const stolen = `${dir}/stolen`;
    await releaseSignedBy(stolen, "2099.6.2", keyA);
    return { providerTrust, rotated, stolen };
  })();
  return rotation;
}

Deno.test("TM-09 key compromise and rotation: [vm rotate] a device whose medium trusts key A boots a release signed by key B after the provider publishes trust v2 (A → B); a newer release signed by the retired key A is then refused on the device", async () => {
  const img = await vmCopy("rotate");
  const vars = `${WORK}/rotate-vars.fd`;
  await Deno.copyFile("/usr/share/OVMF/OVMF_VARS_4M.fd", vars);
  const { providerTrust, rotated, stolen } = await rotationRoots();
  try {
    const first = await bootServed(
      {
        image: img,
        timeoutMs: BOOT_TIMEOUT_MS,
        until: UNTIL,
        watch: { ...WATCH, rotated: /trust_rotated/ },
        persistent: true,
        vars,
      },
      rotated,
      providerTrust,
    );
    report("rotate (first boot, B-signed release after trust v2)", first);
    // Reaching the target means fetch walked to v2 AND kexec (which
    // verifies the manifest again, with --state) verified under it.
    assertEquals(first.outcome, "target", tail(first, 40));
    assert(
      first.lines.some((l) => /phase-boot: fetch: stable\/amd64 2099\.6\.1 /.test(l.text)),
      "the B-signed release was fetched\n" + tail(first, 40),
    );
    assert("rotated" in first.marks, "fetch logged the accepted trust v2\n" + tail(first, 40));
    // The device kept v2 beside its rollback floor on the cache partition.
    assertEquals(
      await cacheFile(img, "/state/trust/2.json"),
      await Deno.readTextFile(`${rotated}/trust/2.json`),
    );
    assertEquals(JSON.parse(await cacheFile(img, "/state/trust-floor.json") ?? "null"), {
      version: 2,
    });
    const second = await bootServed(
      {
        image: img,
        timeoutMs: BOOT_TIMEOUT_MS,
        until: UNTIL,
        watch: { ...WATCH, refused: /valid trusted signature/ },
        persistent: true,
        vars,
      },
      stolen,
      providerTrust,
    );
    report("rotate (second boot, newer release signed by the retired key A)", second);
    assertEquals(second.outcome, "shell", tail(second, 40));
    assert(!("kexec" in second.marks) && !("targetInit" in second.marks), tail(second, 40));
    assert(
      "refused" in second.marks,
      "the console names the signature refusal\n" + tail(second, 40),
    );
  } finally {
    await Deno.remove(img).catch(() => {});
  }
});

Deno.test("TM-09 key compromise and rotation: [vm rotate-private] a private boot of a device whose medium trusts key A walks to trust v2 on tmpfs and boots the release signed by key B; the cache partition is untouched", async () => {
  const img = await vmCopy("rotate-private");
  const { providerTrust, rotated } = await rotationRoots();
  try {
    await setDefaultEntry(img, "private.conf");
    const before = await partitionDigest(img, PART_NAMES.cache);
    const run = await bootServed(
      {
        image: img,
        timeoutMs: BOOT_TIMEOUT_MS,
        until: UNTIL,
        watch: WATCH,
        persistent: true,
      },
      rotated,
      providerTrust,
    );
    report("rotate-private", run);
    // kexec verified the B-signed manifest again: under the v2 that
    // fetch-private kept in /run/phase/private/state (tmpfs).
    assertEquals(run.outcome, "target", tail(run, 40));
    assert(run.lines.some((l) => l.text.includes("mode=private")), tail(run));
    assert(
      run.lines.some((l) => /phase-boot: fetch: stable\/amd64 2099\.6\.1 /.test(l.text)),
      "the B-signed release was fetched\n" + tail(run, 40),
    );
    assertEquals(await partitionDigest(img, PART_NAMES.cache), before, "cache partition changed");
  } finally {
    await Deno.remove(img).catch(() => {});
  }
});

globalThis.addEventListener("unload", () => {
  try {
    Deno.removeSync(WORK, { recursive: true });
  } catch { /* already gone */ }
});

// ---- Self-hosting (issue 12 §3): a guest that booted through Phase serves the next ones ----

/** Bound of a self-hosting guest that keeps serving while another boots (two TCG guests at once). */
const SELFHOST_SERVE_TIMEOUT_MS = 900_000;
/** Bound of the wait for the serving guest's provider to say it is ready. */
const SELFHOST_READY_TIMEOUT_MS = 480_000;
/** How long a private guest is watched after its marker (a serving guest's provider is ready well within it). */
const SELFHOST_PRIVATE_SETTLE_MS = 60_000;
/** The host provider's URL in a self-hosting namespace. */
const LAN_PROVIDER_URL = "http://10.77.0.1:8080/stable/amd64/manifest.json";

/** A guest booted in the background: its console so far, and a way to wait for a line. */
interface Background {
  readonly lines: ConsoleLine[];
  /** Resolves with the first line matching `re` (seen before or after the call). */
  waitFor(re: RegExp, timeoutMs: number): Promise<string>;
  /** Types `text` on the guest's console. */
  type(text: string): Promise<void>;
  /** Stops the guest and returns its run. */
  stop(): Promise<VmRun>;
}

/** Boots `o` until stopped; lines are watched as they arrive. */
function background(
  o: Omit<Parameters<typeof bootVm>[0], "until" | "stop" | "onLine">,
): Background {
  const lines: ConsoleLine[] = [];
  const waiters: { re: RegExp; resolve: (t: string) => void }[] = [];
  const ctl = new AbortController();
  const typed = new TransformStream<Uint8Array, Uint8Array>();
  const typer = typed.writable.getWriter();
  const run = bootVm({
    ...o,
    until: {},
    console: typed.readable,
    stop: ctl.signal,
    onLine: (l) => {
      lines.push(l);
      for (let i = 0; i < waiters.length; i++) {
        if (waiters[i].re.test(l.text)) waiters.splice(i--, 1)[0].resolve(l.text);
      }
    },
  });
  let ended = false;
  run.finally(() => ended = true);
  return {
    lines,
    waitFor(re, timeoutMs) {
      const seen = lines.find((l) => re.test(l.text));
      if (seen) return Promise.resolve(seen.text);
      return new Promise((resolve, reject) => {
        const w = { re, resolve: (t: string) => (clearTimeout(timer), resolve(t)) };
        const timer = setTimeout(() => {
          waiters.splice(waiters.indexOf(w), 1);
          reject(
            new Error(
              `no ${re} on the console within ${timeoutMs} ms${ended ? " (guest exited)" : ""}:\n${
                lines.filter((l) => !l.text.startsWith("[ ")).slice(-30).map((l) =>
                  `${l.ms} ${l.text}`
                )
                  .join("\n")
              }`,
            ),
          );
        }, timeoutMs);
        waiters.push(w);
        run.then(() => {
          if (waiters.includes(w)) w.resolve(""); // exited: the caller's assertion says what is missing
        });
      });
    },
    async type(text) {
      await typer.write(new TextEncoder().encode(text));
    },
    async stop() {
      ctl.abort();
      await typer.close().catch(() => {});
      return await run;
    },
  };
}

/**
 * Guest A of a self-hosting scenario: boots from the host provider in the
 * namespace (manual URL), reaches the target, which starts serving its
 * cache; resolves with A and its provider's base URL once it is ready.
 */
async function servingGuest(
  lan: GuestLan,
  name: string,
  arch: "amd64" | "arm64" = "amd64",
  source = IMAGE,
): Promise<{ a: Background; url: string; img: string }> {
  const img = `${WORK}/${name}.img`;
  await Deno.copyFile(source, img);
  await editEntry(
    img,
    "internet.conf",
    (t) =>
      t.replace(
        / phase\.provider=\S+/,
        ` phase.provider=${LAN_PROVIDER_URL.replace("/amd64/", `/${arch}/`)}`,
      ),
  );
  const a = background({
    arch,
    image: img,
    timeoutMs: SELFHOST_SERVE_TIMEOUT_MS,
    wrap: lan.wrap,
    netArgs: lan.netArgsFor(0),
  });
  const serving = await a.waitFor(new RegExp(SELFHOST_SERVING), SELFHOST_READY_TIMEOUT_MS);
  const url = /(http:\/\/10\.77\.0\.\d+:\d+)\//.exec(serving)?.[1];
  assert(url, `A printed its URL: ${serving}`);
  await a.waitFor(/phase-serve: ready/, SELFHOST_READY_TIMEOUT_MS);
  return { a, url, img };
}

/**
 * `[vm self-host]` on `arch`: guest A boots `image` from the host provider
 * serving `artifacts` (manual URL) and serves; the host provider stops;
 * guest B (empty cache, no manual URL) finds A by mDNS and boots from it.
 */
async function selfHost(arch: "amd64" | "arm64", image: string, artifacts: string): Promise<void> {
  const lan = await GuestLan.bridged(`selfhost-${arch}`, 2);
  const imgB = `${WORK}/selfhost-${arch}-b.img`;
  await Deno.copyFile(image, imgB);
  // B has no manual URL: only the LAN (mDNS) can find a provider.
  await editEntry(imgB, "internet.conf", (t) => t.replace(/ phase\.provider=\S+/, ""));
  let a: Background | undefined;
  let imgA: string | undefined;
  try {
    // The host provider, no mDNS: A is pointed at it, B must not find it.
    const host = await lan.provider(artifacts, `${WORK}/selfhost-${arch}-state`, ["--no-mdns"]);
    const t0 = performance.now();
    const served = await servingGuest(lan, `selfhost-${arch}-a`, arch, image);
    a = served.a;
    imgA = served.img;
    console.log(
      `vm-plan: self-host ${arch}: A serving at ${served.url} after ${
        ((performance.now() - t0) / 1000).toFixed(1)
      } s`,
    );
    assert(a.lines.some((l) => l.text.includes(TARGET_MARKER)), "A reached the target");
    assert(
      a.lines.some((l) => /rootfs sha256:[0-9a-f]{64} verified/.test(l.text)),
      "A verified its rootfs",
    );
    // Issue 17: A's seed did not download the rootfs its own partition holds;
    // A's target read it from there, verified it and added it to the cache.
    assert(
      a.lines.some((l) => /artifact_held artifact=rootfs/.test(l.text)),
      "A's fetch held the rootfs",
    );
    assert(a.lines.some((l) => l.text.includes(SELFHOST_FROM_SEED)), "A read it from its seed");
    // The host provider is stopped: from now on only A can serve the release.
    host.kill("SIGTERM");
    await host.status;
    const run = await bootVm({
      arch,
      image: imgB,
      timeoutMs: arch === "arm64" ? ARM64_BOOT_TIMEOUT_MS : BOOT_TIMEOUT_MS * 2,
      until: UNTIL,
      watch: WATCH,
      wrap: lan.wrap,
      netArgs: lan.netArgsFor(1),
    });
    report(`self-host ${arch} (B)`, run);
    assertEquals(run.outcome, "target", tail(run));
    // B's console names A as the source, found by mDNS.
    assert(
      run.lines.some((l) =>
        l.text.includes(`using ${served.url}/`) && /phase-boot: discover: .*\(mdns\)/.test(l.text)
      ),
      `B names A (${served.url}) as its source, found by mDNS\n` + tail(run),
    );
    assert(run.lines.some((l) => l.text.includes("phase-wasm: hello: dlroW ,olleH")), tail(run));
    const aRun = await a.stop();
    a = undefined;
    // A's provider log: it re-served (never signed) and answered B's requests.
    const aText = aRun.lines.map((l) => l.text);
    assert(
      aText.some((t) => t.includes("re-serving the verified releases of the cache")),
      "A re-serves",
    );
    assert(aText.some((t) => t.includes("mdns_announced")), "A announced itself by mDNS");
    assert(
      aText.some((t) => /\baccess\b/.test(t) && /kernel|initramfs|cas\/sha256/.test(t)),
      "A served artifacts to B\n" +
        aText.filter((t) => t.includes("phase-serve") || t.includes("{")).slice(-20).join("\n"),
    );
  } finally {
    await a?.stop();
    await lan.close();
    await Deno.remove(imgB).catch(() => {});
    if (imgA) await Deno.remove(imgA).catch(() => {});
  }
}

Deno.test("[vm self-host] guest A boots from the host, serves its cache; with the host provider stopped, guest B finds A by mDNS and boots the same release from it", async () => {
  await selfHost("amd64", IMAGE, ARTIFACTS);
});

Deno.test("[vm self-host-arm64] arm64: guest A boots from the host, serves its cache; with the host provider stopped, guest B finds A by mDNS and boots the same release from it", async () => {
  const { out, artifacts } = await arm64Image();
  await selfHost("arm64", `${out}/phase-arm64.img`, artifacts);
});

/** The release's kernel digest (hex), from the manifest the build signed. */
async function kernelHex(): Promise<string> {
  const m = JSON.parse(await Deno.readTextFile(`${ARTIFACTS}/stable/amd64/manifest.json`));
  const doc = m.payload ? JSON.parse(atob(m.payload)) : m;
  return String(doc.artifacts.kernel.digest).replace(/^sha256:/, "");
}

Deno.test("TM-01 tampering: [vm self-host-tamper] a byte of the kernel in A's cache changed: A refuses to serve it (logged) and B, pointed at A, kexecs nothing", async () => {
  const lan = await GuestLan.bridged("selfhost-tamper", 2);
  const hex = await kernelHex();
  let a: Background | undefined;
  let imgA: string | undefined;
  const imgB = await vmCopy("selfhost-tamper-b");
  try {
    const host = await lan.provider(ARTIFACTS, `${WORK}/selfhost-tamper-state`, ["--no-mdns"]);
    const served = await servingGuest(lan, "selfhost-tamper-a");
    a = served.a;
    imgA = served.img;
    host.kill("SIGTERM");
    await host.status;
    // The debug hook: a root shell on A's console changes one byte of the
    // cached kernel in place (the target mounted the cache read-only).
    await a.type(
      `mount -o remount,rw /var/cache/phase && printf Z | dd of=/var/cache/phase/cas/sha256/${hex} bs=1 seek=100000 conv=notrunc 2>/dev/null && sync && echo PHASE-TAMPERED-DONE\n`,
    );
    await a.waitFor(/^PHASE-TAMPERED-DONE/, SELFHOST_READY_TIMEOUT_MS);
    const refused = await a.waitFor(/release_refused/, SELFHOST_READY_TIMEOUT_MS);
    assert(/E_DIGEST/.test(refused), `A refuses with E_DIGEST: ${refused}`);
    // B is pointed at A explicitly.
    await editEntry(
      imgB,
      "internet.conf",
      (t) =>
        t.replace(
          / phase\.provider=\S+/,
          ` phase.provider=${served.url}/stable/amd64/manifest.json`,
        ),
    );
    const run = await bootVm({
      image: imgB,
      timeoutMs: BOOT_TIMEOUT_MS * 2,
      until: UNTIL,
      watch: WATCH,
      wrap: lan.wrap,
      netArgs: lan.netArgsFor(1),
    });
    report("self-host-tamper (B)", run);
    assertEquals(run.outcome, "shell", tail(run));
    assert(!("kexec" in run.marks), "nothing was handed to kexec\n" + tail(run));
    assert(!run.lines.some((l) => l.text.includes(TARGET_MARKER)), tail(run));
    const aRun = await a.stop();
    a = undefined;
    // Logged once, with the reason.
    assertEquals(
      aRun.lines.filter((l) => l.text.includes("release_refused")).length,
      1,
      aRun.lines.filter((l) => l.text.includes("refused")).map((l) => l.text).join("\n"),
    );
  } finally {
    await a?.stop();
    await lan.close();
    await Deno.remove(imgB).catch(() => {});
    if (imgA) await Deno.remove(imgA).catch(() => {});
  }
});

/** TCP port of the guest's provider is answered by nobody on 10.77.0.10-20 (a sweep from the namespace). */
async function anyoneAnswers(lan: GuestLan, port: number): Promise<string[]> {
  const answered: string[] = [];
  for (let i = 10; i <= 20; i++) {
    const addr = `10.77.0.${i}`;
    const r = await new Deno.Command("ip", {
      args: ["netns", "exec", lan.ns, "busybox", "nc", "-z", "-w", "2", addr, String(port)],
      stdout: "null",
      stderr: "null",
    }).output();
    if (r.code === 0) answered.push(addr);
  }
  return answered;
}

/** mDNS candidates seen from the namespace (discover, LAN step only, no probe). */
async function mdnsCandidates(lan: GuestLan): Promise<string[]> {
  const r = await new Deno.Command("ip", {
    args: [
      "netns",
      "exec",
      lan.ns,
      "deno",
      "run",
      "-q",
      "--no-prompt",
      "--no-remote",
      "-P=discover",
      "client/discover/main.ts",
      "--trust",
      `${KEYS}/trust.json`,
      "--arch",
      "amd64",
      "--order",
      "lan",
      "--no-probe",
      "--mdns-timeout",
      "5s",
      "--interface",
      "10.77.0.1",
      "--json",
    ],
    cwd: REPO,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(r.stdout).trim().split("\n").at(-1) ?? "";
  try {
    return (JSON.parse(text).candidates ?? []).map((c: { manifestUrl: string }) => c.manifestUrl);
  } catch {
    return [
      `(discover printed no result: ${text} ${new TextDecoder().decode(r.stderr).slice(-400)})`,
    ];
  }
}

Deno.test("TM-13 private-mode privacy: [vm self-host-private] a guest whose cache holds a verified release boots in private mode: nothing answers on its provider port, no mDNS announcement is seen", async () => {
  const lan = await GuestLan.bridged("selfhost-private", 1);
  const img = await vmCopy("selfhost-private");
  const entry = (t: string) =>
    t.replace(/ phase\.provider=\S+/, ` phase.provider=${LAN_PROVIDER_URL}`);
  await editEntry(img, "internet.conf", entry);
  await editEntry(img, "private.conf", entry);
  let a: Background | undefined;
  try {
    await lan.provider(ARTIFACTS, `${WORK}/selfhost-private-state`, ["--no-mdns"]);
    // First boot (internet): fills the cache, so a private boot would have something to serve.
    const first = await bootVm({
      image: img,
      timeoutMs: BOOT_TIMEOUT_MS * 2,
      until: UNTIL,
      watch: WATCH,
      persistent: true,
      wrap: lan.wrap,
      netArgs: lan.netArgsFor(0),
    });
    report("self-host-private (first boot, internet)", first);
    assertEquals(first.outcome, "target", tail(first));
    await setDefaultEntry(img, "private.conf");
    a = background({
      image: img,
      timeoutMs: SELFHOST_SERVE_TIMEOUT_MS,
      wrap: lan.wrap,
      netArgs: lan.netArgsFor(0),
    });
    await a.waitFor(new RegExp(TARGET_MARKER), SELFHOST_READY_TIMEOUT_MS);
    const line = await a.waitFor(new RegExp(SELFHOST_PRIVATE), SELFHOST_READY_TIMEOUT_MS);
    assert(line.includes("private mode"), "the target says it serves nothing");
    assert(a.lines.some((l) => l.text.includes("mode=private")), "booted in private mode");
    // Give a provider that would start the time one takes to be ready (A's
    // serving guest took well under this), then look from the LAN.
    await new Promise((r) => setTimeout(r, SELFHOST_PRIVATE_SETTLE_MS));
    assertEquals(
      await anyoneAnswers(lan, SELFHOST_PORT),
      [],
      "nothing answers on the provider port",
    );
    assertEquals(await mdnsCandidates(lan), [], "no mDNS announcement");
    const run = await a.stop();
    a = undefined;
    assert(!run.lines.some((l) => l.text.includes("phase-serve: ready")), "no provider started");
  } finally {
    await a?.stop();
    await lan.close();
    await Deno.remove(img).catch(() => {});
  }
});

// ---- [vm self-host-dht]: the same loop with mDNS blocked, B finding A through DHT provider records ----

/** Bound of the wait for the namespace's DHT bootstrap node to log its peer id. */
const DHT_NODE_READY_TIMEOUT_MS = 60_000;
/** TCP port of the namespace's DHT bootstrap node. */
const DHT_NODE_PORT = 4001;

/**
 * The DHT bootstrap node of a self-hosting LAN: a real `serve` on
 * 10.77.0.1 with the DHT on and an empty root (it serves and provides no
 * release, so B cannot boot from it), stable peer id in `state`. Resolves
 * with its multiaddr, from its `dht_started` log event.
 */
async function dhtNode(lan: GuestLan, state: string): Promise<string> {
  const root = `${WORK}/dht-node-root`;
  await Deno.mkdir(root, { recursive: true });
  const child = lan.spawn(
    lanServeArgv(root, state, 8081, [
      "--dht-port",
      String(DHT_NODE_PORT),
      "--no-mdns",
      "--no-watch",
    ]),
    { stdout: "null", stderr: "piped" },
  );
  const multiaddr = new RegExp(`"(/ip4/10\\.77\\.0\\.1/tcp/${DHT_NODE_PORT}/p2p/12D3Koo\\w+)"`);
  const { found, seen } = await readUntil(
    child.stderr,
    (s) => multiaddr.exec(s)?.[1],
    DHT_NODE_READY_TIMEOUT_MS,
  );
  assert(found, `the DHT node logged no multiaddr:\n${seen}`);
  return found;
}

/** nft rules of the LAN's bridge: UDP 5353 (mDNS) between the guests is dropped and counted. */
const NO_MDNS_RULES = `table bridge phase_no_mdns {
  chain forward {
    type filter hook forward priority 0; policy accept;
    udp dport 5353 counter drop
    udp sport 5353 counter drop
  }
}
`;

/** Packets the {@link NO_MDNS_RULES} dropped so far. */
async function mdnsDropped(lan: GuestLan): Promise<number> {
  const out = await new Deno.Command("ip", {
    args: ["netns", "exec", lan.ns, "nft", "list", "table", "bridge", "phase_no_mdns"],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assertEquals(out.code, 0, new TextDecoder().decode(out.stderr));
  return [...new TextDecoder().decode(out.stdout).matchAll(/counter packets (\d+)/g)]
    .reduce((n, m) => n + Number(m[1]), 0);
}

Deno.test("[vm self-host-dht] with mDNS dropped between the guests (nft), guest B finds A through DHT provider records (a DHT bootstrap node in the namespace) and boots the same release from it", async () => {
  const lan = await GuestLan.bridged("selfhost-dht", 2);
  const imgB = `${WORK}/selfhost-dht-b.img`;
  let a: Background | undefined;
  let imgA: string | undefined;
  try {
    const nft = await new Deno.Command("ip", {
      args: ["netns", "exec", lan.ns, "nft", "-f", "-"],
      stdin: "piped",
      stderr: "piped",
    }).spawn();
    const w = nft.stdin.getWriter();
    await w.write(new TextEncoder().encode(NO_MDNS_RULES));
    await w.close();
    const nftOut = await nft.output();
    assertEquals(nftOut.code, 0, new TextDecoder().decode(nftOut.stderr));
    const bootstrap = await dhtNode(lan, `${WORK}/selfhost-dht-node`);
    // The release's signed command line names the bootstrap node: the
    // target's provider joins the DHT and provides the manifest CID.
    const out = `${WORK}/dht-out`;
    const artifacts = `${WORK}/dht-artifacts`;
    await buildImage(out, artifacts, PROVIDER_URL, "amd64", [
      "--node-allow",
      SUBMITTER,
      "--target-bootstrap",
      bootstrap,
    ]);
    await Deno.copyFile(`${out}/phase-amd64.img`, imgB);
    // B: no manual URL, the bootstrap node on its command line (mDNS finds nothing: dropped).
    await editEntry(
      imgB,
      "internet.conf",
      (t) => t.replace(/ phase\.provider=\S+/, ` phase.bootstrap=${bootstrap}`),
    );
    const host = await lan.provider(artifacts, `${WORK}/selfhost-dht-state`, ["--no-mdns"]);
    const t0 = performance.now();
    const served = await servingGuest(lan, "selfhost-dht-a", "amd64", `${out}/phase-amd64.img`);
    a = served.a;
    imgA = served.img;
    assert(
      a.lines.some((l) => /DHT on\)/.test(l.text)),
      "A's provider started with the DHT on (phase.bootstrap= signed)",
    );
    // A announced itself as a provider of the manifest CID and published the signed record.
    // (The console shows the provider's log as `phase-serve: info: <event> k=v`.)
    // Reached a peer (the bootstrap node), not only A's own store: a
    // publication that reached none is made again (provider/advertise.ts).
    await a.waitFor(/phase-serve: info: dht_provided .*peers=[1-9]/, SELFHOST_READY_TIMEOUT_MS);
    await a.waitFor(
      /phase-serve: info: dht_published .*accepted=[1-9]\d* .*provided=[1-9]/,
      SELFHOST_READY_TIMEOUT_MS,
    );
    for (const l of a.lines.filter((l) => /dht_(published|provided|publish_retry)/.test(l.text))) {
      console.log(`vm-plan: self-host-dht: A: ${l.text}`);
    }
    console.log(
      `vm-plan: self-host-dht: A serving at ${served.url}, in the DHT after ${
        ((performance.now() - t0) / 1000).toFixed(1)
      } s`,
    );
    host.kill("SIGTERM");
    await host.status;
    const dropped0 = await mdnsDropped(lan);
    const run = await bootVm({
      image: imgB,
      timeoutMs: BOOT_TIMEOUT_MS * 2,
      until: UNTIL,
      watch: WATCH,
      wrap: lan.wrap,
      netArgs: lan.netArgsFor(1),
    });
    report("self-host-dht (B)", run);
    assertEquals(run.outcome, "target", tail(run));
    // B's console names A as the source, found through the DHT.
    assert(
      run.lines.some((l) =>
        l.text.includes(`using ${served.url}/`) && /phase-boot: discover: .*\(dht\)/.test(l.text)
      ),
      `B names A (${served.url}) as its source, found through the DHT\n` + tail(run),
    );
    assert(run.lines.some((l) => l.text.includes("phase-wasm: hello: dlroW ,olleH")), tail(run));
    // mDNS was on the wire and dropped: A announced, B asked; neither got through.
    const dropped = await mdnsDropped(lan);
    assert(dropped > dropped0, `nft dropped mDNS while B discovered (${dropped0} -> ${dropped})`);
    const aRun = await a.stop();
    a = undefined;
    const aText = aRun.lines.map((l) => l.text);
    assert(
      aText.some((t) => /\baccess\b/.test(t) && /kernel|initramfs|cas\/sha256|ipfs/.test(t)),
      "A served artifacts to B\n" +
        aText.filter((t) => t.includes("phase-serve") || t.includes("{")).slice(-20).join("\n"),
    );
    console.log(`vm-plan: self-host-dht: nft dropped ${dropped} mDNS packet(s)`);
  } finally {
    await a?.stop();
    await lan.close();
    await Deno.remove(imgB).catch(() => {});
    if (imgA) await Deno.remove(imgA).catch(() => {});
  }
});
