/**
 * Fuzz targets for mDNS packets and TXT records, WASM section rewriters,
 * policy files and kernel command lines, step result lines, device trees.
 *
 * @module
 */
import fc from "fast-check";
import { Buffer } from "node:buffer";
import dnsPacket from "dns-packet";
import { applyCmdline, DEFAULT_POLICY, parsePolicy, splitCmdline } from "../client/policy.ts";
import { ClientError } from "../client/errors.ts";
import { decodeDiscoverResult, decodeFetchResult } from "../client/results.ts";
import { stepResult } from "../core/mod.ts";
import { type Fdt, type FdtNode, parseFdt, writeFdt, zeroKaslrSeed } from "../kexec/fdt.ts";
import { KexecError } from "../kexec/errors.ts";
import { decodeKexecLoadResult } from "../kexec/result.ts";
import { assemble, responseRecords } from "../mdns/querier.ts";
import { answerQuery } from "../mdns/responder.ts";
import {
  instanceRecords,
  MAX_PACKET_BYTES,
  MAX_TXT_ENTRIES,
  SERVICE_TYPE,
  type ServiceInstance,
} from "../mdns/service.ts";
import { watToWasm } from "../wasm/build.ts";
import { capMemory, instrumentGrow, ModuleLimitError } from "../wasm/sections.ts";
import { check, codeOf, type FuzzTarget, only } from "./harness.ts";
import { bytesNear, textNear } from "./mutate.ts";

const enc = new TextEncoder();
const valid = (b: Uint8Array) => WebAssembly.validate(b as Uint8Array<ArrayBuffer>);

const INSTANCE: ServiceInstance = {
  label: "host1-stable-amd64",
  host: "host1.local",
  port: 8080,
  addresses: ["192.0.2.7"],
  txt: { arch: "amd64", channel: "stable", version: "2026.11.20", manifest_cid: "bafkrei" },
};

function responsePacket(instances: readonly ServiceInstance[]): Uint8Array {
  const answers = [];
  const additionals = [];
  for (const s of instances) {
    const r = instanceRecords(s, 1);
    answers.push(r.ptr);
    additionals.push(r.srv, r.txt, ...r.a);
  }
  return new Uint8Array(
    dnsPacket.encode({
      type: "response",
      id: 0,
      flags: dnsPacket.AUTHORITATIVE_ANSWER,
      answers,
      additionals,
    }),
  );
}

function queryPacket(name: string, type: "PTR" | "SRV" | "TXT" | "A" | "ANY"): Uint8Array {
  return new Uint8Array(
    dnsPacket.encode({ type: "query", id: 7, questions: [{ type: type as "A", name }] }),
  );
}

const mdnsPacket: FuzzTarget = {
  name: "mdns-packet",
  parser: "mdns/querier.ts: responseRecords + assemble; mdns/responder.ts: answerQuery",
  properties: [
    "any datagram: the querier's intake and assembly never throw, and keep at most MAX_INSTANCES services",
    "any datagram: the responder drops, ignores or answers it, never throws (TM-07: never fatal)",
    "every answer the responder sends decodes as a DNS response",
  ],
  build() {
    const seeds = [
      responsePacket([INSTANCE]),
      responsePacket([INSTANCE, { ...INSTANCE, label: "b", host: "b.local" }]),
      queryPacket(SERVICE_TYPE, "PTR"),
      queryPacket(`${INSTANCE.label}.${SERVICE_TYPE}`, "ANY"),
      queryPacket(INSTANCE.host, "A"),
      queryPacket("_services._dns-sd._udp.local", "PTR"),
    ];
    return Promise.resolve(fc.property(bytesNear(seeds, 600), fc.boolean(), (bytes, legacy) => {
      const records = only(() => false, () => responseRecords(bytes))!;
      const found = only(
        () => false,
        () => assemble(records.map((answer) => ({ answer, from: "192.0.2.9" })), SERVICE_TYPE),
      )!;
      check(found.length <= 64, "more services than MAX_INSTANCES");
      const reply = only(() => false, () => answerQuery(bytes, legacy, [INSTANCE]));
      if (reply instanceof Uint8Array) {
        check(dnsPacket.decode(Buffer.from(reply)).type === "response", "reply is not a response");
      }
      if (bytes.length > MAX_PACKET_BYTES) {
        check(reply === "dropped", "oversized packet not dropped");
      }
    }));
  },
};

