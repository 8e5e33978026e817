/**
 * The README is a test (issue 11 §6): every command block, in order, as
 * written, on a fresh copy of the repository in a temporary directory,
 * against the provider its own blocks start. Commands marked "run by CI"
 * are checked to be in `.ci/run`; "needs QEMU" ones run in
 * `deno task test:vm` (images/vm_readme_test.ts). testing/readme.ts says how.
 */
import { assert, assertEquals, tempDir } from "./testing/mod.ts";
import { rawTasks } from "./cli/mod.ts";
import {
  type Background,
  ciCommands,
  freshCopy,
  printsError,
  readmeCommands,
  runLine,
  startBackground,
} from "./testing/readme.ts";

const REPO = new URL(".", import.meta.url).pathname.replace(/\/$/, "");

Deno.test("README: every command block runs as written, in order, on a fresh copy", async () => {
  const commands = readmeCommands(await Deno.readTextFile(`${REPO}/README.md`));
  assert(commands.length > 20, `README has its command blocks (${commands.length})`);
  const ci = ciCommands(await Deno.readTextFile(`${REPO}/.ci/run`), rawTasks());
  const dir = await tempDir("readme");
  const clone = `${dir}/phase`;
  await freshCopy(REPO, clone);
  // The conformance vectors and notes sit beside a clone, as in CI.
  await Deno.symlink(await Deno.realPath(`${REPO}/../shared`), `${dir}/shared`);
  const running: Background[] = [];
  const outputs: { line: string; stdout: string }[] = [];
  try {
    for (const [i, c] of commands.entries()) {
      const label = `README block ${c.block + 1}: ${c.line}`;
      if (c.kind === "ci") {
        assert(ci.includes(c.line), `${label}: marked 'run by CI' but .ci/run does not run it`);
        continue;
      }
      if (c.kind === "qemu") continue; // images/vm_readme_test.ts runs it in test:vm
      if (c.kind === "system") {
        const task = /run by CI: ([\w:-]+)/.exec(c.comment)?.[1];
        assert(task, `${label}: a 'needs root and systemd' line names the task that covers it`);
        assert(
          ci.includes(`deno task ${task}`),
          `${label}: .ci/run does not run deno task ${task}`,
        );
        continue;
      }
      if (c.kind === "background") {
        // The README stops the earlier provider before it starts the next one.
        for (const b of running.splice(0)) await b.stop();
        running.push(await startBackground(clone, c.line, `${dir}/background-${i}.log`));
        continue;
      }
      // Installing Deno globally would change this machine: install into a
      // prefix of the test's own and run what it installed.
      const line = c.line.startsWith("npm install -g ")
        ? `npm_config_prefix='${dir}/npm' ${c.line} && '${dir}/npm/bin/deno' --version`
        : c.line;
      const r = await runLine(clone, line);
      assertEquals(r.code, 0, `${label}\n${r.stdout}\n${r.stderr}`);
      assert(!printsError(r.stdout + r.stderr), `${label} printed an error:\n${r.stderr}`);
      outputs.push({ line: c.line, stdout: r.stdout });
    }
  } finally {
    for (const b of running.splice(0)) await b.stop();
  }
  for (const log of [...Deno.readDirSync(dir)].filter((e) => e.name.startsWith("background-"))) {
    const text = await Deno.readTextFile(`${dir}/${log.name}`);
    assert(!printsError(text), `${log.name}: a background command printed an error:\n${text}`);
  }
  // What the walkthrough says happens, happened.
  const out = (prefix: string) => outputs.find((o) => o.line.startsWith(prefix))?.stdout ?? "";
  assert(out("npm install -g deno@").includes("deno 2.9.6"), "the README's Deno is 2.9.6");
  assert(
    out("deno task provider list").includes("2026.11.20"),
    "the provider serves the release the README signed",
  );
  const fetched = JSON.parse(out("deno task fetch ").trim().split("\n").at(-1)!);
  assertEquals(fetched.floor?.current, "2026.11.20", "fetch recorded the signed version as floor");
  assert(out("deno task floor show").includes("2026.11.20"), "floor show shows that floor");
  const cached = [...Deno.readDirSync(`${clone}/.cache/cas/sha256`)].length;
  assert(cached >= 2, `kernel and initramfs are in the cache (${cached})`);
  await Deno.remove(dir, { recursive: true });
});
