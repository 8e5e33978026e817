/**
 * The Plasm node with real libp2p nodes on loopback: capability selection,
 * remote jobs with verified receipts, hostile submitters (TM-22), hostile
 * modules run remotely (TM-16), lying nodes (TM-23) and forged capability
 * records (TM-24). Every node and client is stopped in `finally`.
 */
import { assert, assertEquals, assertRejects, tempDir, waitFor } from "../testing/mod.ts";
import { createPhaseNode, type PhaseNodeOptions } from "../p2p/mod.ts";
import type { SigningKey } from "../sign/mod.ts";
import { encodeBase64, hostArch } from "../verify/mod.ts";
import { ephemeralNodeKey, helloWasmPath, verifyReceipt } from "../wasm/mod.ts";
import { FrameStream } from "./frame.ts";
import {
  DisagreeError,
  identityOf,
  JOB_PROTOCOL,
  NodeError,
  type Offer,
  Plasm,
  PlasmNode,
  type PlasmNodeOptions,
  plasmValidator,
  RejectedError,
  sha256,
  signCapability,
  signOffer,
  verifyCapability,
} from "./mod.ts";
import { capabilityKey } from "./capability.ts";
import { mdnsOffReason } from "./_p2p.ts";
import { memoryLogger } from "../core/mod.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();
const HELLO = await Deno.readFile(helloWasmPath());
const OWN_ARCH = hostArch();
const OTHER_ARCH = OWN_ARCH === "arm64" ? "amd64" : "arm64";
/** Longest the loopback network may take to settle, in ms. */
const SETTLE_TIMEOUT_MS = 10_000;

async function wat(source: string): Promise<Uint8Array> {
  const wabt = await (await import("wabt")).default();
  const m = wabt.parseWat("t.wat", source);
  try {
    return new Uint8Array(m.toBinary({}).buffer);
  } finally {
    m.destroy();
  }
}

type Opts = Omit<PlasmNodeOptions, "stateDir">;

/** Starts nodes (each allowing `key` unless it says otherwise) and runs `fn`; stops all. */
async function withNodes(
  key: SigningKey,
  opts: Opts[],
  fn: (nodes: PlasmNode[], dirs: string[]) => Promise<void>,
): Promise<void> {
  const nodes: PlasmNode[] = [];
  const dirs: string[] = [];
  try {
    for (const o of opts) {
      const dir = await tempDir("node");
      dirs.push(dir);
      nodes.push(
        await PlasmNode.start({
          allow: [key.keyid],
          statusFile: false,
          // Each dials every node before it: a mesh made by dials, not left
          // to DHT self-queries (see testing/dht.ts).
          bootstrap: nodes.flatMap((n) => n.multiaddrs()),
          ...o,
          stateDir: dir,
        }),
      );
    }
    await fn(nodes, dirs);
  } finally {
    for (const n of nodes) await n.stop();
    for (const d of dirs) await Deno.remove(d, { recursive: true }).catch(() => {});
  }
}

async function withClient(
  key: SigningKey,
  bootstrap: string[],
  fn: (p: Plasm) => Promise<void>,
): Promise<void> {
  const plasm = await Plasm.connect({ bootstrap, key });
  try {
    await fn(plasm);
  } finally {
    await plasm.close();
  }
}

/** A client that speaks the job protocol by hand (hostile submitter). */
async function withRaw(
  key: SigningKey,
  fn: (open: (node: PlasmNode) => Promise<FrameStream>) => Promise<void>,
): Promise<void> {
  const id = await identityOf(key);
  const p2p = await createPhaseNode({
    privateKey: id.libp2p as unknown as NonNullable<PhaseNodeOptions["privateKey"]>,
    listen: [],
    clientMode: true,
  });
  try {
    await fn(async (node) => {
      const { multiaddr } = await import("@multiformats/multiaddr");
      const stream = await p2p.dialProtocol(multiaddr(node.multiaddrs()[0]), JOB_PROTOCOL);
      return new FrameStream(stream, 1 << 20);
    });
  } finally {
    await p2p.stop();
  }
}

