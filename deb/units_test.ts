/**
 * Fast checks of the package's parts: the runtime pin, the unit against
 * its set (audit), systemd's own rating and verification of the unit, and
 * the launcher audit on a tampered tree. The real install runs in
 * deb/deb_test.ts (`deno task test:deb`).
 */
import { assert, assertEquals, assertRejectsCode, tempDir } from "../testing/mod.ts";
import { auditLaunchers, auditUnit, readLauncher } from "../audit/mod.ts";
import { launcherScript, NO_DENO_DIR } from "../images/mod.ts";
import { permissionSet } from "../cli/mod.ts";
import {
  DebError,
  DENO_RUNTIME,
  integrityOf,
  LIB_ROOT,
  NODE_UNIT,
  PROVIDER_UNIT,
  READINESS_CHECKS,
  tarballName,
  UNITS,
  UNITS_SOURCE,
  verifiedRuntime,
} from "./mod.ts";

const repo = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
const unitText = (unit: string = PROVIDER_UNIT) =>
  Deno.readTextFileSync(`${repo}/${UNITS_SOURCE}/${unit}`);
/** The exposure the issue asks for (systemd-analyze's "OK" band). */
const MAX_EXPOSURE = 2.0;
/** Longest one systemd-analyze run may take, in ms. */
const ANALYZE_TIMEOUT_MS = 60_000;

Deno.test("runtime: a tarball that is not the pinned one is refused (E_DIGEST), a missing one is E_INPUT", async () => {
  const dir = await tempDir("deb-runtime");
  await assertRejectsCode(() => verifiedRuntime(dir, "amd64"), DebError, "E_INPUT");
  await Deno.writeFile(`${dir}/${tarballName(DENO_RUNTIME.amd64)}`, new Uint8Array([1, 2, 3]));
  await assertRejectsCode(() => verifiedRuntime(dir, "amd64"), DebError, "E_DIGEST");
  assertEquals(
    integrityOf(new TextEncoder().encode("abc")),
    "sha512-3a81oZNherrMQXNJriBBMRLm+k6JqX6iCp7u5ktV05ohkpkqJ0/BqDa6PCOj/uu9RU1EI2Q86A4qmslPpUyknw==",
  );
  await Deno.remove(dir, { recursive: true });
});

Deno.test("runtime: deb/fetch_runtime.sh fetches exactly the pinned version of both architectures", () => {
  const script = Deno.readTextFileSync(`${repo}/deb/fetch_runtime.sh`);
  for (const pin of Object.values(DENO_RUNTIME)) {
    assert(script.includes(`VERSION=${pin.version}`), `fetch_runtime.sh is not at ${pin.version}`);
    assert(script.includes(pin.npm.split("/")[1]), `fetch_runtime.sh does not fetch ${pin.npm}`);
  }
});

Deno.test("unit: phase-provider.service's writable directories agree with the 'serve' set", () => {
  assertEquals(auditUnit(PROVIDER_UNIT, unitText()), []);
});

Deno.test("unit: phase-node.service's writable directories agree with the 'node' set", () => {
  assertEquals(auditUnit(NODE_UNIT, unitText(NODE_UNIT)), []);
});

