/**
 * `deno task demo`: the whole loop with one command. Builds the amd64 USB
 * image and a signed release when missing, serves the release with a real
 * provider on loopback, and boots the image in QEMU (TCG, OVMF) with the
 * console on this terminal: seed -> discover -> fetch -> verify -> kexec ->
 * target, whose init runs the WASM hello job and prints PHASE-TARGET-OK.
 * Quit QEMU with Ctrl-A X.
 *
 * A developer tool: it runs under the broad 'test' set (it builds, serves
 * and starts QEMU), never on a seed.
 *
 * @module
 */
import { startProvider } from "../provider/mod.ts";
import { consoleLogger } from "../core/mod.ts";
import { OVMF_VARS, qemuArgs } from "./vm.ts";
import { imagesTaskArgs } from "./task.ts";
import { main, parseFlags } from "../cli/mod.ts";
import { DEMO_HELP } from "./_help.ts";
import { ImagesError } from "./errors.ts";

const REPO = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
const OUT = `${REPO}/images/out/demo`;
const ARTIFACTS = `${REPO}/images/out/demo-artifacts`;
const KEYS = `${REPO}/.phase/keys`;
/** Longest a demo boot may run before it is stopped. */
const DEMO_TIMEOUT_MS = 30 * 60_000;

async function exists(p: string): Promise<boolean> {
  try {
    await Deno.stat(p);
    return true;
  } catch {
    return false;
  }
}

/** The flags of `deno task demo` (its `--help` lists each one; testing/help_test.ts checks). */
export const DEMO_FLAGS = { rebuild: { type: "boolean" } } as const;

/** Builds what is missing, serves the release and boots the image; returns the exit status. */
async function runDemo(argv: string[]): Promise<number> {
  const { values } = parseFlags(argv, DEMO_FLAGS, "deno task demo [--rebuild]");
  const rebuild = values.rebuild ?? false;
  if (
    rebuild || !(await exists(`${OUT}/phase-amd64.img`)) ||
    !(await exists(`${ARTIFACTS}/stable/amd64/manifest.json`))
  ) {
    console.log("demo: building the image and a signed release (deno task images, ~20 s)");
    const r = await new Deno.Command("deno", {
      args: imagesTaskArgs({
        arch: "amd64",
        out: "./images/out/demo",
        artifacts: "./images/out/demo-artifacts",
        provider: "http://10.0.2.100/stable/amd64/manifest.json",
      }),
      cwd: REPO,
      stdout: "inherit",
      stderr: "inherit",
    }).output();
    if (r.code !== 0) {
      throw new ImagesError("E_BUILD", `deno task images exited ${r.code}`, {
        hint: "its error is printed above; 'deno task images --help' lists what it needs",
      });
    }
  }
  const provider = await startProvider({
    root: ARTIFACTS,
    state: `${REPO}/images/out/demo-provider`,
    host: "127.0.0.1",
    port: 0,
    sign: false,
    // keygen's layout puts the trust file apart from the keys (TM-12); an
    // older or custom key folder has it beside the key.
    trustPath: (await exists(`${KEYS}/trust.json`))
      ? `${KEYS}/trust.json`
      : `${REPO}/.phase/trust/trust.json`,
    mdns: false,
    dht: false,
    logger: consoleLogger("serve", { json: false, write: () => {} }),
  });
  console.log(
    `demo: provider ${provider.url} serves ${ARTIFACTS}; the guest sees it at http://10.0.2.100/`,
  );
  console.log("demo: booting phase-amd64.img in QEMU (TCG + OVMF); quit with Ctrl-A X\n");
  await Deno.mkdir("/tmp/phase", { recursive: true });
  const vars = await Deno.makeTempFile({ dir: "/tmp/phase", prefix: "demo-vars-" });
  await Deno.copyFile(OVMF_VARS, vars);
  const args = qemuArgs({
    image: `${OUT}/phase-amd64.img`,
    providerPort: provider.port,
    until: {},
    timeoutMs: DEMO_TIMEOUT_MS,
  }, vars)
    .map((a) => (a === "stdio" ? "mon:stdio" : a));
  const i = args.indexOf("-monitor");
  if (i >= 0) args.splice(i, 2);
  const child = new Deno.Command("qemu-system-x86_64", {
    args,
    stdin: "inherit",
    stdout: "inherit",
    stderr: "inherit",
  })
    .spawn();
  const timer = setTimeout(() => child.kill("SIGKILL"), DEMO_TIMEOUT_MS);
  // Stopped from outside: stop QEMU too, then clean up below.
  const stop = () => {
    try {
      child.kill("SIGTERM");
    } catch { /* gone */ }
  };
  Deno.addSignalListener("SIGTERM", stop);
  Deno.addSignalListener("SIGINT", stop);
  const status = await child.status;
  clearTimeout(timer);
  Deno.removeSignalListener("SIGTERM", stop);
  Deno.removeSignalListener("SIGINT", stop);
  await provider.close();
  await Deno.remove(vars).catch(() => {});
  console.log(`\ndemo: QEMU exited (${status.code})`);
  return 0;
}

if (import.meta.main) {
  await main({ name: "demo", permissionSet: "test", help: DEMO_HELP, run: runDemo });
}
