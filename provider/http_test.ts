import { memoryLogger } from "../core/mod.ts";
import { decodeRecord, parseTrust, rawCid, verifyManifest } from "../verify/mod.ts";
import {
  assert,
  assertEquals,
  assertMatch,
  rawRequest,
  sha256Hex,
  tempDir,
  writeRelease,
} from "../testing/mod.ts";
import {
  cachedSafeSegments,
  formatAccess,
  MAX_CACHED_PATH,
  PATH_CACHE_ENTRIES,
  safeSegments,
} from "./http.ts";
import { parseRange, prefersHtml } from "./range.ts";
import { startProvider } from "./server.ts";

async function setup() {
  const dir = await tempDir("http");
  const files = await writeRelease(`${dir}/root`, "stable", "amd64", {
    kernel: 1_300_000,
    initramfs: 40_000,
  });
  const logger = memoryLogger();
  const p = await startProvider({
    root: `${dir}/root`,
    state: `${dir}/state`,
    port: 0,
    logger,
    watch: false,
  });
  return {
    dir,
    files,
    logger,
    p,
    [Symbol.asyncDispose]: async () => {
      await p.close();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

Deno.test("provider: manifest from memory verifies against the written trust file; ETag and 304", async () => {
  await using s = await setup();
  const res = await fetch(`${s.p.url}/stable/amd64/manifest.json`);
  assertEquals(res.status, 200);
  const bytes = new Uint8Array(await res.arrayBuffer());
  const trust = parseTrust(await Deno.readFile(`${s.dir}/state/trust.json`));
  const v = verifyManifest(bytes, trust, { channel: "stable", arch: "amd64" });
  assertEquals(v.value.artifacts.kernel.digest, `sha256:${await sha256Hex(s.files.kernel)}`);
  assertEquals(v.value.cmdline, "console=ttyS0");
  const etag = res.headers.get("etag")!;
  assertEquals(etag, `"sha256:${await sha256Hex(bytes)}"`);
  const again = await fetch(`${s.p.url}/stable/x86_64/manifest.json`, {
    headers: { "if-none-match": etag },
  });
  assertEquals(again.status, 304);
  await again.body?.cancel();
  // /manifest.json is the default channel/arch of this machine.
  const def = await fetch(`${s.p.url}/manifest.json`);
  if (Deno.build.arch === "x86_64") assertEquals(new Uint8Array(await def.arrayBuffer()), bytes);
  else await def.body?.cancel();
});

Deno.test("provider: artifacts stream whole, by alias, by digest and as IPFS raw blocks", async () => {
  await using s = await setup();
  const k = s.files.kernel;
  const hex = await sha256Hex(k);
  for (
    const path of [
      "/stable/amd64/kernel",
      "/stable/x86_64/kernel",
      `/cas/sha256/${hex}`,
      `/ipfs/${rawCid(k)}`,
    ]
  ) {
    const res = await fetch(s.p.url + path);
    assertEquals(res.status, 200, path);
    assertEquals(res.headers.get("content-length"), String(k.length));
    assertEquals(res.headers.get("etag"), `"sha256:${hex}"`);
    assertEquals(res.headers.get("accept-ranges"), "bytes");
    assertEquals(await sha256Hex(new Uint8Array(await res.arrayBuffer())), hex, path);
  }
  const raw = await fetch(`${s.p.url}/ipfs/${rawCid(k)}?format=raw`);
  assertEquals(raw.headers.get("content-type"), "application/vnd.ipld.raw");
  assertEquals(await sha256Hex(new Uint8Array(await raw.arrayBuffer())), hex);
  const acc = await fetch(`${s.p.url}/ipfs/${rawCid(k)}`, {
    headers: { accept: "application/vnd.ipld.raw" },
  });
  assertEquals(acc.headers.get("content-type"), "application/vnd.ipld.raw");
  await acc.body?.cancel();
  const car = await fetch(`${s.p.url}/ipfs/${rawCid(k)}?format=car`);
  assertEquals(car.status, 406);
  await car.body?.cancel();
  // The manifest is also addressable by its manifest_cid.
  const m = new Uint8Array(
    await (await fetch(`${s.p.url}/stable/amd64/manifest.json`)).arrayBuffer(),
  );
  const byCid = await fetch(`${s.p.url}/ipfs/${rawCid(m)}?format=raw`);
  assertEquals(new Uint8Array(await byCid.arrayBuffer()), m);
  const unknown = await fetch(`${s.p.url}/cas/sha256/${"0".repeat(64)}`);
  assertEquals(unknown.status, 404);
  await unknown.body?.cancel();
});

Deno.test("provider: single Range gives 206, unsatisfiable 416, several ranges the whole body; HEAD has no body", async () => {
  await using s = await setup();
  const k = s.files.kernel;
  const url = `${s.p.url}/stable/amd64/kernel`;
  const cases: [string, number, number][] = [["bytes=0-9", 0, 9], [
    "bytes=1000000-",
    1000000,
    k.length - 1,
  ], [
    "bytes=-100",
    k.length - 100,
    k.length - 1,
  ], ["bytes=5-99999999", 5, k.length - 1]];
  for (const [range, a, b] of cases) {
    const res = await fetch(url, { headers: { range } });
    assertEquals(res.status, 206, range);
    assertEquals(res.headers.get("content-range"), `bytes ${a}-${b}/${k.length}`);
    assertEquals(new Uint8Array(await res.arrayBuffer()), k.slice(a, b + 1), range);
  }
  const bad = await fetch(url, { headers: { range: `bytes=${k.length}-` } });
  assertEquals(bad.status, 416);
  assertEquals(bad.headers.get("content-range"), `bytes */${k.length}`);
  await bad.body?.cancel();
  const multi = await fetch(url, { headers: { range: "bytes=0-1,5-6" } });
  assertEquals(multi.status, 200);
  assertEquals((await multi.arrayBuffer()).byteLength, k.length);
  const stale = await fetch(url, { headers: { range: "bytes=0-9", "if-range": '"sha256:00"' } });
  assertEquals(stale.status, 200);
  await stale.body?.cancel();
  const head = await rawRequest(s.p.port, "/stable/amd64/kernel", { method: "HEAD" });
  assertEquals(head.status, 200);
  assertEquals(head.headers.get("content-length"), String(k.length));
  assertEquals(head.body.length, 0);
  assertEquals(parseRange("bytes=-0", 10), "unsatisfiable");
  assertEquals(parseRange("items=0-1", 10), undefined);
});

Deno.test("provider: record.json is a valid signed record naming the served manifest", async () => {
  await using s = await setup();
  const m = new Uint8Array(
    await (await fetch(`${s.p.url}/stable/amd64/manifest.json`)).arrayBuffer(),
  );
  const res = await fetch(`${s.p.url}/stable/aarch64/record.json`);
  assertEquals(res.status, 404);
  await res.body?.cancel();
  const rec = decodeRecord(
    new Uint8Array(await (await fetch(`${s.p.url}/stable/amd64/record.json`)).arrayBuffer()),
    new Date(),
  );
  assertEquals(rec.manifestCid, rawCid(m));
  assertEquals(rec.mirrors, [`${s.p.url}/stable/amd64/manifest.json`]);
  assertEquals(rec.signatures[0].keyid, s.p.keyid);
  // The record's digest is computed once; later requests answer from it.
  const again = await fetch(`${s.p.url}/stable/amd64/record.json`);
  const etag = again.headers.get("etag")!;
  await again.body?.cancel();
  assertMatch(etag, /^"sha256:[0-9a-f]{64}"$/);
  const cached = await fetch(`${s.p.url}/stable/amd64/record.json`, {
    headers: { "if-none-match": etag },
  });
  assertEquals(cached.status, 304);
  await cached.body?.cancel();
});

Deno.test("provider: access log lines are valid JSON with every field intact, whatever the path holds", () => {
  const paths = [
    "/stable/amd64/manifest.json",
    '/a"b\\c',
    "/%2e%2e/\x00\x1f\x7f\n",
    "/\ud800lone/\udfffsurrogates",
    "/caf\u00e9/\u{1f600}",
  ];
  for (const path of paths) {
    const entry = {
      method: "GET",
      path,
      status: 404,
      length: 10,
      range: 'bytes=0-"1',
      remote: "127.0.0.1",
      ms: 0.125,
    };
    const line = formatAccess("serve", entry);
    assert(line.endsWith("}\n"), line);
    const parsed = JSON.parse(line);
    assertEquals(parsed, {
      ...parsed,
      component: "serve",
      event: "access",
      level: "info",
      ...entry,
    });
    assertEquals(line, JSON.stringify(parsed) + "\n");
    assert(Math.abs(Date.parse(parsed.ts) - Date.now()) < 5000, parsed.ts);
  }
  const fixed = formatAccess(
    "serve",
    { method: "HEAD", path: "/", status: 200, length: 0, ms: 1 },
    new Date(0),
  );
  assertEquals(JSON.parse(fixed).ts, "1970-01-01T00:00:00.000Z");
  assertEquals("range" in JSON.parse(fixed), false);
});

Deno.test("provider: /health, /status, GET / as JSON and as HTML", async () => {
  await using s = await setup();
  const h = await fetch(`${s.p.url}/health`);
  assertEquals(h.status, 200);
  assertEquals((await h.json()).status, "serving");
  await (await fetch(`${s.p.url}/stable/amd64/initramfs`)).arrayBuffer();
  const st = await (await fetch(`${s.p.url}/status`)).json();
  assert(st.requests >= 2);
  assertEquals(st.perArtifact["stable/amd64/initramfs"], { requests: 1, bytes: 40_000 });
  const info = await (await fetch(`${s.p.url}/`, { headers: { accept: "*/*" } })).json();
  assertEquals(info.channels[0].channel, "stable");
  assertEquals(info.channels[0].artifacts.map((a: { name: string }) => a.name), [
    "kernel",
    "initramfs",
  ]);
  const html = await fetch(`${s.p.url}/`, {
    headers: { accept: "text/html,application/xhtml+xml,*/*;q=0.8" },
  });
  assertMatch(html.headers.get("content-type")!, /^text\/html/);
  assertMatch(html.headers.get("content-security-policy")!, /default-src 'none'/);
  assertMatch(await html.text(), /<td class="version">\d{4}\.\d\d\.\d\d\.\d+<\/td>/);
  assert(!prefersHtml("*/*"));
  assert(!prefersHtml("application/json, text/html;q=0.5"));
});

Deno.test("provider: other methods 405, request bodies refused unread, no directory listing", async () => {
  await using s = await setup();
  const post = await fetch(`${s.p.url}/stable/amd64/kernel`, { method: "POST", body: "x" });
  assertEquals(post.status, 405);
  await post.body?.cancel();
  const withBody = await rawRequest(s.p.port, "/stable/amd64/manifest.json", {
    headers: { "content-length": "5" },
    body: "hello",
  });
  assertEquals(withBody.status, 413);
  for (const path of ["/stable/amd64/", "/stable/", "/stable/amd64", "/cas/sha256/", "/ipfs/"]) {
    const r = await rawRequest(s.p.port, path);
    assertEquals(r.status, 404, path);
  }
});

Deno.test("TM-10 path traversal: every form answers 404 and is logged; dotfiles and symlinks out of the root are never served", async () => {
  await using s = await setup();
  const dir = `${s.dir}/root/stable/amd64`;
  await Deno.writeTextFile(`${s.dir}/secret`, "TOP SECRET");
  await Deno.writeTextFile(`${dir}/.hidden`, "dotfile");
  await Deno.symlink(`${s.dir}/secret`, `${dir}/rootfs`);
  await Deno.symlink(`${s.dir}/state`, `${s.dir}/root/stable/arm64`);
  await s.p.rescan();
  assert(
    !s.p.catalog().releases.get("stable/amd64")!.artifacts.has("rootfs"),
    "symlink out of root is not an artifact",
  );
  assert(!s.p.catalog().releases.has("stable/arm64"), "symlinked dir out of root is not a release");
  const attacks = [
    "/stable/amd64/../../../secret",
    "/../secret",
    "/stable/amd64/%2e%2e/%2e%2e/%2e%2e/secret",
    "/stable/amd64/%2E%2E%2F%2E%2E%2F%2E%2E%2Fsecret",
    "/stable/amd64/%252e%252e/%252e%252e/secret",
    "/stable/amd64/..%5c..%5c..%5csecret",
    "/stable/amd64/..\\..\\..\\secret",
    "/stable/amd64/kernel%00.txt",
    "/stable/amd64/kernel\u0000",
    "/stable/amd64/.hidden",
    "/stable/amd64/%2ehidden",
    "/.phase/provider.pem",
    "/stable/amd64/rootfs",
    "/stable/arm64/provider.pem",
    "//etc/passwd",
    "/stable//amd64/kernel",
    "/stable/amd64/./kernel",
    "/%c0%ae%c0%ae/secret",
    "/stable/amd64/" + "a".repeat(3000),
  ];
  for (const path of attacks) {
    let status: number;
    try {
      status = (await rawRequest(s.p.port, path)).status;
    } catch {
      status = 400; // the HTTP parser refused the bytes before the handler
    }
    assert(status === 404 || status === 400, `${JSON.stringify(path)} answered ${status}`);
  }
  const rejected = s.logger.entries.filter((e) => e.event === "path_rejected").length;
  assert(rejected >= attacks.length - 4, `only ${rejected} rejections logged`);
  assert(s.logger.entries.some((e) => e.event === "symlink_outside_root"));
  for (const path of attacks.slice(0, 9)) {
    assertEquals(safeSegments(path.replace("\u0000", "%00")), undefined, path);
  }
  // The genuine artifact is still served.
  assertEquals((await rawRequest(s.p.port, "/stable/amd64/kernel")).status, 200);
});

Deno.test("provider paths: the remembered decodings answer as safeSegments does, stay bounded, are frozen, and never remember a refusal (TM-10)", () => {
  let calls = 0;
  const decode = cachedSafeSegments((p) => {
    calls++;
    return safeSegments(p);
  }, 4);
  const a = decode("/stable/amd64/manifest.json");
  assertEquals(a, ["stable", "amd64", "manifest.json"]);
  assert(decode("/stable/amd64/manifest.json") === a, "the same array again");
  assertEquals(calls, 1);
  assert(Object.isFrozen(a), "routes cannot change a remembered decoding");
  // A refusal is decided (and so logged by the caller) every time.
  for (let i = 0; i < 3; i++) assertEquals(decode("/stable/../../etc/passwd"), undefined);
  assertEquals(calls, 4);
  // Bounded: more distinct paths than entries, each still decoded right.
  for (let i = 0; i < 50; i++) assertEquals(decode(`/p/${i}`), ["p", String(i)]);
  const afterFill = calls;
  assertEquals(decode("/stable/amd64/manifest.json"), ["stable", "amd64", "manifest.json"]);
  assertEquals(calls, afterFill + 1, "the old entry was let go when the memory filled");
  // Long paths are answered but not kept.
  const long = "/" + "a".repeat(MAX_CACHED_PATH);
  const before = calls;
  decode(long);
  decode(long);
  assertEquals(calls, before + 2);
  assert(PATH_CACHE_ENTRIES >= 16);
});
