import { EXIT_STATUS } from "../core/mod.ts";
import { deepStrictEqual as assertEquals, ok } from "node:assert/strict";
import {
  configDir,
  DEFAULT_IMPORT_HOSTS,
  normaliseSet,
  permissionTable,
  rawTable,
} from "../cli/mod.ts";
import { compareEmbedded, readEmbeddedPermissions } from "./compiled.ts";
import { dynamicFindings, probe } from "./dynamic.ts";
import { binaries, entrypointTasks, isDevTask } from "./entrypoints.ts";
import { auditDenoSpawns, auditImports, sourceFiles } from "./source.ts";
import {
  auditBaseline,
  auditTable,
  auditTasks,
  readBaseline,
  runsDeno,
  tableDigest,
} from "./static.ts";

const REPO = configDir();
const DENY = { deny: [...DEFAULT_IMPORT_HOSTS] };

Deno.test("TM-12 compromised component: the permission table and tasks obey every static rule", async () => {
  const files = await sourceFiles(REPO);
  const findings = [
    ...auditTable(),
    ...auditTasks(entrypointTasks()),
    ...auditBaseline(rawTable(), await readBaseline(REPO)),
    ...auditImports(files),
    ...auditDenoSpawns(files),
  ];
  assertEquals(findings, []);
});

Deno.test("TM-12 compromised component: the static rules catch each kind of violation", () => {
  const table = new Map([
    ["verify", normaliseSet({ read: ["./x"], net: true, import: DENY })],
    ["fetch-private", normaliseSet({ write: ["/var/cache/phase"], net: true, import: DENY })],
    ["serve", normaliseSet({ net: true, run: ["sh"], env: true, import: DENY })],
    ["receipt", normaliseSet({ read: ["../../etc"], ffi: true })],
    ["images", normaliseSet({ read: true, write: ["./"], import: DENY })],
    ["kexec", normaliseSet({ read: ["/sys/firmware/fdt"], import: DENY })],
  ]);
  const rules = new Set(auditTable(table).map((f) => `${f.where}:${f.rule}`));
  for (
    const want of [
      "verify:offline",
      "fetch-private:tmpfs-only",
      "serve:net-xor-run",
      "receipt:no-ffi",
      "receipt:deny-import",
      "receipt:no-dotdot",
      "images:scoped",
      "images:write-root",
      "verify:justified",
      "kexec:no-pseudo-fs",
    ]
  ) ok(rules.has(want), `expected ${want} in ${[...rules].join(", ")}`);
  const tasks = auditTasks(
    [{ task: "x", set: "verify", entry: "verify/main.ts", args: [], flags: ["-A", "-P=verify"] }],
    table,
    () => "await main({})",
  );
  assertEquals(tasks.map((f) => f.rule).sort(), ["flags", "flags", "flags"]);
});

/** A copy of the real table with `name`'s set changed by `edit`. */
function widened(
  name: string,
  edit: (raw: Record<string, unknown>) => void,
): Map<string, ReturnType<typeof normaliseSet>> {
  const raw = structuredClone(rawTable()) as Record<string, Record<string, never>>;
  edit(raw[name]);
  return new Map(Object.entries(raw).map(([n, r]) => [n, normaliseSet(r)]));
}

function rulesOf(findings: readonly { where: string; rule: string }[]): string[] {
  return findings.map((f) => `${f.where}:${f.rule}`).sort();
}

