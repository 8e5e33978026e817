/**
 * The `wasm` CLI's messages (issue 11 §4): a job's output is printed byte
 * for byte, with a newline added only on a terminal; `receipt verify` says
 * which trust file holds the node's key.
 */
import { assert, assertEquals, assertRejects, tempDir } from "../testing/mod.ts";
import { memoryLogger } from "../core/mod.ts";
import { nodeTrustFile, runWasm, type WasmIo } from "./cli.ts";
import { WasmError } from "./errors.ts";

function capture(terminal: boolean) {
  const out: number[] = [];
  const lines: string[] = [];
  const io: WasmIo = {
    stdout: (b) => out.push(...b),
    stderr: () => {},
    line: (t) => lines.push(t),
    log: memoryLogger(),
    terminal,
    isTerminal: () => terminal,
  };
  return { io, out, lines, text: () => new TextDecoder().decode(new Uint8Array(out)) };
}

Deno.test("wasm run: the job's bytes exactly off a terminal; on a terminal a newline after output that lacks one, never a second", async () => {
  const state = await tempDir("wasmcli");
  try {
    const run = async (terminal: boolean, input: string) => {
      const c = capture(terminal);
      const args = ["run", "wasm/examples/hello.wasm", "--input", input, "--state", state];
      assertEquals(await runWasm(args, c.io), 0);
      return c.text();
    };
    assertEquals(await run(false, "Hello, World"), "dlroW ,olleH");
    assertEquals(await run(true, "Hello, World"), "dlroW ,olleH\n");
    // The hello job reverses its input: "\nab" ends its output with a newline already.
    assertEquals(await run(true, "\nab"), "ba\n");
    assertEquals(await run(false, "\nab"), "ba\n");
  } finally {
    await Deno.remove(state, { recursive: true });
  }
});

Deno.test("receipt verify: the success line and every E_TRUST hint name the trust file that holds the node's key", async () => {
  const state = await tempDir("wasmcli");
  try {
    const c = capture(false);
    await runWasm(["run", "wasm/examples/hello.wasm", "--input", "x", "--state", state], c.io);
    const receipts = [...Deno.readDirSync(`${state}/receipts`)].map((e) => e.name);
    const file = `${state}/receipts/${receipts[0]}`;
    const nodeTrust = `${state}/node-key/trust.json`;
    assertEquals(nodeTrustFile(file), { state, path: nodeTrust });
    assertEquals(
      nodeTrustFile("./.phase/wasm/receipts/a.json").path,
      "./.phase/wasm/node-key/trust.json",
    );
    assertEquals(nodeTrustFile("/elsewhere/a.json").path, "./.phase/wasm/node-key/trust.json");
    // On a terminal the success line names the trust file; on a pipe the JSON does.
    const ok = capture(true);
    assertEquals(await runWasm(["receipt", "verify", file, "--trust", nodeTrust], ok.io), 0);
    assert(ok.lines[0].includes(`(trusted: its key is in ${nodeTrust})`), ok.lines[0]);
    const piped = capture(false);
    assertEquals(await runWasm(["receipt", "verify", file, "--trust", nodeTrust], piped.io), 0);
    assertEquals(JSON.parse(piped.lines[0]).trust, nodeTrust);
    // No --trust: the hint gives the exact flag to add.
    const bare = await assertRejects(
      runWasm(["receipt", "verify", file], capture(false).io),
      WasmError,
    );
    assertEquals(bare.code, "E_TRUST");
    assert(bare.hint!.startsWith(`pass --trust ${nodeTrust} (the node's trust file`), bare.hint);
    // A trust file without the node (another node's): it is named, and so is the node's own.
    const otherState = await tempDir("wasmcli-other");
    try {
      await runWasm(
        ["run", "wasm/examples/hello.wasm", "--input", "y", "--state", otherState],
        capture(false).io,
      );
      const otherTrust = `${otherState}/node-key/trust.json`;
      const err = await assertRejects(
        runWasm(["receipt", "verify", file, "--trust", otherTrust], capture(false).io),
        WasmError,
      );
      assertEquals(err.code, "E_TRUST");
      assert(err.message.endsWith(`is not in the trust file ${otherTrust}`), err.message);
      assert(err.hint!.endsWith(`--trust ${nodeTrust}`), err.hint);
    } finally {
      await Deno.remove(otherState, { recursive: true });
    }
  } finally {
    await Deno.remove(state, { recursive: true });
  }
});
