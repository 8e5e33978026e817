import { Buffer } from "node:buffer";
import { parseTrust, rawCid, type VerifyError, verifyManifest } from "../verify/mod.ts";
import {
  assert,
  assertEquals,
  NetnsLab,
  readUntil,
  REPO,
  spawnServe,
  START_TIMEOUT_MS,
  stopLeftovers,
  stopServe,
  tempDir,
  writeRelease,
} from "../testing/mod.ts";
import {
  assemble,
  type DiscoveredService,
  MAX_INSTANCES,
  MDNS_GROUP,
  SERVICE_TYPE,
} from "./mod.ts";
import { MAX_TXT_ENTRIES, MAX_TXT_ENTRY_BYTES } from "./service.ts";

/** Listening time of each query, in ms. */
const QUERY_MS = 1200;
/** Longest the provider's goodbye may take to reach the listener after it exits, in ms. */
const GOODBYE_TIMEOUT_MS = 5_000;

async function query(lab: NetnsLab, i: number, fetchMirrors = false) {
  const out = await lab.command(i, "deno", [
    "run",
    "-q",
    "--no-prompt",
    "-P=test",
    "testing/mdns_query.ts",
    lab.namespaces[i].ip,
    String(QUERY_MS),
    ...(fetchMirrors ? ["--fetch"] : []),
  ], { cwd: REPO, stdout: "piped", stderr: "piped", signal: AbortSignal.timeout(30_000) }).output();
  assert(out.success, new TextDecoder().decode(out.stderr));
  return JSON.parse(new TextDecoder().decode(out.stdout)) as {
    services: DiscoveredService[];
    fetched: Record<string, { status: number; sha256: string; bytes: string }>;
  };
}