function offerFor(
  node: PlasmNode,
  key: SigningKey,
  module: Uint8Array,
  input: Uint8Array,
  over: Partial<Offer> = {},
): Offer {
  return {
    schema: 1,
    runtime: "wasi-preview1",
    module: sha256(module),
    module_size: module.length,
    input: sha256(input),
    input_size: input.length,
    limits: { memory_bytes: 64 * 1024 * 1024, timeout_ms: 2_000, output_bytes: 65_536 },
    deadline: Date.now() + 20_000,
    nonce: "00112233445566778899aabbccddeeff",
    node: node.identity.peerId,
    submitter: encodeBase64(key.publicRaw),
    ...over,
  };
}

async function helloStillRuns(plasm: Plasm, node: PlasmNode): Promise<void> {
  const r = await plasm.submit(HELLO, { input: "Hello, World", peers: [node.multiaddrs()[0]] })
    .result();
  assertEquals(dec.decode(r.output), "dlroW ,olleH");
}

Deno.test("node: three nodes on loopback; the client selects by capability (DHT and protocol), never the wrong arch, and every receipt verifies against the node's key", async () => {
  const key = ephemeralNodeKey();
  await withNodes(key, [{}, { arch: OTHER_ARCH }, {}], async (nodes) => {
    const [a, other, c] = nodes;
    // Every node knows the others before records are published.
    await waitFor(() => nodes.every((n) => n.stats().peers >= 2), SETTLE_TIMEOUT_MS, "mesh");
    for (const n of nodes) await n.publish();
    // The client knows only `a`: `other` is found through the DHT.
    await withClient(key, [a.multiaddrs()[0]], async (plasm) => {
      const caps = await plasm.nodes({ arch: OTHER_ARCH });
      assertEquals(caps.map((x) => x.peer), [other.identity.peerId]);
      const r = await plasm.submit(HELLO, { input: "abc", select: { arch: OTHER_ARCH } }).result();
      assertEquals(r.peer, other.identity.peerId);
      assertEquals(dec.decode(r.output), "cba");
      for (let i = 0; i < 4; i++) {
        const own = await plasm.submit(HELLO, { input: "xy", select: { arch: OWN_ARCH } })
          .result();
        assert(own.peer !== other.identity.peerId, "the wrong arch was chosen");
        assert([a.identity.peerId, c.identity.peerId].includes(own.peer));
        assertEquals(
          own.receipt.node,
          nodes.find((n) => n.identity.peerId === own.peer)!.identity.keyid,
        );
        assertEquals(own.receipt.output, sha256(enc.encode("yx")));
        assertEquals(own.receipt.module, sha256(HELLO));
        // Anyone can re-check it from its bytes.
        assertEquals(verifyReceipt(own.receiptBytes, "r").output, own.receipt.output);
      }
      await assertRejects(
        plasm.submit(HELLO, { select: { arch: OWN_ARCH, minMemoryMb: 1 << 30 } }).result(),
        NodeError,
        "no reachable node",
      );
    });
  });
});

Deno.test("TM-22 hostile submitter: an unauthorized key is rejected, and so is an offer signed by another key than the connection's", async () => {
  const allowed = ephemeralNodeKey();
  const stranger = ephemeralNodeKey();
  await withNodes(allowed, [{}], async ([node]) => {
    await withClient(stranger, [], async (plasm) => {
      const err = await assertRejects(
        plasm.submit(HELLO, { peers: [node.multiaddrs()[0]] }).result(),
        RejectedError,
      );
      assertEquals(err.reason, "unauthorized");
    });
    // The stranger replays an offer the allowed key signed: refused.
    await withRaw(stranger, async (open) => {
      const fs = await open(node);
      const offer = offerFor(node, allowed, HELLO, new Uint8Array(0));
      await fs.writeJson({ type: "offer", offer, sig: signOffer(offer, allowed.key), input: "" });
      const d = await fs.readJson(4096, 5_000, "decision");
      assertEquals([d.type, d.reason], ["reject", "unauthorized"]);
    });
    assertEquals(node.stats().refusals.unauthorized, 2);
    assertEquals(node.stats().finished, 0);
  });
});

