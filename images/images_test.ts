import { EXIT_STATUS } from "../core/mod.ts";
import { assert, assertEquals } from "../testing/mod.ts";
import { permissionSet, resolveScope } from "../cli/mod.ts";
import { launcherScript, permissionFlags, seedRunArgs } from "./launcher.ts";
import { derivedUuid, diskDescriptor } from "./build.ts";
import { imagesTaskArgs } from "./task.ts";
import { SEED_TASKS, SEED_V8_FLAGS, seedPolicy, STEP_V8_FLAGS, targetNodeConfig } from "./_seed.ts";
import { TARGET_MARKER, TARGET_NODE_CONFIG, targetInit } from "./_files.ts";
import {
  type BootMode,
  findUstarMember,
  GRUB_BOOT_MARKER,
  grubCfg,
  parseGrubCfg,
  ustar,
} from "./_grub.ts";

const REPO = new URL("..", import.meta.url).pathname;
/** Bound of one image build (Deno bundling on a busy machine). */
const BUILD_TIMEOUT_MS = 300_000;

async function tmpDir(prefix: string): Promise<string> {
  await Deno.mkdir("/tmp/phase", { recursive: true });
  return await Deno.makeTempDir({ dir: "/tmp/phase", prefix });
}

/** Reads one file from the ESP partition of a GPT disk image (sfdisk + mtools). */
async function espFile(img: string, path: string): Promise<Uint8Array> {
  const j = await new Deno.Command("sfdisk", { args: ["--json", img], stdout: "piped" }).output();
  const parts = JSON.parse(new TextDecoder().decode(j.stdout)).partitiontable.partitions as {
    name?: string;
    start: number;
  }[];
  const esp = parts.find((p) => p.name === "phase-esp");
  assert(esp, "no phase-esp partition");
  const r = await new Deno.Command("mtype", {
    args: ["-i", `${img}@@${esp.start * 512}`, `::${path}`],
    env: { MTOOLS_SKIP_CHECK: "1" },
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(30_000),
  }).output();
  assertEquals(r.code, 0, `${path}: ${new TextDecoder().decode(r.stderr)}`);
  return r.stdout;
}

/** Parses a systemd-boot loader entry (key value lines). */
function loaderKeys(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split("\n")) {
    const m = /^(\S+)\s+(.*)$/.exec(line.trim());
    if (m) out[m[1]] = m[2];
  }
  return out;
}

/**
 * The GRUB fallback of a built image boots exactly what the systemd-boot
 * entries boot: the grub.cfg embedded in the EFI binary's memdisk, read back
 * from the image, has one entry per loader entry with the same kernel,
 * initramfs and command line; grub.conf chainloads that binary.
 */
async function checkGrubFallback(img: string, efi: string): Promise<void> {
  const grub = loaderKeys(
    new TextDecoder().decode(await espFile(img, "/loader/entries/grub.conf")),
  );
  assertEquals(grub.efi, `/EFI/phase/${efi}`);
  const binary = await espFile(img, grub.efi);
  assert(binary.length > 100_000 && binary[0] === 0x4d && binary[1] === 0x5a, "a PE/EFI binary");
  const cfgBytes = findUstarMember(binary, "boot/grub/grub.cfg");
  assert(cfgBytes, "grub.cfg embedded in the memdisk");
  const cfgText = new TextDecoder().decode(cfgBytes);
  const cfg = parseGrubCfg(cfgText);
  assertEquals(cfg.default, "internet");
  assertEquals(cfg.entries.map((e) => e.id), ["internet", "local", "private"]);
  for (const e of cfg.entries) {
    const entry = loaderKeys(
      new TextDecoder().decode(await espFile(img, `/loader/entries/${e.id}.conf`)),
    );
    assertEquals(
      { title: e.title, linux: e.linux, initrd: e.initrd, options: e.options },
      { title: entry.title, linux: entry.linux, initrd: entry.initrd, options: entry.options },
      `GRUB entry ${e.id} differs from loader entry ${e.id}.conf`,
    );
    assert(e.options.includes(`phase.mode=${e.id}`), e.options);
    // The kernel and initramfs it names are on the ESP.
    assert((await espFile(img, e.linux)).length > 0);
    assert((await espFile(img, e.initrd)).length > 0);
  }
  // Editor and shell locked, entries still bootable.
  assert(/^set superusers=/m.test(cfgText) && cfgText.includes("--unrestricted"), cfgText);
}

