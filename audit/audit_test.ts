import { EXIT_STATUS } from "../core/mod.ts";
import { deepStrictEqual as assertEquals, ok } from "node:assert/strict";
import { configDir, DEFAULT_IMPORT_HOSTS, normaliseSet, permissionTable } from "../cli/mod.ts";
import { compareEmbedded, readEmbeddedPermissions } from "./compiled.ts";
import { dynamicFindings, probe } from "./dynamic.ts";
import { binaries, entrypointTasks, isDevTask } from "./entrypoints.ts";
import { auditPrivateImports, auditTable, auditTasks } from "./static.ts";

const REPO = configDir();
const DENY = { deny: [...DEFAULT_IMPORT_HOSTS] };

Deno.test("TM-12 compromised component: the permission table and tasks obey every static rule", async () => {
  const findings = [
    ...auditTable(),
    ...auditTasks(entrypointTasks()),
    ...await auditPrivateImports(REPO),
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