function listener(lab: NetnsLab, i: number) {
  const child = lab.command(i, "deno", [
    "run",
    "-q",
    "--no-prompt",
    "-P=test",
    "testing/mdns_listen.ts",
    lab.namespaces[i].ip,
  ], {
    cwd: REPO,
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  return child;
}

/** Waits for the listener's first line (it is listening); returns what it read. */
async function firstLine(child: Deno.ChildProcess): Promise<string> {
  const { seen } = await readUntil(
    child.stdout,
    (s) => s.includes("\n") || undefined,
    START_TIMEOUT_MS,
    { then: "release" },
  );
  return seen;
}

/** The listener's PTR records for the service type, from its complete JSON lines. */
function servicePtrs(heard: string): { name: string; type: string; ttl: number }[] {
  return heard.slice(0, heard.lastIndexOf("\n") + 1).split("\n").filter(Boolean)
    .map((l) => JSON.parse(l) as { name: string; type: string; ttl: number })
    .filter((r) => r.type === "PTR" && r.name === SERVICE_TYPE);
}

Deno.test({
  name:
    "mDNS: a provider in one namespace is found over veth by a querier in another; it announces on start and says goodbye (TTL 0) on stop",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const dir = await tempDir("mdns");
    await using lab = await NetnsLab.create(2);
    try {
      await writeRelease(`${dir}/root`, "stable", "amd64");
      await writeRelease(`${dir}/root`, "stable", "arm64", {}, 2);
      const listen = listener(lab, 1);
      const first = await firstLine(listen);
      const ip0 = lab.namespaces[0].ip;
      const prov = await spawnServe([
        "--host",
        ip0,
        "--port",
        "8080",
        "--root",
        `${dir}/root`,
        "--state",
        `${dir}/state`,
        "--name",
        "prov1",
        "--no-dht",
      ], { lab, index: 0 });
      const { services, fetched } = await query(lab, 1, true);
      assertEquals(services.map((s) => s.instance), [
        `prov1-stable-amd64.${SERVICE_TYPE}`,
        `prov1-stable-arm64.${SERVICE_TYPE}`,
      ]);
      const trust = parseTrust(await Deno.readFile(`${dir}/state/trust.json`));
      for (const s of services) {
        assertEquals([s.host, s.port, s.addresses, s.from], ["prov1.local", 8080, [ip0], ip0]);
        assertEquals(s.txt.mirror, `http://${ip0}:8080/stable/${s.txt.arch}/manifest.json`);
        const got = fetched[s.txt.mirror];
        assertEquals(got.status, 200);
        const bytes = new TextEncoder().encode(got.bytes);
        assertEquals(rawCid(bytes), s.txt.manifest_cid);
        const v = verifyManifest(bytes, trust, { channel: "stable", arch: s.txt.arch });
        assertEquals(v.value.version, s.txt.version);
      }
      // A release added while serving is announced after the rescan.
      await writeRelease(`${dir}/root`, "beta", "amd64", {}, 3);
      let later: DiscoveredService[] = [];
      for (let i = 0; i < 10 && later.length < 3; i++) {
        await new Promise((r) => setTimeout(r, 300));
        later = (await query(lab, 1)).services;
      }
      assert(
        later.some((s) => s.instance === `prov1-beta-amd64.${SERVICE_TYPE}`),
        JSON.stringify(later),
      );
      const { status, err } = await stopServe(prov.child);
      assertEquals(status.code, 0, err);
      // Read until the goodbye is heard (a fixed pause can be short on a loaded
      // host), then stop the listener and read what is left.
      const { seen } = await readUntil(
        listen.stdout,
        (s) => servicePtrs(s).some((r) => r.ttl === 0) || undefined,
        GOODBYE_TIMEOUT_MS,
        { then: "release" },
      );
      listen.kill("SIGTERM");
      let rest = "";
      for await (const chunk of listen.stdout.pipeThrough(new TextDecoderStream())) rest += chunk;
      await listen.status;
      await new Response(listen.stderr).text();
      const ptrs = servicePtrs(first + seen + rest);
      assert(ptrs.some((r) => r.ttl > 0), "announcement heard");
      assert(ptrs.some((r) => r.ttl === 0), "goodbye heard");
      assert(ptrs.findLastIndex((r) => r.ttl === 0) > ptrs.findIndex((r) => r.ttl > 0));
      // After the goodbye nothing answers.
      assertEquals((await query(lab, 1)).services, []);
    } finally {
      await stopLeftovers();
      await lab.cleanup();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "TM-07 mDNS poisoning: a rogue responder claiming the same instance name neither hides the genuine provider nor passes verification; garbage packets do not stop the responder",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const dir = await tempDir("mdns");
    await using lab = await NetnsLab.create(3);
    try {
      await writeRelease(`${dir}/good`, "stable", "amd64");
      await writeRelease(`${dir}/evil`, "stable", "amd64", { kernel: 1234 }, 9);
      const [ip0, ip2] = [lab.namespaces[0].ip, lab.namespaces[2].ip];
      const common = ["--port", "8080", "--name", "prov1", "--no-dht"];
      const good = await spawnServe([
        "--host",
        ip0,
        "--root",
        `${dir}/good`,
        "--state",
        `${dir}/gs`,
        ...common,
      ], { lab, index: 0 });
      const evil = await spawnServe([
        "--host",
        ip2,
        "--root",
        `${dir}/evil`,
        "--state",
        `${dir}/es`,
        ...common,
      ], { lab, index: 2 });
      try {
        // Hostile bytes at the genuine responder, from the client's namespace.
        const garbage = lab.command(1, "deno", [
          "eval",
          `
          import dgram from "node:dgram";
          const s = dgram.createSocket("udp4");
          s.bind(0, () => {
            s.setMulticastInterface("${lab.namespaces[1].ip}");
            const junk = [new Uint8Array(12).fill(255), new Uint8Array(3000).fill(192), new Uint8Array([0,0,0,0,0,1,0,0,0,0,0,0,63])];
            let n = 0;
            for (const j of junk) s.send(j, 5353, "${MDNS_GROUP}", () => { if (++n === junk.length) s.close(); });
          });`,
        ], { cwd: REPO, stdout: "null", stderr: "piped" });
        assert((await garbage.output()).success);
        const { services, fetched } = await query(lab, 1, true);
        const named = services.filter((s) => s.instance === `prov1-stable-amd64.${SERVICE_TYPE}`);
        assertEquals(
          named.map((s) => s.from).sort(),
          [ip0, ip2].sort(),
          "both answers kept, neither hidden",
        );
        const trust = parseTrust(await Deno.readFile(`${dir}/gs/trust.json`));
        const outcomes = named.map((s) => {
          const bytes = new TextEncoder().encode(fetched[s.txt.mirror].bytes);
          try {
            verifyManifest(bytes, trust, { channel: "stable", arch: "amd64" });
            return `${s.from}:ok`;
          } catch (err) {
            return `${s.from}:${(err as VerifyError).code}`;
          }
        }).sort();
        assertEquals(outcomes, [`${ip0}:ok`, `${ip2}:E_SIGNATURE`].sort());
      } finally {
        await stopServe(good.child);
        await stopServe(evil.child);
      }
    } finally {
      await stopLeftovers();
      await lab.cleanup();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("TM-07 mDNS poisoning: a flood of answers is bounded and TTL-0 goodbyes remove only their sender's entry", () => {
  const recs = [];
  for (let i = 0; i < 200; i++) {
    const name = `x${i}.${SERVICE_TYPE}`;
    recs.push({
      answer: { type: "PTR" as const, name: SERVICE_TYPE, ttl: 120, data: name },
      from: "10.0.0.9",
    });
    recs.push({
      answer: { type: "SRV" as const, name, ttl: 120, data: { port: 1, target: "h.local" } },
      from: "10.0.0.9",
    });
  }
  assertEquals(assemble(recs, SERVICE_TYPE).length, MAX_INSTANCES);
  const name = `g.${SERVICE_TYPE}`;
  const genuine = [
    {
      answer: { type: "PTR" as const, name: SERVICE_TYPE, ttl: 120, data: name },
      from: "10.0.0.1",
    },
    {
      answer: { type: "SRV" as const, name, ttl: 120, data: { port: 8080, target: "g.local" } },
      from: "10.0.0.1",
    },
  ];
  const forgedBye = {
    answer: { type: "PTR" as const, name: SERVICE_TYPE, ttl: 0, data: name },
    from: "10.0.0.66",
  };
  assertEquals(assemble([...genuine, forgedBye], SERVICE_TYPE).map((s) => s.from), ["10.0.0.1"]);
  // TXT data is bounded too: at most MAX_TXT_ENTRIES entries are read, and an entry longer than
  // MAX_TXT_ENTRY_BYTES is dropped, not truncated into a plausible value.
  const many = Array.from({ length: MAX_TXT_ENTRIES + 8 }, (_, i) => Buffer.from(`k${i}=v${i}`));
  const oversized = Buffer.from(`big=${"x".repeat(MAX_TXT_ENTRY_BYTES)}`);
  const txt = {
    answer: { type: "TXT" as const, name, ttl: 120, data: [oversized, ...many] },
    from: "10.0.0.1",
  };
  const [withTxt] = assemble([...genuine, txt], SERVICE_TYPE);
  assert(!("big" in withTxt.txt), "an oversized TXT entry is dropped");
  assertEquals(Object.keys(withTxt.txt).length, MAX_TXT_ENTRIES - 1);
  assertEquals(withTxt.txt.k0, "v0");
});