Deno.test("TM-22 hostile submitter: an oversized module, an input over the cap and limits above the ceilings are rejected over-limit; an oversized frame is cut", async () => {
  const key = ephemeralNodeKey();
  const limits = { maxModuleBytes: 4096, maxInputBytes: 1024, maxTimeoutMs: 6_000 };
  await withNodes(key, [{ limits }], async ([node]) => {
    const peers = [node.multiaddrs()[0]];
    await withClient(key, [], async (plasm) => {
      for (
        const [module, opts] of [
          [new Uint8Array(4097), {}],
          [HELLO, { input: new Uint8Array(1025) }],
          [HELLO, { timeoutMs: 6_001 }],
          [HELLO, { memoryMb: 1024 }],
        ] as const
      ) {
        const err = await assertRejects(
          plasm.submit(module, { ...opts, peers }).result(),
          RejectedError,
        );
        assertEquals(err.reason, "over-limit");
      }
      assertEquals(node.stats().refusals["over-limit"], 4);
      // An offer frame above the cap (input cap + overhead) is cut, not buffered.
      await withRaw(key, async (open) => {
        const fs = await open(node);
        await fs.write(new Uint8Array(64 * 1024));
        await assertRejects(fs.read(4096, 5_000, "decision"), NodeError);
      });
      await helloStillRuns(plasm, node);
    });
  });
});

Deno.test("TM-22 hostile submitter: a module whose bytes do not match the offered digest is never run or stored", async () => {
  const key = ephemeralNodeKey();
  await withNodes(key, [{}], async ([node]) => {
    const evil = HELLO.slice();
    evil[evil.length - 1] ^= 0xff;
    await withRaw(key, async (open) => {
      const fs = await open(node);
      const offer = offerFor(node, key, HELLO, new Uint8Array(0));
      await fs.writeJson({ type: "offer", offer, sig: signOffer(offer, key.key), input: "" });
      const d = await fs.readJson(4096, 5_000, "decision");
      assertEquals([d.type, d.need_module], ["accept", true]);
      await fs.write(evil);
      const r = await fs.readJson(4096, 5_000, "result");
      assertEquals(r.type, "error");
    });
    assertEquals(node.stats().finished, 0);
    assertEquals(node.stats().failed, 1);
    // The digest is still unknown to the node: the genuine module is asked for again.
    await withClient(key, [], async (plasm) => await helloStillRuns(plasm, node));
  });
});

Deno.test("TM-22 hostile submitter: a stream that stalls mid-transfer is cut at its deadline; the node stays responsive", async () => {
  const key = ephemeralNodeKey();
  await withNodes(key, [{}], async ([node]) => {
    await withRaw(key, async (open) => {
      const fs = await open(node);
      const module = new Uint8Array(512 * 1024); // transfer deadline: 2 s + 0.5 s
      const offer = offerFor(node, key, module, new Uint8Array(0));
      await fs.writeJson({ type: "offer", offer, sig: signOffer(offer, key.key), input: "" });
      assertEquals((await fs.readJson(4096, 5_000, "decision")).type, "accept");
      // A header announcing the whole module, then a trickle, then nothing.
      const head = new Uint8Array(4 + 100);
      new DataView(head.buffer).setUint32(0, module.length);
      fs.stream.send(head);
      const t0 = performance.now();
      await withClient(key, [], async (plasm) => await helloStillRuns(plasm, node));
      await waitFor(() => node.stats().failed === 1, 6_000, "the stalled stream cut");
      const cutAfter = performance.now() - t0;
      assert(cutAfter < 4_000, `cut after ${cutAfter} ms`);
    });
  });
});

Deno.test("TM-22 hostile submitter: a flood of offers meets a bounded queue and reasoned busy rejects; the node stays responsive", async () => {
  const key = ephemeralNodeKey();
  const spin = await wat(`(module (func (export "_start") (loop $l (br $l))))`);
  await withNodes(key, [{ limits: { maxConcurrentJobs: 1, queueLength: 2 } }], async ([node]) => {
    await withClient(key, [], async (plasm) => {
      const peers = [node.multiaddrs()[0]];
      const jobs = Array.from(
        { length: 8 },
        () => plasm.submit(spin, { timeoutMs: 300, peers }).result(),
      );
      const settled = await Promise.allSettled(jobs);
      const ok = settled.filter((s) => s.status === "fulfilled");
      const busy = settled.filter((s) =>
        s.status === "rejected" && s.reason instanceof RejectedError && s.reason.reason === "busy"
      );
      assertEquals(ok.length, 3, "one running and two queued");
      assertEquals(busy.length, 5, "every other offer gets a reasoned reject");
      for (const s of ok) {
        assertEquals((s as PromiseFulfilledResult<{ outcome: string }>).value.outcome, "timeout");
      }
      assertEquals(node.stats().refusals.busy, 5);
      await helloStillRuns(plasm, node);
    });
  });
});