const mdnsTxt: FuzzTarget = {
  name: "mdns-txt",
  parser:
    "mdns/service.ts: instanceRecords (TXT encode) -> dns-packet -> mdns/querier.ts: assemble (TXT decode)",
  properties: [
    "round trip: what the responder advertises (keys, values, port, host, addresses) is what the querier assembles",
  ],
  build() {
    const txt = fc.dictionary(
      fc.stringMatching(/^[a-z0-9_]{1,16}$/),
      fc.string({ maxLength: 60 }),
      { maxKeys: MAX_TXT_ENTRIES, noNullPrototype: true },
    ).filter((d) => !Object.keys(d).some((k) => k in {}));
    const instance = fc.record({
      label: fc.stringMatching(/^[a-z0-9][a-z0-9-]{0,30}$/),
      host: fc.stringMatching(/^[a-z0-9][a-z0-9-]{0,20}\.local$/),
      port: fc.integer({ min: 1, max: 65535 }),
      addresses: fc.uniqueArray(fc.ipV4(), { maxLength: 3 }),
      txt,
    });
    return Promise.resolve(fc.property(instance, (s) => {
      const records = only(() => false, () => responseRecords(responsePacket([s])))!;
      const [got] = assemble(
        records.map((answer) => ({ answer, from: "192.0.2.9" })),
        SERVICE_TYPE,
      );
      check(got !== undefined, "instance lost");
      check(got.host === s.host && got.port === s.port, "host or port changed");
      check(
        JSON.stringify([...got.addresses].sort()) === JSON.stringify([...s.addresses].sort()),
        "addresses",
      );
      const want = Object.fromEntries(
        Object.entries(s.txt).filter(([k, v]) => enc.encode(`${k}=${v}`).length <= 255),
      );
      check(
        JSON.stringify(Object.entries(got.txt).sort()) ===
          JSON.stringify(Object.entries(want).sort()),
        `txt ${JSON.stringify(got.txt)} vs ${JSON.stringify(want)}`,
      );
    }));
  },
};

const WAT_SEEDS = [
  `(module (memory 1) (func (export "_start") (drop (memory.grow (i32.const 1)))))`,
  `(module (memory 2 10) (table 4 funcref) (global $g (mut i32) (i32.const 0))
     (func $f (param i32) (result i32) (local i32) (memory.grow (local.get 0)))
     (func (export "_start") (drop (call $f (i32.const 2))) (global.set $g (i32.const 1))))`,
  `(module (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
     (memory (export "memory") 1)
     (func (export "_start") (loop $l (br_if $l (i32.eqz (memory.grow (i32.const 0))))) (call $exit (i32.const 0))))`,
  `(module (type (func (param i32) (result i32))) (table 2 100 funcref) (func (export "_start")))`,
  `(module (memory 1) (data (i32.const 0) "hello") (func (export "_start") (block (br 0)) (drop (i32.load (i32.const 0)))))`,
];

async function wasmSeeds(): Promise<Uint8Array[]> {
  return await Promise.all(WAT_SEEDS.map((w, i) => watToWasm(`seed${i}.wat`, w)));
}

const wasmLimits: FuzzTarget = {
  name: "wasm-limits",
  parser: "wasm/_limits.ts: capMemory (sections, LEB128, memory and table limits)",
  properties: [
    "any module bytes: a capped module or ModuleLimitError, nothing else",
    "a valid module that is capped stays valid, and its memory's maximum is at most the cap",
  ],
  async build() {
    const seeds = await wasmSeeds();
    return fc.property(bytesNear(seeds, 400), fc.integer({ min: 1, max: 65536 }), (bytes, cap) => {
      const out = only((e) => e instanceof ModuleLimitError, () => capMemory(bytes, cap));
      if (!out || !valid(bytes)) return;
      check(valid(out.bytes), "capMemory made a valid module invalid");
      if (out.memory) check(out.memory.maximum <= cap, "memory maximum above the cap");
    });
  },
};

const wasmGrow: FuzzTarget = {
  name: "wasm-grow",
  parser: "wasm/_grow.ts: instrumentGrow (code section rewriter)",
  properties: [
    "any module bytes: never throws, and never needs its safety net ('rewriter failure' is a bug)",
    "a valid module that is instrumented stays valid",
  ],
  async build() {
    const seeds = await wasmSeeds();
    return fc.property(bytesNear(seeds, 400), (bytes) => {
      const r = only(() => false, () => instrumentGrow(bytes))!;
      check(!r.reason.startsWith("rewriter failure"), r.reason);
      if (r.instrumented && valid(bytes)) {
        check(valid(r.bytes), "instrumentGrow made a valid module invalid");
      }
    });
  },
};

