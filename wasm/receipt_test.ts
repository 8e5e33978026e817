import { deepStrictEqual as assertEquals, ok as assert, rejects, throws } from "node:assert/strict";
import { keygen, loadSigningKey } from "../sign/mod.ts";
import {
  checkThreshold,
  decodeSignatures,
  encodeBase64,
  type JsonValue,
  parseTrust,
  signEd25519,
  signedBytes,
} from "../verify/mod.ts";
import { runAndSign } from "./cli.ts";
import { WasmError } from "./errors.ts";
import { HELLO_INPUT, helloWasmPath } from "./hello.ts";
import { ephemeralNodeKey, loadOrCreateNodeKey, nodeKeyPaths } from "./node_key.ts";
import { dirDigest } from "./dir_digest.ts";
import { formatReceipt, sha256Digest, signReceipt, verifyReceipt } from "./receipt.ts";
import { resolveDirGrant } from "./runner.ts";

const enc = new TextEncoder();

async function tempState(): Promise<string> {
  await Deno.mkdir("/tmp/phase", { recursive: true });
  return await Deno.makeTempDir({ dir: "/tmp/phase", prefix: "receipt-test-" });
}

async function signedHello(state: string) {
  const module = await Deno.readFile(helloWasmPath());
  const job = await runAndSign({
    module,
    input: enc.encode(HELLO_INPUT),
    stateDir: state,
    private: false,
  });
  const trust = parseTrust(await Deno.readFile(nodeKeyPaths(state).trust));
  return { job, module, trust, bytes: await Deno.readFile(job.path!) };
}

function code(err: unknown): string {
  return err instanceof WasmError ? err.code : `not a WasmError: ${err}`;
}

function expectCode(bytes: Uint8Array, want: string, trust?: ReturnType<typeof parseTrust>): void {
  throws(() => verifyReceipt(bytes, "receipt", trust), (err) => code(err) === want);
}

function edit(bytes: Uint8Array, f: (doc: Record<string, unknown>) => void): Uint8Array {
  const doc = JSON.parse(new TextDecoder().decode(bytes));
  f(doc);
  return enc.encode(JSON.stringify(doc, null, 2));
}

Deno.test("receipt: formats.md §7 members, stored under <state>/receipts, verified with embedded and trusted key", async () => {
  const state = await tempState();
  try {
    const { job, module, trust, bytes } = await signedHello(state);
    assert(job.path!.startsWith(`${state}/receipts/`));
    const doc = JSON.parse(new TextDecoder().decode(bytes));
    for (
      const k of [
        "schema",
        "module",
        "input",
        "output",
        "exit_code",
        "started_at",
        "wall_us",
        "node",
        "limits",
        "signatures",
      ]
    ) {
      assert(k in doc, `member ${k}`);
    }
    assertEquals(doc.schema, 1);
    assertEquals(doc.module, sha256Digest(module));
    assertEquals(doc.input, sha256Digest(enc.encode(HELLO_INPUT)));
    assertEquals(doc.output, sha256Digest(enc.encode("dlroW ,olleH")));
    assertEquals(doc.exit_code, 0);
    assertEquals(doc.limits.memory_bytes, 67108864);
    assertEquals(doc.limits.timeout_ms, 5000);
    assert(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/.test(doc.started_at));
    assertEquals(doc.node, job.keyid);
    assertEquals(doc.signatures[0].keyid, job.keyid);
    const self = verifyReceipt(bytes, "receipt");
    assertEquals(self.anchored, false);
    const anchored = verifyReceipt(bytes, "receipt", trust);
    assertEquals(anchored.anchored, true);
    assertEquals(anchored.outcome, "ok");
    // Node key: generated once with mode 0600, reused afterwards.
    const info = await Deno.stat(nodeKeyPaths(state).privateKey);
    assertEquals(info.mode! & 0o777, 0o600);
    const again = await loadOrCreateNodeKey(state);
    assertEquals(again.keyid, job.keyid);
    assertEquals(again.created, false);
  } finally {
    await Deno.remove(state, { recursive: true });
  }
});

Deno.test("receipt: private mode writes nothing and signs with an ephemeral key", async () => {
  const state = await tempState();
  try {
    const job = await runAndSign({
      module: await Deno.readFile(helloWasmPath()),
      input: enc.encode(HELLO_INPUT),
      stateDir: state,
      private: true,
    });
    assertEquals(job.path, undefined);
    assertEquals([...Deno.readDirSync(state)].length, 0);
    assertEquals(verifyReceipt(job.receiptBytes, "receipt").node, job.keyid);
    assert(ephemeralNodeKey().keyid !== job.keyid);
  } finally {
    await Deno.remove(state, { recursive: true });
  }
});

