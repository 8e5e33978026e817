/**
 * `deno task node` and `deno task job` as a shell uses them, each under its
 * own permission set: run, id, submit (verified receipt, exit 0), a
 * rejected offer (exit 81 with the node's reason), status, and SIGTERM.
 */
import { EXIT_STATUS } from "../core/mod.ts";
import {
  assert,
  assertEquals,
  assertMatch,
  readUntil,
  REPO,
  taskArgv,
  tempDir,
  waitFor,
} from "../testing/mod.ts";

/** Longest the daemon may take to print its address, in ms. */
const START_TIMEOUT_MS = 20_000;
/** Longest the status file may take to show a finished job, in ms. */
const STATUS_WAIT_MS = 10_000;

async function task(
  name: string,
  args: string[],
): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [...taskArgv(name), ...args],
    cwd: REPO,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

Deno.test("node CLI: node id, node run, job key, job submit (verified, exit 0), an unauthorized submitter (exit 81 with the reason), node status, SIGTERM stops it", async () => {
  const dir = await tempDir("node-cli");
  const id = await task("node", ["id", "--state", `${dir}/node`]);
  assertEquals(id.code, 0, id.stderr);
  const peerId = id.stdout.trim();
  const key = (await task("job", ["key", "--state", `${dir}/job`])).stdout.trim();
  assertMatch(key, /^ed25519:[0-9a-f]{64}$/);
  const daemon = new Deno.Command(Deno.execPath(), {
    args: [...taskArgv("node"), "--state", `${dir}/node`, "--allow", key],
    cwd: REPO,
    stdout: "piped",
    stderr: "null",
  }).spawn();
  try {
    const { found: addr, seen: text } = await readUntil(
      daemon.stdout,
      (s) => /listening (\S+)/.exec(s)?.[1],
      START_TIMEOUT_MS,
    );
    assert(addr?.endsWith(`/p2p/${peerId}`), text);
    const ok = await task("job", [
      "submit",
      "wasm/examples/hello.wasm",
      "--peer",
      addr!,
      "--input",
      "Hello, World",
      "--state",
      `${dir}/job`,
    ]);
    assertEquals(ok.code, 0, ok.stderr);
    assertEquals(ok.stdout, "dlroW ,olleH\n");
    const receipt = /receipt (\S+\.json)/.exec(ok.stderr)?.[1];
    const verify = await task("receipt", [
      "verify",
      receipt!,
      "--trust",
      `${dir}/node/node-key/trust.json`,
    ]);
    assertEquals(verify.code, 0, verify.stderr + verify.stdout);
    const refused = await task("job", [
      "submit",
      "wasm/examples/hello.wasm",
      "--peer",
      addr!,
      "--state",
      `${dir}/other`,
    ]);
    assertEquals(refused.code, EXIT_STATUS.E_REJECTED);
    assertMatch(refused.stderr, /rejected the job \(unauthorized\)/);
    assertMatch(refused.stderr, /hint: /);
    // The daemon writes its status file every STATUS_INTERVAL_MS: poll for
    // the one written after the refusal instead of sleeping one interval.
    let status = { code: -1, stdout: "", stderr: "" };
    await waitFor(
      async () => {
        status = await task("node", ["status", "--state", `${dir}/node`]);
        return /unauthorized 1/.test(status.stdout);
      },
      STATUS_WAIT_MS,
      "a status file that counts the refused job",
    );
    assertEquals(status.code, 0, status.stderr);
    assertMatch(status.stdout, /1 finished/);
    assertMatch(status.stdout, /unauthorized 1/);
  } finally {
    daemon.kill("SIGTERM");
    const st = await daemon.status;
    await daemon.stdout.cancel().catch(() => {});
    await Deno.remove(dir, { recursive: true });
    assertEquals(st.code, 0, "the daemon exits 0 on SIGTERM");
  }
});