Deno.test("TM-16 hostile WASM job: an infinite loop, a memory bomb and deep recursion run remotely stop within their limits, and the signed receipt says so", async () => {
  const key = ephemeralNodeKey();
  const cases: [string, Uint8Array, string][] = [
    ["loop", await wat(`(module (func (export "_start") (loop $l (br $l))))`), "timeout"],
    [
      "bomb",
      await wat(`(module (memory 1)
        (func (export "_start") (loop $l (br_if $l (i32.ne (memory.grow (i32.const 16)) (i32.const -1)))) unreachable))`),
      "memory",
    ],
    [
      "recursion",
      await wat(`(module (func $f (export "_start") (call $f)))`),
      "trap",
    ],
  ];
  await withNodes(key, [{}], async ([node]) => {
    await withClient(key, [], async (plasm) => {
      for (const [name, module, outcome] of cases) {
        const t0 = performance.now();
        const r = await plasm.submit(module, {
          timeoutMs: 500,
          memoryMb: 8,
          peers: [node.multiaddrs()[0]],
        }).result();
        assertEquals(r.outcome, outcome, name);
        assertEquals(r.receipt.outcome, outcome, name);
        assertEquals(r.receipt.limits, { memoryBytes: 8 * 1024 * 1024, timeoutMs: 500 });
        assert(performance.now() - t0 < 3_000, `${name} took ${performance.now() - t0} ms`);
      }
      await helloStillRuns(plasm, node);
    });
  });
});

Deno.test("TM-23 lying node: a wrong output with a valid signature is caught by reexecute, with both signed receipts", async () => {
  const key = ephemeralNodeKey();
  const lie = () => enc.encode("a lie");
  await withNodes(key, [{ unsafeTestHooks: { output: lie } }, {}], async ([liar, honest]) => {
    await withClient(key, [], async (plasm) => {
      // Without reexecute the lie verifies: it is the liar's signed statement.
      const alone = await plasm.submit(HELLO, { input: "abc", peers: [liar.multiaddrs()[0]] })
        .result();
      assertEquals(dec.decode(alone.output), "a lie");
      const err = await assertRejects(
        plasm.submit(HELLO, {
          input: "abc",
          peers: [liar.multiaddrs()[0]],
          verify: "reexecute",
          reexecuteOn: honest.multiaddrs()[0],
        }).result(),
        DisagreeError,
      );
      const a = verifyReceipt(err.first, "first"), b = verifyReceipt(err.second, "second");
      assertEquals([a.node, b.node], [liar.identity.keyid, honest.identity.keyid]);
      assertEquals([a.output, b.output], [sha256(enc.encode("a lie")), sha256(enc.encode("cba"))]);
      assertEquals(a.module, b.module);
      assertEquals(a.input, b.input);
      // Local re-execution catches it too.
      await assertRejects(
        plasm.submit(HELLO, {
          input: "abc",
          peers: [liar.multiaddrs()[0]],
          verify: "reexecute",
          reexecuteOn: "local",
        }).result(),
        DisagreeError,
      );
      const same = await plasm.submit(HELLO, {
        input: "abc",
        peers: [honest.multiaddrs()[0]],
        verify: "reexecute",
        reexecuteOn: "local",
      }).result();
      assertEquals(same.second?.receipt.output, same.receipt.output);
    });
  });
});

Deno.test("TM-23 lying node: output that differs from what the receipt signs is refused, and the SDK fails over", async () => {
  const key = ephemeralNodeKey();
  const hooks = { sent: () => enc.encode("swapped") };
  await withNodes(key, [{ unsafeTestHooks: hooks }, {}], async ([liar, honest]) => {
    await withClient(key, [], async (plasm) => {
      await assertRejects(
        plasm.submit(HELLO, { input: "abc", peers: [liar.multiaddrs()[0]] }).result(),
        NodeError,
        "its output digest is not the output received",
      );
      const r = await plasm.submit(HELLO, {
        input: "abc",
        peers: [liar.multiaddrs()[0], honest.multiaddrs()[0]],
      }).result();
      assertEquals(r.peer, honest.identity.peerId);
      assertEquals(r.failures.length, 1);
    });
  });
});

