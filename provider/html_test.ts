import { memoryLogger } from "../core/mod.ts";
import { assert, assertEquals, sha256Hex, tempDir, writeRelease } from "../testing/mod.ts";
import { startProvider } from "./server.ts";
import { fetchCommand, PAGE_REFRESH_S, type PageInfo, renderStatusPage } from "./html.ts";

/** Longest Chromium may take to render the page, in ms. */
const BROWSER_TIMEOUT_MS = 60_000;
const CHROMIUM = "/usr/bin/chromium";

async function chromiumAvailable(): Promise<boolean> {
  try {
    return (await Deno.stat(CHROMIUM)).isFile;
  } catch {
    return false;
  }
}

/** Renders `url` in headless Chromium (fresh profile) and returns the DOM it built. */
async function dumpDom(url: string, profile: string): Promise<string> {
  const out = await new Deno.Command(CHROMIUM, {
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--no-first-run",
      `--user-data-dir=${profile}`,
      "--dump-dom",
      url,
    ],
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(BROWSER_TIMEOUT_MS),
  }).output();
  assert(out.success, new TextDecoder().decode(out.stderr).slice(-2000));
  return new TextDecoder().decode(out.stdout);
}

/** Where the status page's screenshot is left for a person to look at. */
const SCREENSHOT = "/tmp/phase/status-page.png";

/** Renders `url` in headless Chromium into a PNG at `path`. */
async function screenshot(url: string, profile: string, path: string): Promise<void> {
  const out = await new Deno.Command(CHROMIUM, {
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--no-first-run",
      "--hide-scrollbars",
      `--user-data-dir=${profile}`,
      "--window-size=1280,900",
      `--screenshot=${path}`,
      url,
    ],
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(BROWSER_TIMEOUT_MS),
  }).output();
  assert(out.success, new TextDecoder().decode(out.stderr).slice(-2000));
  const png = await Deno.readFile(path);
  assertEquals([...png.subarray(1, 4)].map((c) => String.fromCharCode(c)).join(""), "PNG");
}

function cell(dom: string, re: RegExp): string {
  const m = re.exec(dom);
  assert(m, `${re} not in the rendered page`);
  return m[1];
}