Deno.test("TM-17 forged receipt: any altered member breaks the signature", async () => {
  const state = await tempState();
  try {
    const { bytes, trust } = await signedHello(state);
    const alter: Array<(d: Record<string, unknown>) => void> = [
      (d) => (d.output = "sha256:" + "0".repeat(64)),
      (d) => (d.input = "sha256:" + "1".repeat(64)),
      (d) => (d.module = "sha256:" + "2".repeat(64)),
      (d) => (d.wall_us = 1),
      (d) => (d.started_at = "2020-01-01T00:00:00Z"),
      (d) => ((d.limits as Record<string, number>).timeout_ms = 600000),
      (d) => (d.extra = "covered by the signature too"),
    ];
    for (const f of alter) {
      expectCode(edit(bytes, f), "E_SIGNATURE");
      expectCode(edit(bytes, f), "E_SIGNATURE", trust);
    }
    // Re-serialising without changes keeps it valid (JCS, not bytes, is signed).
    verifyReceipt(edit(bytes, () => {}), "receipt", trust);
  } finally {
    await Deno.remove(state, { recursive: true });
  }
});

Deno.test("TM-17 forged receipt: another key cannot pass as the node", async () => {
  const state = await tempState();
  try {
    const { bytes, trust } = await signedHello(state);
    const mallory = ephemeralNodeKey();
    // Re-signed by another key under the node's keyid and public key.
    const resigned = edit(bytes, (d) => {
      d.output = "sha256:" + "3".repeat(64);
      const sigs = d.signatures as Record<string, string>[];
      delete d.signatures;
      sigs[0].sig = encodeBase64(signEd25519(mallory.key, signedBytes(d as never)));
      d.signatures = sigs;
    });
    expectCode(resigned, "E_SIGNATURE");
    expectCode(resigned, "E_SIGNATURE", trust);
    // Embedded key swapped for Mallory's while node/keyid still name the node.
    expectCode(
      edit(
        bytes,
        (
          d,
        ) => ((d.signatures as Record<string, string>[])[0].public = encodeBase64(
          mallory.publicRaw,
        )),
      ),
      "E_SIGNATURE",
    );
    // A fully self-consistent receipt by Mallory: fine on its own, refused by the node's trust file.
    const forged = edit(bytes, (d) => {
      d.node = mallory.keyid;
      delete d.signatures;
      d.signatures = [{
        keyid: mallory.keyid,
        public: encodeBase64(mallory.publicRaw),
        sig: encodeBase64(signEd25519(mallory.key, signedBytes(d as never))),
      }];
    });
    assertEquals(verifyReceipt(forged, "receipt").anchored, false);
    expectCode(forged, "E_TRUST", trust);
    // Signature entry naming a different key than `node`.
    expectCode(
      edit(bytes, (d) => ((d.signatures as Record<string, string>[])[0].keyid = mallory.keyid)),
      "E_RECEIPT",
    );
  } finally {
    await Deno.remove(state, { recursive: true });
  }
});

Deno.test("TM-17 forged receipt: strict decoding (duplicates, malleability, schema)", async () => {
  const state = await tempState();
  try {
    const { bytes, trust } = await signedHello(state);
    const text = new TextDecoder().decode(bytes);
    // A repeated member: a signer and a verifier must never disagree.
    expectCode(
      enc.encode(text.replace('"exit_code": 0,', '"exit_code": 0,\n  "exit_code": 7,')),
      "E_RECEIPT",
    );
    // S + L: same signature, non-canonical encoding.
    const L = (1n << 252n) + 27742317777372353535851937790883648493n;
    const malleable = edit(bytes, (d) => {
      const entry = (d.signatures as Record<string, string>[])[0];
      const sig = Uint8Array.from(atob(entry.sig), (c) => c.charCodeAt(0));
      let s = 0n;
      for (let i = 63; i >= 32; i--) s = (s << 8n) | BigInt(sig[i]);
      s += L;
      for (let i = 32; i < 64; i++) {
        sig[i] = Number(s & 0xffn);
        s >>= 8n;
      }
      entry.sig = encodeBase64(sig);
    });
    expectCode(malleable, "E_SIGNATURE", trust);
    expectCode(edit(bytes, (d) => (d.schema = 2)), "E_RECEIPT");
    expectCode(edit(bytes, (d) => (d.exit_code = 1.5)), "E_RECEIPT");
    expectCode(edit(bytes, (d) => (d.outcome = "fine")), "E_RECEIPT");
    expectCode(edit(bytes, (d) => delete d.node), "E_RECEIPT");
    expectCode(edit(bytes, (d) => (d.signatures = [])), "E_RECEIPT");
    expectCode(
      edit(
        bytes,
        (d) => (d.signatures = [...(d.signatures as unknown[]), ...(d.signatures as unknown[])]),
      ),
      "E_RECEIPT",
    );
    expectCode(enc.encode(text + "garbage"), "E_RECEIPT");
    expectCode(new Uint8Array(70 * 1024).fill(0x20), "E_RECEIPT");
  } finally {
    await Deno.remove(state, { recursive: true });
  }
});