Deno.test("TM-23 lying node: a node that vanishes mid-job is replaced by the next capable node within the deadline; cancellation is honoured", async () => {
  const key = ephemeralNodeKey();
  await withNodes(key, [{}, { unsafeTestHooks: { vanish: true } }, {}], async (nodes) => {
    const [, gone, honest] = nodes;
    await withClient(key, [], async (plasm) => {
      const t0 = performance.now();
      const r = await plasm.submit(HELLO, {
        input: "abc",
        timeoutMs: 2_000,
        peers: [gone.multiaddrs()[0], honest.multiaddrs()[0]],
      }).result();
      assertEquals(r.peer, honest.identity.peerId);
      assertEquals(r.failures.length, 1);
      assert(performance.now() - t0 < 2_000, "failover within the job's timeout");
      const spin = await wat(`(module (func (export "_start") (loop $l (br $l))))`);
      const ac = new AbortController();
      const job = plasm.submit(spin, {
        timeoutMs: 5_000,
        peers: [honest.multiaddrs()[0]],
        signal: ac.signal,
      });
      setTimeout(() => ac.abort(), 200);
      const err = await assertRejects(job.result(), NodeError);
      assertEquals(err.code, "E_CANCELLED");
    });
  });
});

Deno.test("TM-24 capability poisoning: records not signed by their peer are ignored by clients and refused by DHT validators", async () => {
  const key = ephemeralNodeKey();
  const impostor = await identityOf(ephemeralNodeKey());
  const forge = (real: Uint8Array) => {
    // Claims the other arch: signed by a key that is not the serving peer's.
    const cap = verifyCapability(real);
    if (typeof cap === "string") throw new Error(cap);
    return signCapability(impostor, { ...cap, arch: OTHER_ARCH });
  };
  const tamper = (real: Uint8Array) =>
    enc.encode(dec.decode(real).replace(`"arch":"${OWN_ARCH}"`, `"arch":"${OTHER_ARCH}"`));
  await withNodes(
    key,
    [{}, { unsafeTestHooks: { capability: forge } }, { unsafeTestHooks: { capability: tamper } }],
    async ([a, forger, tamperer]) => {
      await withClient(key, [a, forger, tamperer].map((n) => n.multiaddrs()[0]), async (plasm) => {
        await waitFor(() => plasm.nodes().then((c) => c.length >= 1), SETTLE_TIMEOUT_MS, "nodes");
        const caps = await plasm.nodes({ arch: OTHER_ARCH });
        assertEquals(caps.map((c) => c.peer), [], "no forged record is believed");
        // Their genuine records (in the DHT) still count: they are signed by their peers.
        const own = await plasm.nodes({ arch: OWN_ARCH });
        assert(own.some((c) => c.peer === a.identity.peerId));
        assert(own.every((c) => c.arch === OWN_ARCH));
        await assertRejects(
          plasm.submit(HELLO, { select: { arch: OTHER_ARCH } }).result(),
          NodeError,
          "no reachable node",
        );
      });
      const validate = plasmValidator();
      const record = a.capability();
      await validate(capabilityKey(a.identity.peerId), record);
      await assertRejects(validate(capabilityKey(forger.identity.peerId), record), Error, "names");
      await assertRejects(validate(capabilityKey(a.identity.peerId), tamper(record)), Error);
      await assertRejects(validate(capabilityKey(a.identity.peerId), forge(record)), Error);
    },
  );
});

