import { memoryLogger } from "../core/mod.ts";
import { assert, assertEquals, sha256Hex, tempDir, writeRelease } from "../testing/mod.ts";
import { startProvider } from "./server.ts";

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
    } finally {
      await p.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