/**
 * Two image builds are byte-identical: the same SHA256SUMS, and every file
 * it lists equal. Returns SHA256SUMS.
 */
async function assertSameBuild(a: string, b: string): Promise<string> {
  const sums = await Deno.readTextFile(`${a}/SHA256SUMS`);
  assertEquals(await Deno.readTextFile(`${b}/SHA256SUMS`), sums);
  for (const line of sums.trim().split("\n")) {
    const name = line.slice(66);
    assertEquals(await Deno.readFile(`${b}/${name}`), await Deno.readFile(`${a}/${name}`), name);
  }
  return sums;
}

Deno.test("launcher flags carry exactly the deno.json set, with imports denied", () => {
  const set = permissionSet("kexec");
  const flags = permissionFlags(set, "/usr/lib/phase");
  assert(flags.includes("--allow-run=/sbin/kexec,/usr/sbin/kexec,/sbin/reboot"), flags.join(" "));
  // Relative scopes of the set resolve under the install prefix, in the set's order.
  const read = (set.read as readonly string[]).map((e) => resolveScope(e, "/usr/lib/phase"));
  assert(read.includes("/usr/lib/phase/.cache") && read.includes("/var/cache/phase"), read.join());
  assert(flags.includes(`--allow-read=${read.join(",")}`), flags.join(" "));
  assert(!flags.some((f) => f.startsWith("--allow-net")), "kexec has no network");
  assert(flags.some((f) => f.startsWith("--deny-import=jsr.io:443")));
  const script = launcherScript({
    name: "phase-kexec",
    set: "kexec",
    permissions: permissionSet("kexec"),
    bundle: "kexec/kexec.js",
  });
  assert(script.startsWith("#!/bin/sh\n"));
  assert(
    script.includes("--no-prompt") && script.includes("--no-remote") &&
      script.includes(' /usr/lib/phase/kexec/kexec.js "$@"'),
  );
});

