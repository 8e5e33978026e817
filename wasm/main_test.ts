import { EXIT_STATUS } from "../core/mod.ts";
import {
  deepStrictEqual as assertEquals,
  match as assertMatch,
  ok as assert,
} from "node:assert/strict";
import { watToWasm } from "./build.ts";
import { permissionSet } from "../cli/mod.ts";
import { runAndSign } from "./cli.ts";
import { HELLO_WASM_DIGEST, helloWasmPath } from "./hello.ts";
import { sha256Digest, verifyReceipt } from "./receipt.ts";
import { tempDir } from "../testing/mod.ts";

const ROOT = new URL("..", import.meta.url).pathname;
const dec = new TextDecoder();
/** Longest any one CLI run may take here, in milliseconds. */
const CLI_TIMEOUT_MS = 60_000;

async function task(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command("deno", {
    args: ["task", "-q", ...args],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(CLI_TIMEOUT_MS),
  }).output();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

async function receipts(state: string): Promise<string[]> {
  const out: string[] = [];
  try {
    for await (const e of Deno.readDir(`${state}/receipts`)) {
      out.push(`${state}/receipts/${e.name}`);
    }
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
  return out.sort();
}

Deno.test("wasm run: the hello job under the 'wasm' set, receipt stored and verified by 'receipt verify'", async () => {
  const state = await tempDir();
  try {
    const r = await task(
      "wasm",
      "run",
      "wasm/examples/hello.wasm",
      "--input",
      "Hello, World",
      "--state",
      state,
    );
    assertEquals(r.code, 0, r.stderr);
    assertEquals(r.stdout, "dlroW ,olleH");
    const [file] = await receipts(state);
    assert(file, "a receipt was stored");
    const ok = await task("receipt", "verify", file, "--trust", `${state}/node-key/trust.json`);
    assertEquals(ok.code, 0, ok.stderr);
    // stdout is a pipe: the result is JSON (cli/output.ts); a terminal gets the "receipt ok" line.
    const verified = JSON.parse(ok.stdout);
    assertMatch(verified.node, /^ed25519:[0-9a-f]{64}$/);
    assertEquals([verified.ok, verified.anchored, verified.outcome], [true, true, "ok"]);
    // It says which trust file holds the node's key.
    assertEquals(verified.trust, `${state}/node-key/trust.json`);
    // TM-17 through the CLI: one altered byte of meaning, a non-zero exit.
    const forged = `${state}/forged.json`;
    await Deno.writeTextFile(
      forged,
      (await Deno.readTextFile(file)).replace(/"wall_us": \d+/, '"wall_us": 1'),
    );
    const bad = await task("receipt", "verify", forged);
    assertEquals(bad.code, EXIT_STATUS.E_SIGNATURE, bad.stderr);
    assertMatch(bad.stderr, /phase-wasm: error: .*does not verify\nhint: /);
    // A trust file that does not list the node.
    const other = await tempDir();
    try {
      await task("keygen", "--out", other).then((k) => assertEquals(k.code, 0, k.stderr));
      const untrusted = await task("receipt", "verify", file, "--trust", `${other}/trust.json`);
      assertEquals(untrusted.code, EXIT_STATUS.E_TRUST, untrusted.stderr);
    } finally {
      await Deno.remove(other, { recursive: true });
    }
    const input = `${state}/input.txt`;
    await Deno.writeTextFile(input, "abc");
    const fromFile = await task(
      "wasm",
      "run",
      "wasm/examples/hello.wasm",
      "--input-file",
      input,
      "--state",
      state,
    );
    assertEquals(fromFile.stdout, "cba");
  } finally {
    await Deno.remove(state, { recursive: true });
  }
});

Deno.test("TM-16 hostile WASM job: each bad job exits with its own status and leaves a receipt", async () => {
  const state = await tempDir();
  try {
    const cases: [string, string, string[], number, string][] = [
      ["invalid", "", [], EXIT_STATUS.E_MODULE, "invalid_module"],
      ["trap", `(module (func (export "_start") unreachable))`, [], EXIT_STATUS.E_TRAP, "trap"],
      [
        "loop",
        `(module (func (export "_start") (loop $l (br $l))))`,
        ["--timeout-ms", "300"],
        EXIT_STATUS.E_TIMEOUT,
        "timeout",
      ],
      [
        "bomb",
        `(module (memory 1) (func (export "_start")
          (loop $g (br_if $g (i32.ne (memory.grow (i32.const 1)) (i32.const -1))))
          (i32.store (i32.const 0x7ffffff0) (i32.const 1))))`,
        ["--memory-mb", "4"],
        EXIT_STATUS.E_MEMORY,
        "memory",
      ],
      [
        "flood",
        `(module (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
          (memory 1) (func (export "_start") (i32.store (i32.const 4) (i32.const 4096))
          (loop $l (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8))) (br $l))))`,
        ["--output-kb", "64"],
        EXIT_STATUS.E_OUTPUT,
        "output",
      ],
      [
        "import",
        `(module (import "env" "spawn" (func)) (func (export "_start")))`,
        [],
        EXIT_STATUS.E_IMPORT,
        "import_denied",
      ],
    ];
    let seen = 0;
    for (const [name, source, flags, code, outcome] of cases) {
      const path = `${state}/${name}.wasm`;
      await Deno.writeFile(
        path,
        source ? await watToWasm(`${name}.wat`, source) : new TextEncoder().encode("not wasm"),
      );
      const r = await task("wasm", "run", path, "--state", state, ...flags);
      assertEquals(r.code, code, `${name}: ${r.stderr}`);
      assertMatch(r.stderr, new RegExp(`phase-wasm: error: job ${outcome}: .*\\nhint: `), name);
      if (name === "flood") assertEquals(r.stdout.length, 64 * 1024);
      const files = await receipts(state);
      assertEquals(files.length, ++seen, name);
      const newest = files.map((f) => verifyReceipt(Deno.readFileSync(f), f)).find((rc) =>
        rc.module === sha256Digest(Deno.readFileSync(path))
      );
      assertEquals(newest?.outcome, outcome, name);
    }
  } finally {
    await Deno.remove(state, { recursive: true });
  }
});

Deno.test("wasm postboot: fixed console lines with the hello output and the receipt keyid", async () => {
  const state = await tempDir();
  try {
    const r = await task("wasm", "postboot", "--state", state);
    assertEquals(r.code, 0, r.stderr);
    const lines = r.stdout.trimEnd().split("\n");
    assertEquals(lines[0], "phase-wasm: hello: dlroW ,olleH");
    assertMatch(lines[1], /^phase-wasm: receipt keyid ed25519:[0-9a-f]{64}$/);
    const [file] = await receipts(state);
    assertMatch(lines[2], new RegExp(`^phase-wasm: receipt ${file} sha256:[0-9a-f]{64}$`));
    assertEquals(verifyReceipt(Deno.readFileSync(file), file).node, lines[1].split(" ").pop());
    const priv = await task("wasm", "postboot", "--private");
    assertEquals(priv.code, 0, priv.stderr);
    assertMatch(
      priv.stdout,
      /^phase-wasm: hello: dlroW ,olleH\nphase-wasm: receipt keyid ed25519:[0-9a-f]{64}\nphase-wasm: receipt private \(not stored\) sha256:/,
    );
  } finally {
    await Deno.remove(state, { recursive: true });
  }
});

Deno.test("wasm run: the component version of hello runs through its transpiled glue", async () => {
  const state = await tempDir();
  try {
    const r = await task(
      "wasm",
      "run",
      "wasm/examples/hello_component.wasm",
      "--input",
      "Hello, World",
      "--state",
      state,
    );
    assertEquals(r.code, 0, r.stderr);
    assertEquals(r.stdout, "dlroW ,olleH");
    const [file] = await receipts(state);
    const rc = verifyReceipt(Deno.readFileSync(file), file);
    assertEquals(rc.module, sha256Digest(Deno.readFileSync("wasm/examples/hello_component.wasm")));
    // A component the build did not transpile is refused.
    const copy = `${state}/other.wasm`;
    const bytes = Deno.readFileSync("wasm/examples/hello_component.wasm");
    // Same component plus an empty custom section: other bytes, other digest.
    await Deno.writeFile(copy, new Uint8Array([...bytes, 0x00, 0x01, 0x00]));
    const refused = await task("wasm", "run", copy, "--state", state);
    assertEquals(refused.code, EXIT_STATUS.E_MODULE, refused.stderr);
    assertMatch(refused.stderr, /not one this build transpiled/);
  } finally {
    await Deno.remove(state, { recursive: true });
  }
});

Deno.test("wasm:build rebuilds the examples byte-identically", async () => {
  const r = await task("wasm:build", "--check");
  assertEquals(r.code, 0, r.stdout + r.stderr);
  assertEquals(sha256Digest(await Deno.readFile(helloWasmPath())), HELLO_WASM_DIGEST);
});

Deno.test("wasm run: paths outside the 'wasm' set and bad flags are refused", async () => {
  const r = await task("wasm", "run", "/etc/hostname", "--private");
  assertEquals(r.code, EXIT_STATUS.E_IO, r.stderr);
  assertMatch(r.stderr, /outside the 'wasm' permission set/);
  const usage = await task(
    "wasm",
    "run",
    "wasm/examples/hello.wasm",
    "--timeout-ms",
    "0",
    "--private",
  );
  assertEquals(usage.code, EXIT_STATUS.E_USAGE);
  const both = await task(
    "wasm",
    "run",
    "wasm/examples/hello.wasm",
    "--input",
    "a",
    "--input-file",
    "b",
  );
  assertEquals(both.code, EXIT_STATUS.E_USAGE);
});

Deno.test("TM-17 forged receipt: without a trust anchor 'receipt verify' fails unless --self-consistent-only", async () => {
  const dir = await tempDir();
  try {
    // Self-signed by a key nobody trusts: intact, but anchored to nothing.
    const job = await runAndSign({
      module: await Deno.readFile(helloWasmPath()),
      input: new TextEncoder().encode("x"),
      stateDir: dir,
      private: true,
    });
    const file = `${dir}/self-signed.json`;
    await Deno.writeFile(file, job.receiptBytes);
    const bare = await task("receipt", "verify", file);
    assertEquals(bare.code, EXIT_STATUS.E_TRUST, bare.stderr);
    assertMatch(bare.stderr, /no --trust anchors that node\nhint: .*--self-consistent-only/);
    const self = await task("receipt", "verify", file, "--self-consistent-only", "--json");
    assertEquals(self.code, 0, self.stderr);
    assertEquals(JSON.parse(self.stdout).anchored, false);
    const both = await task("receipt", "verify", file, "--self-consistent-only", "--trust", file);
    assertEquals(both.code, EXIT_STATUS.E_USAGE, both.stderr);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("wasm run: the hint for an unreadable module lists exactly the 'wasm' set's read grants", async () => {
  const r = await task("wasm", "run", "/tmp/phase/no-such-module.wasm");
  assertEquals(r.code, EXIT_STATUS.E_IO, r.stderr);
  const hint = r.stderr.match(/^hint: the 'wasm' set reads (.*)$/m);
  assert(hint, r.stderr);
  assertEquals(hint[1].split(", "), permissionSet("wasm").read);
  assert(!hint[1].includes("/dev/shm"), "no set grants /dev/shm");
});