Deno.test("TM-12 compromised component: a networked set that can read the keys folder or write a trust folder is a finding", () => {
  // The layout before issue 18: ./.phase whole for serve, discover and fetch.
  for (const name of ["serve", "discover", "fetch"]) {
    const t = widened(name, (r) => (r.read as unknown as string[]).push("./.phase"));
    assertEquals(rulesOf(auditTable(t)), [`${name}:keys-offline`], name);
  }
  const deeper = widened(
    "fetch-private",
    (r) => (r.read as unknown as string[]).push("./.phase/keys/release.pem"),
  );
  assertEquals(rulesOf(auditTable(deeper)), ["fetch-private:keys-offline"]);
  const serveWrites = widened("serve", (r) => (r.write as unknown as string[]).push("./.phase"));
  assertEquals(rulesOf(auditTable(serveWrites)), [
    "serve:trust-read-only",
    "serve:trust-read-only",
  ]);
  const etc = widened("fetch", (r) => (r.write as unknown as string[]).push("/etc/phase"));
  assertEquals(rulesOf(auditTable(etc)), ["fetch:trust-read-only"]);
  // The same grants on an offline set are no finding of these rules.
  const offline = widened("sign", (r) => (r.read as unknown as string[]).push("./.phase"));
  assertEquals(auditTable(offline).filter((f) => /keys|trust/.test(f.rule)), []);
});

Deno.test("TM-12 compromised component: a set that may start deno is every permission: offline and development-only", () => {
  const net = widened("audit", (r) => (r as Record<string, unknown>).net = ["127.0.0.1"]);
  assertEquals(rulesOf(auditTable(net)).filter((r) => r.endsWith("deno-run")), ["audit:deno-run"]);
  const shipped = widened("kexec", (r) => (r.run as unknown as string[]).push("/usr/bin/deno"));
  assertEquals(rulesOf(auditTable(shipped)).filter((r) => r.endsWith("deno-run")), [
    "kexec:deno-run",
  ]);
  const task = entrypointTasks().find((t) => t.task === "kexec")!;
  assertEquals(
    auditTasks([task], shipped).map((f) => f.rule).filter((r) => r === "deno-run"),
    ["deno-run"],
  );
  // No shipped binary is built from a set that may start deno.
  const table = permissionTable();
  for (const b of binaries()) ok(!runsDeno(table.get(b.set)!), `${b.name} may start deno`);
});

Deno.test("TM-12 compromised component: every spawn of deno in code passes an explicit permission set", () => {
  const spawn = (args: string) => ({
    path: "x/y.ts",
    text: `const c = new Deno.Command("deno", { args: ${args}, cwd: "." });`,
  });
  const rules = (args: string) => auditDenoSpawns([spawn(args)]).map((f) => f.detail);
  assertEquals(rules('["run", "-P=verify", "verify/main.ts"]'), []);
  assertEquals(rules('["run", "--allow-read=/tmp/phase", "x.ts"]'), []);
  assertEquals(rules('["bundle", "-o", "x.js", "x.ts"]'), []);
  ok(/every permission/.test(rules('["run", "-A", "x.ts"]')[0]));
  ok(/every permission/.test(rules('["eval", "--allow-all", "1"]')[0]));
  ok(
    /without an explicit permission set/.test(
      rules('["eval", "Deno.readFileSync(\'/etc/shadow\')"]')[0],
    ),
  );
  // Arguments built by a named helper are followed to its definition.
  const helper = {
    path: "x/z.ts",
    text: 'function argv(): string[] { return ["run", "x.ts"]; }\n' +
      'await new Deno.Command("deno", { args: argv() }).output();',
  };
  assertEquals(auditDenoSpawns([helper]).length, 1);
  // Tests and test support run under the test set and are not checked.
  assertEquals(auditDenoSpawns([{ ...spawn('["run", "-A"]'), path: "x/y_test.ts" }]), []);
});