Deno.test("launcher: a seed step's V8 flags reach V8 and keep WebAssembly; the chain runs without JavaScript tiers, the target's services with V8's defaults (issue 17)", async () => {
  for (const t of SEED_TASKS) {
    const service = t === "serve" || t === "node";
    assertEquals(SEED_V8_FLAGS[t], service ? undefined : STEP_V8_FLAGS, t);
  }
  assertEquals(seedRunArgs().some((a) => a.startsWith("--v8-flags")), false);
  const dir = await tmpDir("launcher-v8-");
  try {
    await Deno.symlink(Deno.execPath(), `${dir}/deno`);
    await Deno.mkdir(`${dir}/verify`);
    // A header-only WebAssembly module: compiling it needs V8's code generation.
    await Deno.writeTextFile(
      `${dir}/verify/probe.js`,
      `let w = "wasm";
try { new WebAssembly.Module(new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0])); } catch { w = "no-wasm"; }
console.log(w);
`,
    );
    const run = async (v8Flags?: string) => {
      const path = `${dir}/launcher-${v8Flags ?? "default"}`;
      await Deno.writeTextFile(
        path,
        launcherScript({
          name: "phase-verify",
          set: "verify",
          permissions: permissionSet("verify"),
          bundle: "verify/probe.js",
          root: dir,
          denoDir: `${dir}/deno-dir`,
          ...(v8Flags ? { v8Flags } : {}),
        }),
      );
      const r = await new Deno.Command("sh", { args: [path], stdout: "piped", stderr: "piped" })
        .output();
      const err = new TextDecoder().decode(r.stderr);
      // V8 names a flag it does not know on stderr.
      assert(r.success && err === "", err);
      return new TextDecoder().decode(r.stdout).trim();
    };
    // The plumbing: a flag V8 visibly honours takes effect.
    assertEquals(await run("--jitless"), "no-wasm");
    // The seed's flags are known to V8 and leave discover and the job their WebAssembly.
    assertEquals(await run(STEP_V8_FLAGS), "wasm");
    assertEquals(await run(undefined), "wasm");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("TM-22 hostile job submitter: the target's node: no node unless the policy names submitters or unsafe_node_open; the config carries exactly the policy's keys", () => {
  // Default policy: no node config on the seed, so the target starts no listener.
  assertEquals(targetNodeConfig(seedPolicy("stable", false)), undefined);
  assert(!seedPolicy("stable", false).includes("node"), "default policy text unchanged");
  const k = "ed25519:" + "cd".repeat(32);
  const text = seedPolicy("stable", false, { accept: [k], unsafeOpen: false });
  assert(text.includes(`node_accept_jobs = ["${k}"]`), text);
  assertEquals(JSON.parse(targetNodeConfig(text)!), { allow: [k], open: false });
  assertEquals(
    JSON.parse(targetNodeConfig(seedPolicy("stable", false, { accept: [], unsafeOpen: true }))!),
    { allow: [], open: true },
  );
  // The target's init: the node block runs after the marker, only with the
  // config, never in private mode, warns when open, keeps its state on tmpfs.
  const init = targetInit("2026.1.1");
  const marker = init.indexOf(TARGET_MARKER);
  const block = init.indexOf("# --- Plasm node");
  assert(marker > 0 && block > marker, "node block after the marker");
  assert(init.includes(`[ ! -r /usr/lib/phase/${TARGET_NODE_CONFIG} ]`), init);
  assert(init.includes(`if [ "$mode" = private ]; then`), init);
  assert(init.includes("WARNING: unsafe_node_open"), init);
  assert(init.includes("mount -t tmpfs -o mode=0700"), init);
  assert(
    /phase-node --state \/var\/lib\/phase\/node --config \/etc\/phase\/node\.json --listen/.test(
      init,
    ),
  );
});

Deno.test("derived ids are stable RFC 4122 v4-shaped UUIDs", () => {
  assertEquals(derivedUuid("amd64:disk"), derivedUuid("amd64:disk"));
  assert(
    /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/.test(derivedUuid("x")),
  );
  assert(
    diskDescriptor(1024 * 1024, "d.hds", derivedUuid("p")).includes("<Disk_size>2048</Disk_size>"),
  );
});

Deno.test("GRUB config: each mode's menu entry carries the loader entry's kernel, initramfs and command line", () => {
  const modes: BootMode[] = ["internet", "local", "private"].map((m) => ({
    id: m,
    title: `Phase seed (${m})`,
    options: `console=ttyS0 phase.mode=${m} phase.provider=http://10.0.2.100/a?b=c&d='e' x;y`,
  }));
  const text = grubCfg(modes, "internet", "1a2b-3c4d", {
    linux: "/phase/linux",
    initrd: "/phase/initrd",
  });
  const cfg = parseGrubCfg(text);
  assertEquals(cfg.default, "internet");
  assertEquals(
    cfg.entries,
    modes.map((m) => ({
      id: m.id,
      title: m.title,
      linux: "/phase/linux",
      initrd: "/phase/initrd",
      options: m.options,
    })),
  );
  assert(text.includes("search --no-floppy --fs-uuid --set=root 1a2b-3c4d"), text);
  assert(text.includes(`echo '${GRUB_BOOT_MARKER} local'`), text);
  // Shell metacharacters never reach GRUB's parser unquoted.
  assert(text.includes(`'phase.provider=http://10.0.2.100/a?b=c&d='\\''e'\\'''`), text);
  assert(text.includes(" 'x;y'"), text);
});

Deno.test("GRUB memdisk: the ustar archive lists with GNU tar at the epoch, owner 0:0", async () => {
  const dir = await tmpDir("grub-tar-");
  try {
    const cfg = new TextEncoder().encode("set timeout=3\n");
    const tar = ustar([["boot/grub/grub.cfg", cfg]], 1767225600);
    assertEquals(tar.length % 512, 0);
    await Deno.writeFile(`${dir}/m.tar`, tar);
    const r = await new Deno.Command("tar", {
      args: ["--numeric-owner", "--utc", "-tvf", `${dir}/m.tar`],
      env: { TZ: "UTC", LC_ALL: "C" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    assertEquals(r.code, 0, new TextDecoder().decode(r.stderr));
    assertEquals(
      new TextDecoder().decode(r.stdout).trim().split(/\s+/).join(" "),
      "-rw-r--r-- 0/0 14 2026-01-01 00:00 boot/grub/grub.cfg",
    );
    assertEquals(findUstarMember(new Uint8Array([1, 2, ...tar, 3]), "boot/grub/grub.cfg"), cfg);
    assertEquals(findUstarMember(tar, "boot/grub/other.cfg"), undefined);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test({
  name: "deno task images: two builds are byte-identical (reproducible, rootless paths)",
  sanitizeResources: true,
  async fn() {
    const dir = await tmpDir("images-test-");
    const repo = REPO;
    try {
      const build = async (out: string) => {
        const r = await new Deno.Command("deno", {
          args: imagesTaskArgs({
            arch: "amd64",
            out,
            keys: `${dir}/keys`,
            extra: ["--no-release"],
          }),
          cwd: repo,
          stdout: "piped",
          stderr: "piped",
          signal: AbortSignal.timeout(BUILD_TIMEOUT_MS),
        }).output();
        assertEquals(r.code, 0, new TextDecoder().decode(r.stderr).slice(-2000));
      };
      await build(`${dir}/a`);
      await build(`${dir}/b`);
      const sums = await assertSameBuild(`${dir}/a`, `${dir}/b`);
      for (
        const want of [
          "phase-amd64.img",
          "phase-amd64.qcow2",
          "phase-amd64-seed.squashfs",
          "phase-amd64-seed.initramfs",
          "phase-amd64.hdd/DiskDescriptor.xml",
        ]
      ) {
        assert(sums.includes(`  ${want}\n`), `${want} missing from SHA256SUMS`);
      }
      // The GPT names the seed looks for are on the disk.
      const table = new TextDecoder().decode(
        (await new Deno.Command("sfdisk", {
          args: ["--dump", `${dir}/a/phase-amd64.img`],
          stdout: "piped",
        }).output()).stdout,
      );
      for (const n of ["phase-esp", "phase-seed", "phase-cache"]) {
        assert(table.includes(`name="${n}"`), table);
      }
      // The GRUB fallback on the ESP boots what the loader entries boot.
      await checkGrubFallback(`${dir}/a/phase-amd64.img`, "grubx64.efi");
      // The QCOW2 and Parallels conversions hold exactly the raw disk.
      const hds = sums.split("\n").map((l) => l.slice(66)).find((n) => n.endsWith(".hds"))!;
      for (const [fmt, file] of [["qcow2", "phase-amd64.qcow2"], ["parallels", hds]]) {
        const cmp = await new Deno.Command("qemu-img", {
          args: ["compare", "-f", "raw", "-F", fmt, `${dir}/a/phase-amd64.img`, `${dir}/a/${file}`],
          stdout: "piped",
        }).output();
        assertEquals(cmp.code, 0, `${file} differs from the raw image`);
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

const SNAKEOIL_PEM = "/usr/share/ovmf/PkKek-1-snakeoil.pem";
const SNAKEOIL_KEY = "/usr/share/ovmf/PkKek-1-snakeoil.key";
/** Bound of one sbverify or mtools run. */
const TOOL_TIMEOUT_MS = 30_000;

async function output(cmd: string, args: string[], env: Record<string, string> = {}) {
  const r = await new Deno.Command(cmd, {
    args,
    env,
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(TOOL_TIMEOUT_MS),
  }).output();
  return {
    code: r.code,
    text: new TextDecoder().decode(r.stdout) + new TextDecoder().decode(r.stderr),
  };
}

Deno.test({
  name:
    "TM-21 physical access to the boot medium: two Secure Boot builds are byte-identical; every EFI binary on the ESP verifies against the db certificate, and the ESP holds no bare kernel and no GRUB",
  sanitizeResources: true,
  async fn() {
    const dir = await tmpDir("images-sb-test-");
    try {
      // Debian's snakeoil pair, decrypted (sbsign cannot prompt for its passphrase).
      const dec = await output("openssl", [
        "pkey",
        "-in",
        SNAKEOIL_KEY,
        "-passin",
        "pass:snakeoil",
        "-out",
        `${dir}/db.key`,
      ]);
      assertEquals(dec.code, 0, dec.text);
      const build = async (out: string) => {
        const r = await new Deno.Command("deno", {
          args: imagesTaskArgs({
            arch: "amd64",
            out,
            keys: `${dir}/keys`,
            extra: [
              "--no-release",
              "--secure-boot",
              "--db-key",
              `${dir}/db.key`,
              "--db-cert",
              SNAKEOIL_PEM,
              "--unsafe-test-key",
            ],
          }),
          cwd: REPO,
          stdout: "piped",
          stderr: "piped",
          signal: AbortSignal.timeout(BUILD_TIMEOUT_MS),
        }).output();
        const err = new TextDecoder().decode(r.stderr);
        assertEquals(r.code, 0, err.slice(-2000));
        assert(
          /UNSAFE: signing with Debian's PUBLIC snakeoil test key/.test(err),
          err.slice(-2000),
        );
      };
      await build(`${dir}/a`);
      await build(`${dir}/b`);
      await assertSameBuild(`${dir}/a`, `${dir}/b`);
      const img = `${dir}/a/phase-amd64.img`;
      const j = await output("sfdisk", ["--json", img]);
      const esp = JSON.parse(j.text).partitiontable.partitions.find((p: { name?: string }) =>
        p.name === "phase-esp"
      );
      const env = { MTOOLS_SKIP_CHECK: "1" };
      const list = await output(
        "mdir",
        ["-/", "-b", "-i", `${img}@@${esp.start * 512}`, "::/"],
        env,
      );
      assertEquals(list.code, 0, list.text);
      const files = list.text.split("\n").map((l) => l.trim()).filter((l) => l && !l.endsWith("/"));
      assert(!files.some((f) => /grub|\/phase\/(linux|initrd)$/i.test(f)), files.join("\n"));
      const efis = files.filter((f) => /\.efi$/i.test(f));
      assertEquals(
        efis.map((f) => f.replace(/^::/, "")).sort(),
        [
          "/EFI/BOOT/BOOTX64.EFI",
          "/phase/seed-internet.efi",
          "/phase/seed-local.efi",
          "/phase/seed-private.efi",
        ],
      );
      for (const f of efis) {
        const local = `${dir}/check.efi`;
        await Deno.remove(local).catch(() => {});
        const get = await output("mcopy", ["-i", `${img}@@${esp.start * 512}`, f, local], env);
        assertEquals(get.code, 0, get.text);
        const v = await output("sbverify", ["--cert", SNAKEOIL_PEM, local]);
        assertEquals(v.code, 0, `${f}: ${v.text}`);
      }
      // The loader entries start the signed UKIs, whose command lines carry the verity root hash.
      const entry = new TextDecoder().decode(await espFile(img, "/loader/entries/internet.conf"));
      assertEquals(loaderKeys(entry).efi, "/phase/seed-internet.efi");
      assert(!("options" in loaderKeys(entry)), entry);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

/** arm64 inputs from images/fetch_arm64.sh; the test is skipped (and says why) without them. */
const ARM64_SYSROOT = Deno.env.get("PHASE_ARM64_SYSROOT") ?? `${REPO}.cache/arm64/root`;
const ARM64_DENO = Deno.env.get("PHASE_ARM64_DENO") ?? `${REPO}.cache/arm64/deno/package/deno`;
const ARM64_MISSING = await (async () => {
  for (
    const p of [
      `${ARM64_SYSROOT}/sbin/kexec`,
      `${ARM64_SYSROOT}/usr/lib/grub/arm64-efi`,
      ARM64_DENO,
    ]
  ) {
    try {
      await Deno.stat(p);
    } catch {
      return `${p} is missing: run images/fetch_arm64.sh`;
    }
  }
  return "";
})();

Deno.test({
  name: `deno task images --arch arm64: two builds are byte-identical${
    ARM64_MISSING ? ` [SKIPPED: ${ARM64_MISSING}]` : ""
  }`,
  ignore: ARM64_MISSING !== "",
  async fn() {
    const dir = await tmpDir("images-arm64-test-");
    try {
      const build = async (out: string) => {
        const r = await new Deno.Command("deno", {
          args: imagesTaskArgs({
            arch: "arm64",
            out,
            keys: `${dir}/keys`,
            extra: ["--sysroot", ARM64_SYSROOT, "--deno", ARM64_DENO, "--no-release"],
          }),
          cwd: REPO,
          stdout: "piped",
          stderr: "piped",
          signal: AbortSignal.timeout(BUILD_TIMEOUT_MS),
        }).output();
        assertEquals(r.code, 0, new TextDecoder().decode(r.stderr).slice(-2000));
      };
      await build(`${dir}/a`);
      await build(`${dir}/b`);
      const sums = await assertSameBuild(`${dir}/a`, `${dir}/b`);
      const names = sums.trim().split("\n").map((l) => l.slice(66));
      for (
        const want of [
          "phase-arm64.img",
          "phase-arm64.qcow2",
          "phase-arm64-seed.squashfs",
          "phase-arm64-seed.initramfs",
        ]
      ) {
        assert(names.includes(want), `${want} missing from SHA256SUMS`);
      }
      await checkGrubFallback(`${dir}/a/phase-arm64.img`, "grubaa64.efi");
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

/**
 * Runs `deno task images --out DIR/out ARGS` and checks that it is refused
 * with E_USAGE, that stderr says each of `says`, and that nothing was built.
 */
async function imagesRefuses(dir: string, args: string[], says: string[]): Promise<void> {
  const r = await new Deno.Command("deno", {
    args: ["task", "-q", "images", "--out", `${dir}/out`, ...args],
    cwd: REPO,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const err = new TextDecoder().decode(r.stderr);
  assertEquals(r.code, EXIT_STATUS.E_USAGE, err);
  for (const s of says) assert(err.includes(s), err);
  await Deno.stat(`${dir}/out`).then(
    () => assert(false, "an output directory was created"),
    (e) => assert(e instanceof Deno.errors.NotFound),
  );
}

Deno.test("deno task images --torrc: a fragment that sets a port or the data directory is refused before anything is built", async () => {
  const dir = await tmpDir("images-torrc-test-");
  try {
    await Deno.writeTextFile(`${dir}/torrc`, "UseBridges 1\nControlPort 9051\n");
    await imagesRefuses(dir, ["--with-tor", "--torrc", `${dir}/torrc`], [
      "line 2: 'controlport' is set by Phase",
    ]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("deno task images --node-allow: a value that is not a keyid is refused before anything is built", async () => {
  const dir = await tmpDir("images-node-test-");
  try {
    await imagesRefuses(dir, ["--node-allow", "alice"], [
      "--node-allow takes a keyid ed25519:<64 hex>, got 'alice'",
      "hint: 'deno task job key' prints a submitter's keyid",
    ]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("deno task images --target-bootstrap: a value that is not one multiaddr word (a comma, a space) is refused before anything is built", async () => {
  const dir = await tmpDir("images-bootstrap-test-");
  try {
    for (const bad of ["/ip4/10.0.0.1/tcp/4001,/ip4/10.0.0.2/tcp/4001", "/ip4/1.2.3.4 x", "a"]) {
      await imagesRefuses(dir, ["--target-bootstrap", bad], [
        "--target-bootstrap takes a multiaddr",
        "hint: a DHT node's multiaddr",
      ]);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
