/**
 * Issue 11: `deno task verify` shows the rollback floor it applied (human
 * and --json), and its E_ROLLBACK names the floor file and the command to
 * inspect it. The entrypoint runs as a subprocess under its set.
 */
import { assertEquals, assertMatch, tempDir } from "../testing/mod.ts";
import { EXIT_STATUS } from "../core/mod.ts";
import { keygen, loadSigningKey, signRelease } from "../sign/mod.ts";
import { runVerify } from "./cli.ts";

const REPO = new URL("..", import.meta.url).pathname;

/** What verify prints for people (stdout a terminal), run in this process. */
async function verifyOnTerminal(...args: string[]): Promise<string> {
  const lines: string[] = [];
  const code = await runVerify(args, (l) => lines.push(l), () => true);
  assertEquals(code, 0, lines.join("\n"));
  return lines.join("\n");
}

async function verify(...args: string[]) {
  const out = await new Deno.Command("deno", {
    args: ["task", "-q", "verify", ...args],
    cwd: REPO,
    stdout: "piped",
    stderr: "piped",
  }).output();
  return {
    code: out.code,
    stdout: new TextDecoder().decode(out.stdout),
    stderr: new TextDecoder().decode(out.stderr),
  };
}

Deno.test("TM-02 rollback: verify prints the floor it applied and names the floor file when it refuses", async () => {
  const dir = await tempDir("vfloor");
  try {
    const { paths } = await keygen(`${dir}/keys`, "release");
    const rel = `${dir}/root/stable/amd64`;
    await Deno.mkdir(rel, { recursive: true });
    await Deno.writeFile(`${rel}/kernel`, new Uint8Array(1000).fill(1));
    await Deno.writeFile(`${rel}/initramfs`, new Uint8Array(500).fill(2));
    await signRelease({
      root: `${dir}/root`,
      channel: "stable",
      arch: "amd64",
      version: "2026.11.20",
      expiresInMs: 86_400_000,
      now: new Date(),
    }, await loadSigningKey(paths.privateKey));
    const base = ["--manifest", `${rel}/manifest.json`, "--trust", paths.trust];
    await Deno.mkdir(`${dir}/state`);
    await Deno.writeTextFile(`${dir}/state/floor.json`, '{"stable/amd64": "2026.11.1"}');

    const json = await verify(...base, "--state", `${dir}/state`, "--json");
    assertEquals(json.code, 0, json.stdout + json.stderr);
    const doc = JSON.parse(json.stdout);
    assertEquals([doc.floor, doc.floor_file], ["2026.11.1", `${dir}/state/floor.json`]);
    // The human line is for a terminal (cli/output.ts); runVerify takes the terminal check.
    const human = await verifyOnTerminal(...base, "--state", `${dir}/state`);
    assertMatch(human, /rollback floor: 2026\.11\.1 \(.*\/state\/floor\.json\)/);
    const none = await verify(...base, "--json");
    assertEquals(JSON.parse(none.stdout).floor, null);
    assertMatch(await verifyOnTerminal(...base), /rollback floor: not checked \(no --state\)/);

    await Deno.writeTextFile(`${dir}/state/floor.json`, '{"stable/amd64": "2026.11.29.79573"}');
    const refused = await verify(...base, "--state", `${dir}/state`, "--json");
    assertEquals(refused.code, EXIT_STATUS.E_ROLLBACK);
    const err = JSON.parse(refused.stdout);
    assertMatch(err.message, /below the accepted floor 2026\.11\.29\.79573.*state\/floor\.json/);
    assertMatch(err.hint, /deno task floor show --state /);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