Deno.test("audit: components import each other only through mod.ts, whatever folders exist", () => {
  const files = [
    { path: "verify/mod.ts", text: "" },
    { path: "net/mod.ts", text: "" },
    { path: "boot/mod.ts", text: "" },
    { path: "testing/mod.ts", text: "" },
    {
      path: "boot/boot.ts",
      text: 'import { x } from "../net/http.ts";\nimport { y } from "./step.ts";',
    },
    {
      path: "boot/a/b.ts",
      text: 'export * from "../../verify/verify.ts";\nimport "../../net/mod.ts";',
    },
    { path: "net/http_test.ts", text: 'import { z } from "../verify/_verified.ts";' },
    { path: "net/raw.ts", text: 'const m = await import("../boot/boot.ts");' },
    { path: "net/socks.ts", text: 'import config from "../deno.json" with { type: "json" };' },
    { path: "testing/serve.ts", text: 'import { x } from "../net/http.ts";' },
    { path: "bench/b.ts", text: 'import { x } from "../boot/boot.ts";' },
    { path: "net/t_test.ts", text: 'import { t } from "../testing/tor_net.ts";' },
  ];
  assertEquals(rulesOf(auditImports(files)), [
    "boot/a/b.ts:mod-import",
    "boot/boot.ts:mod-import",
    "net/http_test.ts:private-import",
    "net/raw.ts:mod-import",
    "net/socks.ts:config-import",
  ]);
});

Deno.test("TM-12 compromised component: deno.json's table equals the reviewed baseline, and a widened set is a finding until the baseline and its note change together", async () => {
  const baseline = (await readBaseline(REPO))!;
  ok(baseline, "threat-model/permissions.baseline.json exists");
  assertEquals(auditBaseline(rawTable(), baseline), []);
  // Widen one set in deno.json (a copy): a finding naming the set and kind.
  const raw = structuredClone(rawTable()) as Record<string, Record<string, unknown>>;
  raw.verify.read = [...(raw.verify.read as string[]), "/root"];
  const f = auditBaseline(raw, baseline);
  assertEquals(f.map((x) => `${x.where}:${x.rule}`), ["verify:baseline"]);
  ok(/^read is /.test(f[0].detail), f[0].detail);
  // Copying the widened table into the baseline without a new review note
  // is still a finding.
  const copied = { ...baseline, permissions: raw };
  assertEquals(auditBaseline(raw, copied).map((x) => x.rule), ["baseline"]);
  // Updated together: clean.
  const reviewed = {
    permissions: raw,
    review: { ...baseline.review, table_sha256: tableDigest(raw), note: "verify may read /root" },
  };
  assertEquals(auditBaseline(raw, reviewed), []);
  assertEquals(auditBaseline(raw, undefined).map((x) => x.rule), ["baseline"]);
});

Deno.test("TM-12 compromised component: every command's default paths lie inside its set (kexec reads the trust file keygen writes)", () => {
  assertEquals(auditTable().filter((f) => f.rule === "default-paths"), []);
  const narrowed = widened("kexec", (r) => {
    (r as Record<string, unknown>).read = (r.read as unknown as string[]).filter((p) =>
      p !== "./.phase/trust"
    );
  });
  assertEquals(
    auditTable(narrowed).filter((f) => f.rule === "default-paths").map((f) => f.where),
    ["kexec"],
  );
});

Deno.test("TM-12 compromised component: every entrypoint refuses to run with -A (exit 13)", async () => {
  const seen = new Set<string>();
  // Development tools (the demo boots QEMU) have no guard and are skipped.
  for (const t of entrypointTasks().filter((t) => !isDevTask(t))) {
    if (seen.has(t.entry + t.args.join(" "))) continue;
    seen.add(t.entry + t.args.join(" "));
    const out = await new Deno.Command("deno", {
      args: ["run", "-q", "-A", t.entry, ...t.args, "--help"],
      cwd: REPO,
      stdout: "piped",
      stderr: "piped",
    }).output();
    const err = new TextDecoder().decode(out.stderr);
    assertEquals(out.code, EXIT_STATUS.E_PERMISSIONS, `${t.task}: ${err}`);
    ok(/refusing to run: this process holds permissions outside its set/.test(err), err);
    ok(/\nhint: /.test(err), err);
  }
});

