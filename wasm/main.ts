/**
 * Entrypoint `phase-wasm`: `run` and `postboot` under the permission set
 * 'wasm', `receipt verify` under 'receipt' (read-only).
 *
 * ## Running a job
 * `deno task wasm run <module> [--input STR | --input-file F] [--arg A]...
 * [--dir HOST[::GUEST]] [--timeout-ms N] [--memory-mb N] [--output-kb N]
 * [--state DIR] [--private]`
 *
 * - Core modules are WASI preview1 commands (`_start`). The host side
 *   (`runJob`, runner.ts) starts a Worker with no permissions at all,
 *   sends it the bytes, and terminates it at the wall-clock timeout
 *   (default 5 s). The worker (`_worker.ts`) validates the module, refuses
 *   any import that is not a preview1 function (`_wasi.ts`: args, environ
 *   (empty), stdin/stdout/stderr, clocks and poll_oneoff (sleep), random,
 *   exit; no preopened directory, so filesystem and socket calls return
 *   ENOTCAPABLE, unless `--dir` grants one directory read-only as fd 3,
 *   default guest name `/data`: the worker may then read below it only,
 *   and `..`, absolute paths and symlinks are refused, `_wasi_fs.ts`,
 *   TM-10), turns the module's memory into a host `WebAssembly.Memory`
 *   whose `maximum` is the cap (default 64 MiB, `_limits.ts`), and stops
 *   the job when it writes more than the output cap (default 1 MiB).
 *   Outcomes: `ok`, `exit`, `trap`, `timeout`, `memory`, `output`,
 *   `invalid_module`, `import_denied`; each gets a receipt and its own exit
 *   status (core/ registry), and none affects the host process (TM-16).
 *   `exit_code` is -1 when the job did not exit by itself; a stopped job's
 *   output is what it wrote before the cap (`output`) or nothing
 *   (`timeout`: the worker is gone).
 * - The job's stdout is data: it is printed byte for byte. Only when stdout
 *   is a terminal and the output does not end with a newline is one added
 *   after it, so the prompt and the log start on their own line; a pipe or
 *   a file gets exactly the job's bytes.
 * - Components (world `phase:job/job`, `run: func(list<u8>) -> list<u8>`)
 *   run through JS glue jco 1.17.9 transpiled at build time
 *   (`deno task wasm:build`), loaded into the same kind of worker (which
 *   may read only `JCO_DEBUG`). Only components listed with their glue's
 *   digests in `examples/components.json` run (`loadComponent`).
 *
 * ## Receipts (formats.md §7)
 * Signed (JCS, Ed25519) with the node key `<state>/node-key/node.pem`
 * (generated on first use, 0600, beside `node.pub.pem` and a `trust.json`
 * naming it), stored as `<state>/receipts/<time>-<digest>.json`. With
 * `--private` the key is ephemeral and nothing is written. Extra members:
 * `outcome` (the job's first terminal event), `error`, `limits.output_bytes`,
 * `args` (the job's argv), `grants` and `dir_digest` (with `--dir`: a digest
 * of the directory's files as read before the run, `dirDigest`), and
 * `public` in the signature entry (as DHT records, §5). Every input is bound.
 * `deno task receipt verify <file> --trust <state>/node-key/trust.json
 * [--json]` checks one and exits non-zero on any mismatch (E_RECEIPT
 * schema, E_SIGNATURE signature, E_TRUST node not trusted, E_IO
 * unreadable). Without `--trust` it exits with E_TRUST even for an intact
 * receipt (any key can sign one) unless `--self-consistent-only` is given
 * (TM-17).
 *
 * ## Post-boot service (for the boot-chain image)
 * Command, from the directory holding deno.json (the repository or its copy
 * in the image):
 *
 * ```sh
 * deno run -q --no-prompt --no-remote -P=wasm wasm/main.ts postboot --state /var/lib/phase/wasm
 * # same as: deno task wasm postboot --state /var/lib/phase/wasm
 * # or, on a read-only / private boot:  ... wasm/main.ts postboot --private
 * ```
 *
 * It runs `wasm/examples/hello.wasm` (only if its digest is
 * `HELLO_WASM_DIGEST`) on `Hello, World` and prints exactly three
 * lines on stdout, then exits 0 (non-zero with `phase-wasm: error:` on
 * stderr otherwise):
 *
 * ```text
 * phase-wasm: hello: dlroW ,olleH
 * phase-wasm: receipt keyid ed25519:<64 hex>
 * phase-wasm: receipt /var/lib/phase/wasm/receipts/<time>-<hex>.json sha256:<64 hex>
 * ```
 * (third line: `phase-wasm: receipt private (not stored) sha256:<hex>` with `--private`).
 *
 * Files it needs: `deno.json` (permission set `wasm`, `unstable:
 * worker-options`), `cli/`, `verify/`, `sign/`, `wasm/*.ts` (the worker is
 * `wasm/_worker.ts`, loaded at run time), `wasm/examples/hello.wasm`; a
 * writable `--state` directory under `/var/lib/phase`, `./.phase` or
 * `/tmp/phase` (the `wasm` set's write list), or `--private`. Deno needs
 * `HOME` or `DENO_DIR` on a writable tmpfs. No network, no npm packages at
 * run time (jco and wabt are build-time only). With `deno compile`, pass
 * `--include wasm/_worker.ts --include wasm/examples/hello.wasm`.
 *
 * @module
 */
import { consoleLogger } from "../core/mod.ts";
import { main } from "../cli/mod.ts";
import { RECEIPT_PERMISSION_SET, runWasm, WASM_PERMISSION_SET } from "./cli.ts";
import { wasmHelp } from "./_help.ts";

function writeAll(w: { writeSync(b: Uint8Array): number }, b: Uint8Array): void {
  let off = 0;
  while (off < b.length) off += w.writeSync(b.subarray(off));
}

if (import.meta.main) {
  await main({
    name: "wasm",
    permissionSet: Deno.args[0] === "receipt" ? RECEIPT_PERMISSION_SET : WASM_PERMISSION_SET,
    help: wasmHelp(Deno.args),
    run: (args) =>
      runWasm(args, {
        stdout: (b) => writeAll(Deno.stdout, b),
        stderr: (b) => writeAll(Deno.stderr, b),
        line: (t) => console.log(t),
        terminal: Deno.stdout.isTerminal(),
        log: consoleLogger("wasm"),
      }),
  });
}