Deno.test("unit: phase-node.service: the node's state only, closed, on loopback by default", () => {
  const node = unitText(NODE_UNIT);
  // The provider's whole /var/lib/phase (its key) is not the node's to write.
  const whole = auditUnit(
    NODE_UNIT,
    node.replace("StateDirectory=phase/node", "StateDirectory=phase"),
  );
  assert(
    whole.some((f) => f.detail.includes("makes /var/lib/phase writable")),
    JSON.stringify(whole),
  );
  const noState = auditUnit(
    NODE_UNIT,
    node.replace(/^StateDirectory=.*$/m, "").replace(/^BindPaths=.*$/m, ""),
  );
  assert(noState.some((f) => f.detail.includes("/var/lib/phase/node")), JSON.stringify(noState));
  const run = auditUnit(NODE_UNIT, node.replace("[Service]", "[Service]\nRuntimeDirectory=phase"));
  assert(run.some((f) => f.detail.includes("/run/phase")), JSON.stringify(run));
  const noTmp = auditUnit(NODE_UNIT, node.replace(/^PrivateTmp=.*$/m, ""));
  assert(noTmp.some((f) => f.detail.includes("/tmp/phase")), JSON.stringify(noTmp));
  const elsewhere = auditUnit(
    NODE_UNIT,
    node.replace("--state /var/lib/phase/node", "--state /srv/x"),
  );
  assert(elsewhere.some((f) => f.detail.includes("--state /srv/x")), JSON.stringify(elsewhere));
  // A bind mount or a writable tmpfs makes a path writable too.
  const bind = auditUnit(
    NODE_UNIT,
    node.replace("BindPaths=/var/lib/phase/node", "BindPaths=/srv/x"),
  );
  assert(bind.some((f) => f.detail.includes("makes /srv/x writable")), JSON.stringify(bind));
  const rw = auditUnit(
    NODE_UNIT,
    node.replace("TemporaryFileSystem=/var/lib/phase:ro", "TemporaryFileSystem=/var/lib/phase"),
  );
  assert(rw.some((f) => f.detail.includes("makes /var/lib/phase writable")), JSON.stringify(rw));
  // The configuration: loopback, a fixed port, no --open.
  const env = Deno.readTextFileSync(`${repo}/${UNITS_SOURCE}/node.env`);
  const setting = (k: string) => new RegExp(`^${k}=(.*)$`, "m").exec(env)?.[1];
  assertEquals(setting("PHASE_NODE_LISTEN"), "/ip4/127.0.0.1/tcp/4101");
  assertEquals(setting("PHASE_NODE_FLAGS"), "");
  assert(!/--open/.test(node), "the unit opens the node");
});

Deno.test("unit: a directory the set cannot write, or a set path left read-only, is a finding", () => {
  // A directory the set does not write, made writable by the unit.
  const logs = auditUnit(
    PROVIDER_UNIT,
    unitText().replace("[Service]", "[Service]\nLogsDirectory=phase"),
  );
  assert(logs.some((f) => f.detail.includes("/var/log/phase")), JSON.stringify(logs));
  // A path the set writes (serve --mirror's cache), left read-only by the unit.
  const noCache = auditUnit(PROVIDER_UNIT, unitText().replace(/^CacheDirectory=.*$/m, ""));
  assert(noCache.some((f) => f.detail.includes("/var/cache/phase")), JSON.stringify(noCache));
  const noState = auditUnit(PROVIDER_UNIT, unitText().replace(/^StateDirectory=.*$/m, ""));
  assert(noState.some((f) => f.detail.includes("/var/lib/phase")), JSON.stringify(noState));
  const noTmp = auditUnit(PROVIDER_UNIT, unitText().replace(/^PrivateTmp=.*$/m, ""));
  assert(noTmp.some((f) => f.detail.includes("/tmp/phase")), JSON.stringify(noTmp));
  const root = auditUnit(PROVIDER_UNIT, unitText().replace("--root /srv/phase", "--root /home/x"));
  assert(root.some((f) => f.detail.includes("--root /home/x")), JSON.stringify(root));
});

async function analyze(args: string[]): Promise<{ code: number; out: string }> {
  const r = await new Deno.Command("systemd-analyze", {
    args,
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(ANALYZE_TIMEOUT_MS),
  }).output();
  const d = new TextDecoder();
  return { code: r.code, out: d.decode(r.stdout) + d.decode(r.stderr) };
}

/** A root with the units and stubs of what they run, for systemd-analyze --root. */
async function unitRoot(): Promise<string> {
  const root = await tempDir("deb-unit");
  const put = async (path: string, text: string, mode: number) => {
    await Deno.mkdir(`${root}${path.slice(0, path.lastIndexOf("/"))}`, { recursive: true });
    await Deno.writeTextFile(`${root}${path}`, text);
    await Deno.chmod(`${root}${path}`, mode);
  };
  // systemd-analyze verify resolves the unit's dependencies (sysinit.target, ...) in the root.
  await Deno.mkdir(`${root}/lib/systemd`, { recursive: true });
  const cp = await new Deno.Command("cp", {
    args: ["-a", "/lib/systemd/system", `${root}/lib/systemd/`],
  }).output();
  assert(cp.success, new TextDecoder().decode(cp.stderr));
  for (const unit of UNITS) await put(`/lib/systemd/system/${unit}`, unitText(unit), 0o644);
  await put("/usr/bin/phase-serve", "#!/bin/sh\n", 0o755);
  await put("/usr/bin/phase-node", "#!/bin/sh\n", 0o755);
  for (const check of READINESS_CHECKS) await put(`${LIB_ROOT}/${check}`, "#!/bin/sh\n", 0o755);
  for (const env of ["provider.env", "node.env"]) {
    await put(
      `/etc/phase/${env}`,
      await Deno.readTextFile(`${repo}/${UNITS_SOURCE}/${env}`),
      0o644,
    );
  }
  return root;
}