Deno.test("TM-22 hostile submitter: a job whose submitter cancels (AbortSignal) or closes its side of the stream stops on the node at once, queued or running, and frees its slot; the closing submitter gets a signed receipt saying cancelled", async () => {
  const key = ephemeralNodeKey();
  const spin = await wat(`(module (func (export "_start") (loop $l (br $l))))`);
  /**
   * Far above the cancellation's own latency (a yamux reset crossing a loaded
   * 2-core machine took over 2 s once), far below the spinning job's timeout, in ms.
   */
  const STOP_WITHIN_MS = 5_000;
  const SPIN_TIMEOUT_MS = 20_000;
  await withNodes(key, [{ limits: { maxConcurrentJobs: 1 } }], async ([node]) => {
    const peers = [node.multiaddrs()[0]];
    await withClient(key, [], async (plasm) => {
      const ac = new AbortController();
      const job = plasm.submit(spin, { timeoutMs: SPIN_TIMEOUT_MS, peers, signal: ac.signal });
      await waitFor(() => node.stats().running === 1, SETTLE_TIMEOUT_MS, "the job runs");
      // A queued job that is cancelled never starts and leaves the queue at once.
      const queuedAc = new AbortController();
      const queuedJob = plasm.submit(HELLO, { peers, signal: queuedAc.signal });
      await waitFor(() => node.stats().queued === 1, SETTLE_TIMEOUT_MS, "the second job queues");
      queuedAc.abort();
      assertEquals((await assertRejects(queuedJob.result(), NodeError)).code, "E_CANCELLED");
      await waitFor(
        () => node.stats().queued === 0 && node.stats().cancelled === 1,
        STOP_WITHIN_MS,
        "the queued job leaves",
      );
      assertEquals(node.stats().running, 1, "the running job is not the one cancelled");
      const t0 = performance.now();
      ac.abort();
      assertEquals((await assertRejects(job.result(), NodeError)).code, "E_CANCELLED");
      await waitFor(() => node.stats().running === 0, STOP_WITHIN_MS, "the job stops");
      // The one slot is free again: hello does not wait for the spinning job's timeout.
      await helloStillRuns(plasm, node);
      assert(performance.now() - t0 < STOP_WITHIN_MS, "cancelled and the slot reused at once");
      assertEquals(node.stats().cancelled, 2);
    });
    await withRaw(key, async (open) => {
      const fs = await open(node);
      const offer = offerFor(node, key, spin, new Uint8Array(0), {
        limits: { memory_bytes: 65_536, timeout_ms: SPIN_TIMEOUT_MS, output_bytes: 1024 },
        deadline: Date.now() + SPIN_TIMEOUT_MS + 5_000,
      });
      await fs.writeJson({ type: "offer", offer, sig: signOffer(offer, key.key), input: "" });
      const d = await fs.readJson(4096, 5_000, "decision");
      assertEquals(d.type, "accept");
      if (d.need_module) await fs.write(spin);
      await waitFor(() => node.stats().running === 1, SETTLE_TIMEOUT_MS, "the raw job runs");
      const t0 = performance.now();
      await fs.stream.close(); // half-close: done sending, still reading
      const r = await fs.readJson(1 << 20, STOP_WITHIN_MS, "result");
      assert(performance.now() - t0 < STOP_WITHIN_MS);
      assertEquals([r.type, r.outcome], ["result", "cancelled"]);
      const receipt = verifyReceipt(
        Uint8Array.from(atob(String(r.receipt)), (c) => c.charCodeAt(0)),
        "r",
      );
      assertEquals([receipt.outcome, receipt.node], ["cancelled", node.identity.keyid]);
      assertEquals(node.stats().cancelled, 3);
      assertEquals(node.stats().running, 0);
    });
  });
});

Deno.test("TM-22 hostile submitter: offers that arrive together never run more than maxConcurrentJobs jobs at once", async () => {
  const key = ephemeralNodeKey();
  const spin = await wat(`(module (func (export "_start") (loop $l (br $l))))`);
  const JOBS = 6;
  await withNodes(
    key,
    [{ limits: { maxConcurrentJobs: 1, queueLength: JOBS } }],
    async ([node]) => {
      await withClient(key, [], async (plasm) => {
        let most = 0;
        const probe = setInterval(() => most = Math.max(most, node.stats().running), 1);
        try {
          const results = await Promise.all(
            Array.from(
              { length: JOBS },
              () => plasm.submit(spin, { timeoutMs: 150, peers: [node.multiaddrs()[0]] }).result(),
            ),
          );
          assert(results.every((r) => r.outcome === "timeout"));
        } finally {
          clearInterval(probe);
        }
        assertEquals(most, 1, "one slot, one job at a time");
      });
    },
  );
});