Deno.test({
  name:
    "status page: headless Chromium renders channels, versions, expiry, sizes, digests and counters",
  ignore: !(await chromiumAvailable()),
  fn: async () => {
    const dir = await tempDir("html");
    const files = await writeRelease(`${dir}/root`, "stable", "amd64", { kernel: 123_456 });
    const p = await startProvider({
      root: `${dir}/root`,
      state: `${dir}/state`,
      port: 0,
      logger: memoryLogger(),
      watch: false,
      name: "html-test",
    });
    try {
      await (await fetch(`${p.url}/stable/amd64/kernel`)).arrayBuffer();
      const dom = await dumpDom(`${p.url}/`, `${dir}/profile`);
      const r = p.catalog().releases.get("stable/amd64")!;
      assertEquals(cell(dom, /<span id="name">([^<]*)<\/span>/), "html-test");
      const kernelRow = cell(
        dom,
        /(<tr data-channel="stable" data-arch="amd64" data-artifact="kernel">.*?<\/tr>)/s,
      );
      assertEquals(cell(kernelRow, /<td class="version">([^<]*)</), r.manifest.version);
      assertEquals(
        cell(kernelRow, /<td class="expires">([^<]*)</),
        r.manifest.expiresAt.toISOString(),
      );
      assertEquals(cell(kernelRow, /data-bytes="(\d+)"/), "123456");
      assertEquals(
        cell(kernelRow, /<code>([^<]*)<\/code>/),
        `sha256:${await sha256Hex(files.kernel)}`,
      );
      // The page counts itself: the kernel download and this request.
      assert(Number(cell(dom, /<td id="requests">(\d+)<\/td>/)) >= 2);
      assertEquals(cell(dom, /<td id="bytes" data-bytes="(\d+)"/), "123456");
      assertEquals(cell(dom, /<td id="mdns-state">([^<]*)<\/td>/), "off");
      assertEquals(cell(dom, /<td id="dht-state">([^<]*)<\/td>/), "off");
      // Issue 11 §4: keyid, trust file, root, a fetch command, artifact links.
      assertEquals(cell(dom, /<code id="keyid">([^<]*)<\/code>/), p.keyid);
      assertEquals(cell(dom, /<code id="trust">([^<]*)<\/code>/), `${dir}/state/trust.json`);
      assertEquals(cell(dom, /<code id="root-path">([^<]*)<\/code>/), `${dir}/root`);
      assertEquals(
        cell(dom, /<pre class="fetch">([^<]*)<\/pre>/),
        fetchCommand(`${p.url}/stable/amd64/manifest.json`, `${dir}/state/trust.json`),
      );
      assertEquals(
        cell(kernelRow, /<a class="artifact" href="([^"]*)"/),
        "/stable/amd64/kernel",
      );
      assert(!/peer\s*,/.test(dom), "no 'peer , 0 peers' with the DHT off");
      assertEquals(
        cell(dom, /<meta http-equiv="refresh" content="(\d+)">/),
        String(PAGE_REFRESH_S),
      );
      // The picture a person sees (looked at by hand: see the report).
      await screenshot(`${p.url}/`, `${dir}/profile2`, SCREENSHOT);
    } finally {
      await p.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

function page(over: Partial<PageInfo> = {}): PageInfo {
  return {
    name: "unit",
    version: "0.1.0",
    uptime_s: 3,
    channels: [{
      channel: "stable",
      arch: "amd64",
      version: "2026.11.30",
      origin: "pre-signed",
      expires_at: "2026-12-07T00:00:00.000Z",
      manifest_cid: "bafkreitest",
      manifest: "/stable/amd64/manifest.json",
      signers: ["ed25519:" + "ab".repeat(32)],
      artifacts: [{ name: "kernel", size: 2048, digest: "sha256:" + "cd".repeat(32) }],
    }],
    refused: [],
    advert: null,
    metrics: null,
    ...over,
  };
}

Deno.test("status page (issue 11 §4, finding 18): a remote reader sees the keyid, links and a fetch command, but no path of this machine", () => {
  const html = renderStatusPage(page(), {
    origin: "http://10.0.0.1:8080",
    keyid: "ed25519:" + "ef".repeat(32),
  });
  assert(html.includes(`<code id="keyid">ed25519:${"ef".repeat(32)}</code>`));
  assert(html.includes('href="/stable/amd64/kernel"'));
  assert(html.includes(
    fetchCommand("http://10.0.0.1:8080/stable/amd64/manifest.json", "./.phase/trust/trust.json"),
  ));
  // It names the signer the trust file must list, since it cannot name the file.
  assert(html.includes(`the trust file that lists <code>ed25519:${"ab".repeat(32)}</code>`));
  assert(!html.includes('id="trust"') && !html.includes('id="root'), "no local paths");
  assert(!html.includes("Advertisement"), "no advertisement state without counters");
});

Deno.test("status page (issue 11 §4): a loopback reader sees the real root and trust file; with no release the hint names the root; DHT off shows 'off' only", () => {
  const off = {
    mdns: { enabled: false, state: "off", instances: [] },
    dht: { enabled: false, state: "off", peers: 0 },
  };
  const html = renderStatusPage(page({ channels: [], advert: off }), {
    origin: "http://127.0.0.1:8080",
    keyid: "ed25519:" + "ef".repeat(32),
    trustPath: "./.phase/provider/trust.json",
    root: "./artifacts",
  });
  assert(html.includes('<code id="root">./artifacts/&lt;channel&gt;/&lt;arch&gt;/</code>'), html);
  assert(html.includes('<code id="trust">./.phase/provider/trust.json</code>'));
  assert(!html.includes("&lt;root&gt;"));
  assert(html.includes('<td id="dht-state">off</td>'));
  assert(!/peer\s*,/.test(html) && !html.includes("0 peers"));
  const on = renderStatusPage(
    page({
      advert: { ...off, dht: { enabled: true, state: "running", peerId: "12D3Koo", peers: 1 } },
    }),
    { origin: "" },
  );
  assert(
    on.includes(
      'running, peer <code id="dht-peer">12D3Koo</code>, <span id="dht-peers">1</span> peer<',
    ),
  );
  // Pre-signed release read on loopback: the command names the file that verified it.
  const local = renderStatusPage(page(), {
    origin: "http://127.0.0.1:8080",
    trustPath: "./.phase/provider/trust.json",
    root: "./artifacts",
    trustedBy: { "stable/amd64": "./.phase/trust/trust.json" },
  });
  assert(local.includes(
    fetchCommand("http://127.0.0.1:8080/stable/amd64/manifest.json", "./.phase/trust/trust.json"),
  ));
});

Deno.test("status page: every value is escaped and the page has no script", () => {
  const html = renderStatusPage(page({ name: "<script>x</script>" }), {
    origin: 'http://"><script>',
    root: "<img src=x>",
  });
  assert(!/<script/i.test(html) && !html.includes("<img"), html);
});