Deno.test("receipt: a node key readable by others is refused", async () => {
  const state = await tempState();
  try {
    await keygen(`${state}/node-key`, "node");
    await Deno.chmod(nodeKeyPaths(state).privateKey, 0o644);
    await rejects(() => loadOrCreateNodeKey(state), (err) => code(err) === "E_KEY");
  } finally {
    await Deno.remove(state, { recursive: true });
  }
});

Deno.test("receipt: signed exactly like a manifest (verify/ threshold check and openssl agree)", async () => {
  const vectors = new URL("../../shared/vectors/", import.meta.url).pathname;
  const state = await tempState();
  try {
    const key = await loadSigningKey(`${vectors}keys/release-a.pem`).catch(async () => {
      // The shared vector key may be group-readable in a checkout: use a private copy.
      await Deno.copyFile(`${vectors}keys/release-a.pem`, `${state}/a.pem`);
      await Deno.chmod(`${state}/a.pem`, 0o600);
      return await loadSigningKey(`${state}/a.pem`);
    });
    const { job } = await signedHello(state);
    const doc = { ...job.receipt } as Record<string, JsonValue>;
    delete doc.signatures;
    doc.node = key.keyid;
    const signed = signReceipt(doc, key);
    const trust = parseTrust(await Deno.readFile(`${vectors}trust-a.json`));
    // The manifest verifier's own threshold check accepts the receipt.
    assertEquals(
      checkThreshold(
        signed,
        decodeSignatures(signed.signatures, (m) => new Error(m)),
        trust,
        "receipt",
      ),
      [
        key.keyid,
      ],
    );
    assertEquals(verifyReceipt(formatReceipt(signed), "receipt", trust).anchored, true);
    // And OpenSSL verifies the Ed25519 signature over the JCS bytes.
    const sig = (signed.signatures as { sig: string }[])[0].sig;
    await Deno.writeFile(`${state}/msg`, signedBytes(signed));
    await Deno.writeFile(`${state}/sig`, Uint8Array.from(atob(sig), (c) => c.charCodeAt(0)));
    const out = await new Deno.Command("openssl", {
      args: [
        "pkeyutl",
        "-verify",
        "-pubin",
        "-inkey",
        `${vectors}keys/release-a.pub.pem`,
        "-rawin",
        "-in",
        `${state}/msg`,
        "-sigfile",
        `${state}/sig`,
      ],
      stdout: "piped",
      stderr: "piped",
    }).output();
    assertEquals(out.code, 0, new TextDecoder().decode(out.stderr));
  } finally {
    await Deno.remove(state, { recursive: true });
  }
});

Deno.test("TM-17 forged receipt: the job's args and a granted directory's contents are bound and checked", async () => {
  const state = await tempState();
  try {
    const data = `${state}/data`;
    await Deno.mkdir(`${data}/sub`, { recursive: true });
    await Deno.writeTextFile(`${data}/a.txt`, "alpha");
    await Deno.writeTextFile(`${data}/sub/b.txt`, "beta");
    const run = async (args: string[]) => {
      const job = await runAndSign({
        module: await Deno.readFile(helloWasmPath()),
        input: enc.encode(HELLO_INPUT),
        args,
        dir: await resolveDirGrant(data),
        stateDir: state,
        private: true,
      });
      return verifyReceipt(job.receiptBytes, "receipt");
    };
    const r1 = await run(["hello.wasm", "--secret-mode"]);
    assertEquals(r1.args, ["hello.wasm", "--secret-mode"]);
    assertEquals(r1.dirDigest, await dirDigest(data));
    assert(/^sha256:[0-9a-f]{64}$/.test(r1.dirDigest!));
    // Other args, or one changed byte in a granted file, give another receipt.
    const r2 = await run(["hello.wasm"]);
    assertEquals(r2.args, ["hello.wasm"]);
    await Deno.writeTextFile(`${data}/sub/b.txt`, "Beta");
    const r3 = await run(["hello.wasm"]);
    assert(r3.dirDigest !== r1.dirDigest, "the digest covers the files' contents");
    // A receipt that leaves them out does not verify, even re-signed by its node.
    const key = ephemeralNodeKey();
    const resign = (f: (doc: Record<string, JsonValue>) => void) => {
      const doc = JSON.parse(new TextDecoder().decode(formatReceipt(r1.document as never)));
      delete doc.signatures;
      doc.node = key.keyid;
      f(doc);
      return formatReceipt(signReceipt(doc, key));
    };
    verifyReceipt(resign(() => {}), "receipt");
    expectCode(resign((d) => delete d.args), "E_RECEIPT");
    expectCode(resign((d) => d.args = [1]), "E_RECEIPT");
    expectCode(resign((d) => delete d.dir_digest), "E_RECEIPT");
    expectCode(resign((d) => d.dir_digest = "sha256:00"), "E_RECEIPT");
    expectCode(resign((d) => delete d.grants), "E_RECEIPT");
  } finally {
    await Deno.remove(state, { recursive: true });
  }
});
