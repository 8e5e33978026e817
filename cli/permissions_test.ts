import { EXIT_STATUS } from "../core/mod.ts";
import { deepStrictEqual as assertEquals, ok } from "node:assert/strict";
import {
  configDir,
  excessPermissions,
  guardProbes,
  PERMISSION_KINDS,
  permissionSet,
} from "./mod.ts";

const REPO = configDir();
const HOME = Deno.env.get("HOME") ?? "/root";

async function startVerify(extra: string[]): Promise<{ code: number; stderr: string }> {
  const out = await new Deno.Command("deno", {
    args: [
      "run",
      "-q",
      "--no-prompt",
      "--no-remote",
      "-P=verify",
      ...extra,
      "verify/main.ts",
      "--help",
    ],
    cwd: REPO,
    stdout: "null",
    stderr: "piped",
  }).output();
  return { code: out.code, stderr: new TextDecoder().decode(out.stderr) };
}

Deno.test("TM-12 compromised component: verify started with an extra grant of any kind refuses to run (exit 13)", async () => {
  const own = await startVerify([]);
  assertEquals(own.code, 0, own.stderr);
  // What the review widened (issue 18 #8), one kind at a time.
  const extras = [
    "--allow-write=/tmp",
    `--allow-write=${HOME}/.ssh`,
    "--allow-write=/root/.ssh",
    "--allow-read=/etc",
    "--allow-read=/home",
    `--allow-read=${REPO}/.phase/keys`,
    `--allow-read=${REPO}`,
    "--allow-net=example.com",
    "--allow-net=1.1.1.1:443",
    "--allow-net=127.0.0.1",
    "--allow-run=python3",
    "--allow-run=perl",
    "--allow-run=/bin/sh",
    "--allow-env=HOME",
    "--allow-env=AWS_SECRET_ACCESS_KEY",
    "--allow-env",
    "--allow-sys=osRelease",
    "--allow-sys",
    "--allow-ffi=/usr/lib/x86_64-linux-gnu/libc.so.6",
    "--allow-ffi",
  ];
  for (const extra of extras) {
    const r = await startVerify([extra]);
    assertEquals(r.code, EXIT_STATUS.E_PERMISSIONS, `${extra}: ${r.stderr}`);
    ok(/holds permissions outside its set 'verify'/.test(r.stderr), r.stderr);
  }
});

Deno.test("TM-12 compromised component: a grant no probe names is revoked when the set holds none of its kind", async () => {
  await Deno.mkdir("/tmp/phase", { recursive: true });
  const dir = await Deno.makeTempDir({ dir: "/tmp/phase", prefix: "guard-" });
  try {
    const script = `${dir}/after_guard.ts`;
    // The script reads the repository (outside 'verify'), so it calls the
    // guard's second half directly rather than assertPermissionSet().
    await Deno.writeTextFile(
      script,
      `import { permissionSet, revokeUnheld } from "${REPO}/cli/mod.ts";\n` +
        `const q = () => [\n` +
        `  Deno.permissions.querySync({ name: "env", variable: "PHASE_UNGUESSED" }).state,\n` +
        `  Deno.permissions.querySync({ name: "net", host: "unguessed.example" }).state,\n` +
        `];\n` +
        `const before = q();\n` +
        `revokeUnheld(permissionSet("verify"));\n` +
        `console.log(JSON.stringify({ before, after: q() }));\n`,
    );
    const out = await new Deno.Command("deno", {
      args: [
        "run",
        "-q",
        "--no-prompt",
        "--no-remote",
        `--config=${REPO}/deno.json`,
        "-P=verify",
        `--allow-read=${REPO},${dir}`,
        "--allow-env=PHASE_UNGUESSED",
        "--allow-net=unguessed.example",
        script,
      ],
      cwd: REPO,
      stdout: "piped",
      stderr: "piped",
    }).output();
    const err = new TextDecoder().decode(out.stderr);
    assertEquals(out.code, 0, err);
    assertEquals(JSON.parse(new TextDecoder().decode(out.stdout)), {
      before: ["granted", "granted"],
      after: ["prompt", "prompt"],
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("TM-12 compromised component: the guard probes every kind, beside each granted path", () => {
  const set = permissionSet("fetch");
  const probes = guardProbes(set, "/repo", "/home/u");
  for (const kind of PERMISSION_KINDS) ok(probes[kind].length > 0, kind);
  for (const p of ["/", "/tmp", "/home/u/.ssh", "/repo", "/repo/.phase/keys", "/repo/.phase"]) {
    ok(probes.read.includes(p), p);
  }
  // Just outside its own grants: the parent and a sibling of ./.cache.
  ok(probes.write.includes("/repo/.cache-phase-guard-sibling"));
  // Every probe answered "granted": each kind the set scopes or denies is reported.
  const all = excessPermissions(set, "/repo", () => "granted");
  for (const kind of ["read", "write", "env", "run", "sys", "ffi"]) {
    ok(all.some((e) => e.startsWith(`${kind} `)), `${kind} in ${all.join(", ")}`);
  }
  // Nothing granted: nothing reported; the set's own grants are never probes that count.
  assertEquals(excessPermissions(set, "/repo", () => "prompt"), []);
  const own = excessPermissions(set, "/repo", (d) => {
    const path = (d as { path?: string }).path;
    return path === "/repo/.cache" || path?.startsWith("/repo/.cache/") ? "granted" : "prompt";
  });
  assertEquals(own, []);
});