Deno.test("TM-12 compromised component: the probe sees a grant outside the set (negative control)", async () => {
  const verify = entrypointTasks().find((t) => t.task === "verify")!;
  const widened = {
    ...verify,
    flags: [...verify.flags, "--allow-read=/etc/hostname", "--allow-net=127.0.0.1"],
  };
  const attempts = await probe(widened, REPO);
  const byKind = Object.fromEntries(attempts.map((a) => [a.kind, a.outcome]));
  assertEquals(byKind.read, "allowed");
  assertEquals(byKind.net, "allowed");
  const findings = dynamicFindings([{ task: widened, attempts }], REPO);
  assertEquals(findings.map((f) => f.detail.split(" ")[0]).sort(), ["net", "read"]);
  // And the same entrypoint under its own set: every attempt denied.
  const own = await probe(verify, REPO);
  assertEquals(own.filter((a) => a.outcome === "allowed"), []);
});

Deno.test("TM-12 compromised component: compiled binaries carry exactly their set, and a mismatch is caught", async () => {
  await Deno.mkdir("/tmp/phase", { recursive: true });
  const dist = await Deno.makeTempDir({ dir: "/tmp/phase", prefix: "dist-" });
  try {
    // DENORT_BIN=deno produces the real metadata offline (deno-facts.md).
    const denort = await new Deno.Command("sh", {
      args: ["-c", "command -v deno"],
      stdout: "piped",
    }).output();
    const deno = new TextDecoder().decode(denort.stdout).trim();
    const out = await new Deno.Command("deno", {
      args: [
        "task",
        "-q",
        "build",
        "--out",
        dist,
        "--only",
        "phase-verify",
        "--only",
        "phase-fetch-private",
      ],
      cwd: REPO,
      env: { DENORT_BIN: deno },
      stdout: "piped",
      stderr: "piped",
    }).output();
    assertEquals(out.code, 0, new TextDecoder().decode(out.stderr));
    const table = permissionTable();
    for (const name of ["phase-verify", "phase-fetch-private"]) {
      const spec = binaries().find((b) => b.name === name)!;
      const embedded = readEmbeddedPermissions(await Deno.readFile(`${dist}/${name}`));
      ok(embedded, `${name} has embedded permissions`);
      assertEquals(compareEmbedded(name, embedded, table.get(spec.set)!, REPO), []);
      // The same binary judged against a wider set is a mismatch both ways.
      assertEquals(compareEmbedded(name, embedded, table.get("serve")!, REPO).length > 0, true);
    }
    const verifyBin = readEmbeddedPermissions(await Deno.readFile(`${dist}/phase-verify`))!;
    assertEquals(verifyBin.allow_net, null);
    assertEquals(verifyBin.allow_write, null);
    assertEquals(verifyBin.prompt, false);
  } finally {
    await Deno.remove(dist, { recursive: true });
  }
});

Deno.test("build: offline without DENORT_BIN the build says it cannot get the runtime", async () => {
  const out = await new Deno.Command("deno", {
    args: ["task", "-q", "build", "--out", "/tmp/phase/never-written", "--only", "phase-verify"],
    cwd: REPO,
    env: { DENORT_BIN: "" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const err = new TextDecoder().decode(out.stderr);
  if (out.code === 0) {
    // Online machine: the runtime was downloaded and the binary built.
    await Deno.remove("/tmp/phase/never-written", { recursive: true });
    return;
  }
  assertEquals(out.code, EXIT_STATUS.E_RUNTIME, err);
  ok(/could not obtain its runtime \(denort\)/.test(err), err);
  ok(/hint: .*DENORT_BIN/.test(err), err);
});

Deno.test("TM-13 private-mode privacy: the fetch-private set writes only on tmpfs roots, and its process cannot write elsewhere", async () => {
  const set = permissionTable().get("fetch-private")!;
  ok(Array.isArray(set.write) && set.write.length > 0);
  for (const p of set.write as string[]) {
    ok(p === "/run/phase", `write scope ${p} is the tmpfs root`);
  }
  const task = entrypointTasks().find((t) => t.task === "fetch-private")!;
  const attempts = await probe(task, REPO);
  assertEquals(attempts.find((a) => a.kind === "write")!.outcome, "denied");
  assertEquals(attempts.find((a) => a.kind === "run")!.outcome, "denied");
});