Deno.test("TM-22 hostile submitter: a job worker that ran a submitter's job never runs another submitter's job or another module; only that submitter's same module reuses it", async () => {
  const alice = ephemeralNodeKey(), mallory = ephemeralNodeKey();
  const noop = await wat(`(module (memory 1) (func (export "_start")))`);
  const ran: { submitter: string; module: string; id: string; job: number }[] = [];
  const opts = (fresh: boolean): Opts => ({
    allow: [alice.keyid, mallory.keyid],
    // Room to keep a worker for each of the four (submitter, module) pairs.
    limits: { maxConcurrentJobs: 4 },
    freshWorkerPerJob: fresh,
    unsafeTestHooks: {
      ran: ({ submitter, module, worker }) => {
        assert(worker, "every job here reports its worker");
        ran.push({ submitter, module, ...worker });
      },
    },
  });
  for (const fresh of [false, true]) {
    ran.length = 0;
    await withNodes(alice, [opts(fresh)], async ([node]) => {
      const peers = [node.multiaddrs()[0]];
      await withClient(alice, [], async (a) => {
        await withClient(mallory, [], async (m) => {
          // Mallory's module first, then everyone's jobs interleaved.
          const plan: [Plasm, Uint8Array][] = [
            [m, noop],
            [a, noop],
            [m, noop],
            [a, HELLO],
            [a, noop],
            [m, HELLO],
            [a, noop],
          ];
          for (const [client, module] of plan) {
            const r = await client.submit(module, { input: "x", peers, timeoutMs: 5_000 })
              .result();
            assertEquals(r.outcome, "ok");
          }
        });
      });
    });
    assertEquals(ran.length, 7);
    const byWorker = new Map<string, Set<string>>();
    for (const r of ran) {
      const classes = byWorker.get(r.id) ?? new Set();
      classes.add(`${r.submitter} ${r.module}`);
      byWorker.set(r.id, classes);
    }
    for (const [id, classes] of byWorker) {
      assertEquals(classes.size, 1, `worker ${id} ran jobs of ${[...classes].join(" and ")}`);
    }
    const reused = ran.filter((r) => r.job > 1).length;
    if (fresh) assertEquals(reused, 0, "--fresh-worker-per-job: every job in a new worker");
    else {
      // The same submitter's same module did reuse its worker (m noop, a noop twice).
      assertEquals(reused, 3, JSON.stringify(ran));
    }
  }
});

Deno.test("node: mDNS stays off, with an mdns_off warning, when every listen address is loopback or the interface list cannot be read; the node runs without it", async () => {
  // A LAN address with a readable interface list: mDNS runs.
  assertEquals(mdnsOffReason(["/ip4/0.0.0.0/tcp/4101"], () => []), undefined);
  assertEquals(
    mdnsOffReason(["/ip4/127.0.0.1/tcp/0", "/ip4/192.0.2.1/tcp/0"], () => []),
    undefined,
  );
  // Loopback only: nothing on the LAN could dial it, so it stays off the LAN.
  assert(
    /loopback/.test(mdnsOffReason(["/ip4/127.0.0.1/tcp/0", "/ip6/::1/tcp/0"], () => [])!.reason),
  );
  // The interface list throws (a systemd unit without AF_NETLINK, measured in test:deb):
  // @libp2p/mdns would throw from a socket callback and end the process.
  const denied = () => {
    throw new Error("Address family not supported by protocol (os error 97)");
  };
  const off = mdnsOffReason(["/ip4/0.0.0.0/tcp/0"], denied)!;
  assert(
    /interface list/.test(off.reason) && /--no-mdns/.test(off.hint ?? ""),
    JSON.stringify(off),
  );

  // A node asked for mDNS with an unreadable interface list starts, warns and answers jobs.
  const key = ephemeralNodeKey();
  const logger = memoryLogger();
  await withNodes(key, [{
    mdns: true,
    networkInterfaces: denied,
    logger,
    listen: ["/ip4/0.0.0.0/tcp/0"],
  }], async ([node]) => {
    const warned = logger.entries.find((e) => e.event === "mdns_off");
    assertEquals(warned?.level, "warn");
    assertEquals(warned?.fields.error, "Address family not supported by protocol (os error 97)");
    await withClient(key, node.multiaddrs(), (plasm) => helloStillRuns(plasm, node));
  });
});