const POLICY_SEEDS = [
  'mode = "internet"\nchannel = "stable"\ncache_enabled = true\nmin_version = "2026.1"\nallow_tor = false\n',
  'provider = "http://192.0.2.1:8080"\narch = "arm64"\nbootstrap = ["/ip4/127.0.0.1/tcp/4001/p2p/12D3KooW"]\n',
  '# comment\nmode = "private"\n[table]\nx = 1\n',
  'a.b.c.d.e = 1\nchannel = """x"""\n',
];

const policy: FuzzTarget = {
  name: "policy",
  parser: "client/policy.ts: parsePolicy (smol-toml + strict schema)",
  properties: ["any text: a policy or ClientError(E_POLICY), nothing else"],
  build() {
    return Promise.resolve(fc.property(textNear(POLICY_SEEDS, 400), (text) => {
      only(codeOf(ClientError, "E_POLICY"), () => parsePolicy(text));
    }));
  },
};

const CMDLINE_SEEDS = [
  "console=ttyS0 phase.mode=local phase.channel=stable quiet",
  "phase.provider=http://192.0.2.1:8080 phase.arch=arm64 phase.min_version=1.2",
  'phase.bootstrap=/ip4/127.0.0.1/tcp/4001/p2p/12D3KooW,/ip4/10.0.0.1/tcp/1 "a b" phase.x=y',
  'root=/dev/sda1 phase.mode="private" init=/init',
];

const cmdline: FuzzTarget = {
  name: "cmdline",
  parser: "client/policy.ts: splitCmdline + applyCmdline",
  properties: [
    "any command line: a policy or ClientError, nothing else",
    "round trip: words without blanks or quotes, joined by any blanks (quoted when they hold one), split back to the same words",
  ],
  build() {
    const word = fc.string({
      unit: fc.constantFrom(..."abz09.=/:-_,"),
      minLength: 1,
      maxLength: 12,
    });
    const words = fc.array(fc.tuple(word, fc.option(word, { nil: undefined })), { maxLength: 6 })
      .map((ws) => ws.map(([a, b]) => (b === undefined ? a : `${a} ${b}`)));
    const blanks = fc.string({
      unit: fc.constantFrom(" ", "\t", "\n"),
      minLength: 1,
      maxLength: 3,
    });
    return Promise.resolve(
      fc.property(textNear(CMDLINE_SEEDS, 300), words, blanks, (text, ws, sep) => {
        only(() => false, () => splitCmdline(text));
        only(codeOf(ClientError), () => applyCmdline(DEFAULT_POLICY, text));
        const line = ws.map((w) => (w.includes(" ") ? `"${w}"` : w)).join(sep);
        check(
          JSON.stringify(splitCmdline(line)) === JSON.stringify(ws),
          `'${line}' splits otherwise`,
        );
      }),
    );
  },
};

const DISCOVER_LINE = JSON.stringify({
  candidates: [{
    manifestUrl: "http://192.0.2.1/m.json",
    mirrors: ["http://m/"],
    providers: [],
    source: "mdns",
    version: "1.2",
    manifestCid: "bafk",
    name: "x",
  }],
  rejected: [{ url: "http://x/", source: "manual", reason: "r", captivePortal: false, hint: "h" }],
  steps: [{ step: "lan", ms: 3, found: 1 }, { step: "wan", ms: 0, found: 0, error: "e" }],
});
const FETCH_LINE = JSON.stringify({
  ok: true,
  version: "1.2",
  channel: "stable",
  arch: "amd64",
  manifest: "/c/m",
  source: "http://x/",
  artifacts: {
    kernel: { path: "/c/k", digest: "sha256:" + "a".repeat(64), size: 5, cached: false },
  },
});
const KEXEC_LINE = JSON.stringify({
  ok: true,
  channel: "stable",
  arch: "amd64",
  version: "1.2",
  method: "file",
  argv: ["kexec", "-s"],
  dryRun: true,
});