for (const name of UNITS) {
  Deno.test({
    name:
      `unit: systemd-analyze security --offline=yes rates ${name} at ${MAX_EXPOSURE} or lower; verify is clean`,
    ignore: !(await Deno.stat("/usr/bin/systemd-analyze").then(() => true, () => false)),
    fn: async () => {
      const root = await unitRoot();
      const unit = `${root}/lib/systemd/system/${name}`;
      const sec = await analyze(["security", "--offline=yes", `--root=${root}`, unit]);
      const m = /Overall exposure level for \S+: (\d+\.\d+)/.exec(sec.out);
      assert(m, sec.out);
      assert(Number(m[1]) <= MAX_EXPOSURE, `exposure ${m[1]} > ${MAX_EXPOSURE}:\n${sec.out}`);
      console.log(`${name}: exposure ${m[1]}`);
      const ver = await analyze(["verify", `--root=${root}`, unit]);
      // Messages about units the host itself ships are not ours.
      const ours = ver.out.split("\n").filter((l) => l.includes("phase"));
      assertEquals(ours, [], ver.out);
      await Deno.remove(root, { recursive: true });
    },
  });
}

Deno.test("TM-12 launchers: the audit reads a launcher's flags back and catches an extra grant and a compile cache another process could write", async () => {
  const tree = await tempDir("deb-tree");
  await Deno.mkdir(`${tree}/usr/bin`, { recursive: true });
  await Deno.mkdir(`${tree}${LIB_ROOT}/verify`, { recursive: true });
  await Deno.writeTextFile(`${tree}${LIB_ROOT}/verify/main.js`, "");
  const text = launcherScript({
    name: "phase-verify",
    set: "verify",
    permissions: permissionSet("verify"),
    bundle: "verify/main.js",
    root: LIB_ROOT,
    denoDir: NO_DENO_DIR,
  });
  const parsed = readLauncher(text);
  assert(parsed);
  assertEquals(parsed.embedded.allow_net, null);
  assertEquals(parsed.embedded.prompt, false);
  assertEquals(parsed.bundle, `${LIB_ROOT}/verify/main.js`);
  const only = [{ name: "phase-verify", set: "verify", entry: "verify/main.ts", args: [] }];
  await Deno.writeTextFile(`${tree}/usr/bin/phase-verify`, text);
  assertEquals(await auditLaunchers(tree, undefined, only), []);
  await Deno.writeTextFile(
    `${tree}/usr/bin/phase-verify`,
    text.replace("--no-prompt", "--no-prompt --allow-net"),
  );
  const f = await auditLaunchers(tree, undefined, only);
  assert(f.some((x) => x.detail.startsWith("net:")), JSON.stringify(f));
  // TM-12: a compile cache in a directory a set writes (the provider's
  // /run/phase) is code another process planted: a finding.
  await Deno.writeTextFile(
    `${tree}/usr/bin/phase-verify`,
    text.replace(`DENO_DIR=${NO_DENO_DIR}`, "DENO_DIR=/run/phase/deno"),
  );
  const shared = await auditLaunchers(tree, undefined, only);
  assert(
    shared.some((x) => x.detail.startsWith("DENO_DIR is /run/phase/deno")),
    JSON.stringify(shared),
  );
  await Deno.writeTextFile(`${tree}/usr/bin/phase-extra`, text);
  assert(
    (await auditLaunchers(tree, undefined, only)).some((x) => x.where === "/usr/bin/phase-extra"),
  );
  await Deno.remove(tree, { recursive: true });
});
