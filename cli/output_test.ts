/**
 * One output rule for every result (issue 11 §4): human lines on a
 * terminal, JSON with `--json` or when stdout is not a terminal. The
 * terminal is real here: `script` (util-linux) runs the task on a pty.
 */
import { deepStrictEqual as assertEquals, match as assertMatch, ok } from "node:assert/strict";
import { configDir } from "./mod.ts";
import { printResult, wantsJson } from "./output.ts";

const REPO = configDir();
const VEC = new URL("../../shared/vectors/", import.meta.url).pathname;

Deno.test("output: JSON with --json or off a terminal, the human lines on a terminal", () => {
  const tty = () => true;
  const pipe = () => false;
  assertEquals(wantsJson({ isTerminal: tty }), false);
  assertEquals(wantsJson({ isTerminal: pipe }), true);
  assertEquals(wantsJson({ json: true, isTerminal: tty }), true);
  const run = (opts: { json?: boolean; isTerminal: () => boolean }) => {
    const lines: string[] = [];
    let built = 0;
    printResult({ ok: true, n: 1 }, () => {
      built++;
      return ["first", "second"];
    }, { ...opts, out: (l) => lines.push(l) });
    return { lines, built };
  };
  assertEquals(run({ isTerminal: tty }), { lines: ["first", "second"], built: 1 });
  // The human text is not even built when JSON is printed.
  assertEquals(run({ isTerminal: pipe }), { lines: ['{"ok":true,"n":1}'], built: 0 });
  assertEquals(run({ json: true, isTerminal: tty }), { lines: ['{"ok":true,"n":1}'], built: 0 });
});

/** Runs `deno task -q ...argv` on a pseudo-terminal; returns what the terminal showed. */
async function onTerminal(argv: readonly string[]): Promise<{ code: number; text: string }> {
  const quoted = ["deno", "task", "-q", ...argv].map((a) => `'${a.replaceAll("'", "'\\''")}'`)
    .join(" ");
  const out = await new Deno.Command("script", {
    args: ["-qec", quoted, "/dev/null"],
    cwd: REPO,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  return { code: out.code, text: new TextDecoder().decode(out.stdout).replaceAll("\r\n", "\n") };
}

async function onPipe(argv: readonly string[]): Promise<{ code: number; text: string }> {
  const out = await new Deno.Command("deno", {
    args: ["task", "-q", ...argv],
    cwd: REPO,
    stdout: "piped",
    stderr: "piped",
  }).output();
  return { code: out.code, text: new TextDecoder().decode(out.stdout) };
}

const hasScript = (() => {
  try {
    return new Deno.Command("script", { args: ["--version"], stdout: "null", stderr: "null" })
      .outputSync().success;
  } catch {
    return false;
  }
})();

Deno.test({
  name: "output: verify and keygen print lines on a terminal, JSON on a pipe or with --json",
  ignore: !hasScript,
  fn: async () => {
    await Deno.mkdir("/tmp/phase", { recursive: true });
    const dir = await Deno.makeTempDir({ dir: "/tmp/phase", prefix: "output-" });
    try {
      await Deno.copyFile(`${VEC}manifests/good.json`, `${dir}/m.json`);
      await Deno.copyFile(`${VEC}trust-a.json`, `${dir}/t.json`);
      const verify = [
        ...["verify", "--manifest", `${dir}/m.json`, "--trust", `${dir}/t.json`],
        ...["--now", "2026-11-22T00:00:00Z"],
      ];
      const tty = await onTerminal(verify);
      assertEquals(tty.code, 0, tty.text);
      assertMatch(tty.text, /^phase-verify: ok: stable\/amd64 2026\.11\.20, signed by ed25519:/);
      const pipe = await onPipe(verify);
      assertEquals(JSON.parse(pipe.text).version, "2026.11.20");
      const forced = await onTerminal([...verify, "--json"]);
      assertEquals(JSON.parse(forced.text).version, "2026.11.20");

      const keys = await onTerminal(["keygen", "--out", `${dir}/k1`]);
      assertEquals(keys.code, 0, keys.text);
      assertMatch(keys.text, /^(phase-keygen: wrote .*\n)+keyid ed25519:[0-9a-f]{64}\n$/);
      const piped = await onPipe(["keygen", "--out", `${dir}/k2`]);
      const result = JSON.parse(piped.text);
      assertMatch(result.keyid, /^ed25519:[0-9a-f]{64}$/);
      ok(result.private_key.endsWith("/k2/release.pem"), piped.text);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