const stepResults: FuzzTarget = {
  name: "step-results",
  parser:
    "client/results.ts: decodeDiscoverResult, decodeFetchResult; kexec/result.ts: decodeKexecLoadResult",
  properties: [
    "any stdout: a decoded result or StepOutputError(E_STEP), nothing else",
    "round trip: a decoded result printed again decodes to the same value",
  ],
  build() {
    const decoders = [decodeDiscoverResult, decodeFetchResult, decodeKexecLoadResult] as const;
    const text = textNear([DISCOVER_LINE, FETCH_LINE, KEXEC_LINE, `note\n${KEXEC_LINE}\n`], 800);
    return Promise.resolve(fc.property(text, (stdout) => {
      for (const decode of decoders) {
        const v = only(codeOf(stepResult.StepOutputError, "E_STEP"), () => decode(stdout));
        if (v === undefined) continue;
        const again = only(() => false, () => decode(JSON.stringify(v)));
        check(JSON.stringify(again) === JSON.stringify(v), "result does not round-trip");
      }
    }));
  },
};

function fdtNodeOf(depth: number): fc.Arbitrary<FdtNode> {
  return fc.record({
    name: fc.string({ unit: fc.constantFrom(..."abcxyz0189,-@_"), minLength: 1, maxLength: 12 }),
    properties: fc.array(
      fc.record({
        name: fc.string({ unit: fc.constantFrom(..."abc-#,"), minLength: 1, maxLength: 10 }),
        value: fc.uint8Array({ maxLength: 24 }),
      }),
      { maxLength: 4 },
    ),
    children: depth === 0 ? fc.constant([]) : fc.array(fdtNodeOf(depth - 1), { maxLength: 3 }),
  });
}

const fdtNode = fdtNodeOf(3);

const fdtTree: fc.Arbitrary<Fdt> = fc.record({
  version: fc.constant(17),
  lastCompVersion: fc.constant(16),
  bootCpuidPhys: fc.nat(),
  reserved: fc.array(
    fc.record({
      address: fc.bigInt({ min: 1n, max: 2n ** 64n - 1n }),
      size: fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
    }),
    { maxLength: 2 },
  ),
  root: fdtNode.map((n) => ({ ...n, name: "" })),
});

function sameTree(a: FdtNode, b: FdtNode): boolean {
  return a.name === b.name && a.properties.length === b.properties.length &&
    a.properties.every((p, i) =>
      p.name === b.properties[i].name && p.value.join() === b.properties[i].value.join()
    ) &&
    a.children.length === b.children.length &&
    a.children.every((c, i) => sameTree(c, b.children[i]));
}

const fdt: FuzzTarget = {
  name: "fdt",
  parser: "kexec/fdt.ts: parseFdt, zeroKaslrSeed",
  properties: [
    "any bytes: a tree or KexecError(E_FDT), nothing else (zeroKaslrSeed too)",
    "round trip: writeFdt -> parseFdt gives the same tree, header fields and reservations",
  ],
  build() {
    const seeds = [
      writeFdt({
        version: 17,
        lastCompVersion: 16,
        bootCpuidPhys: 0,
        reserved: [{ address: 4096n, size: 8192n }],
        root: {
          name: "",
          properties: [{ name: "compatible", value: enc.encode("phase\0") }],
          children: [{
            name: "chosen",
            properties: [{ name: "kaslr-seed", value: new Uint8Array(8).fill(7) }, {
              name: "rng-seed",
              value: new Uint8Array(4),
            }],
            children: [],
          }],
        },
      }),
    ];
    const input = fc.oneof(
      { weight: 3, arbitrary: bytesNear(seeds, 400).map((bytes) => ({ bytes, tree: undefined })) },
      { weight: 1, arbitrary: fdtTree.map((tree) => ({ bytes: writeFdt(tree), tree })) },
      {
        weight: 1,
        arbitrary: fdtTree.chain((t) => bytesNear([writeFdt(t)], 400)).map((bytes) => ({
          bytes,
          tree: undefined,
        })),
      },
    );
    return Promise.resolve(fc.property(input, ({ bytes, tree }) => {
      const typed = codeOf(KexecError, "E_FDT");
      const parsed = only(typed, () => parseFdt(bytes));
      only(typed, () => zeroKaslrSeed(bytes));
      if (tree) {
        check(parsed !== undefined, "a written tree does not parse");
        check(sameTree(parsed!.root, tree.root), "tree changed");
        check(
          parsed!.bootCpuidPhys === tree.bootCpuidPhys &&
            parsed!.reserved.length === tree.reserved.length,
          "header changed",
        );
      }
    }));
  },
};

/** The other parsers' targets. */
export const OTHER_TARGETS: readonly FuzzTarget[] = [
  mdnsPacket,
  mdnsTxt,
  wasmLimits,
  wasmGrow,
  policy,
  cmdline,
  stepResults,
  fdt,
];
