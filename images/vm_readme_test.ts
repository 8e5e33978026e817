/**
 * The README's blocks that need QEMU (issue 11 §6), run by `deno task
 * test:vm` on a fresh copy of the repository: today `deno task demo`, which
 * builds the image, serves a release and boots it with the console on the
 * terminal. The test waits for the target's marker on that console, then
 * stops the demo as a user would (SIGTERM to its process group).
 */
import { assert, tempDir } from "../testing/mod.ts";
import { freshCopy, readmeCommands } from "../testing/readme.ts";

const REPO = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
/** Longest a README QEMU command may take to reach the target marker, in milliseconds. */
const QEMU_COMMAND_TIMEOUT_MS = 10 * 60_000;
/** What the target prints once Phase booted it (images/_files.ts target init). */
const TARGET_MARKER = "PHASE-TARGET-OK";

Deno.test("README: the blocks that need QEMU run as written on a fresh copy and reach the target", async () => {
  const commands = readmeCommands(await Deno.readTextFile(`${REPO}/README.md`))
    .filter((c) => c.kind === "qemu");
  assert(commands.length > 0, "the README has blocks marked 'needs QEMU'");
  const dir = await tempDir("readme-vm");
  const clone = `${dir}/phase`;
  await freshCopy(REPO, clone);
  await Deno.symlink(await Deno.realPath(`${REPO}/../shared`), `${dir}/shared`);
  try {
    for (const c of commands) {
      const child = new Deno.Command("setsid", {
        args: ["bash", "-c", `exec ${c.line}`],
        cwd: clone,
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      const stop = () =>
        new Deno.Command("kill", { args: ["-TERM", "--", `-${child.pid}`] }).output();
      const timer = setTimeout(stop, QEMU_COMMAND_TIMEOUT_MS);
      let console = "";
      const decoder = new TextDecoder();
      const stderr = new Response(child.stderr).text();
      for await (const chunk of child.stdout) {
        console += decoder.decode(chunk, { stream: true });
        if (console.includes(TARGET_MARKER)) break;
      }
      await stop();
      clearTimeout(timer);
      await child.status;
      const err = await stderr;
      assert(
        console.includes(TARGET_MARKER),
        `${c.line}: no ${TARGET_MARKER}\n${console.slice(-3000)}\n${err}`,
      );
      assert(!/(^|\n)(phase-[\w:-]+: )?error: /i.test(err), `${c.line} printed an error:\n${err}`);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
