/**
 * Providers for tests and benchmarks: `startTestProvider` starts one on
 * loopback as most tests do (a free port, no signing key, neither mDNS nor
 * the DHT, a memory logger; what `o` names overrides these), and
 * `withDhtPeer` sets up the self-hosting loop over the DHT.
 *
 * @module
 */
import { memoryLogger } from "../core/mod.ts";
import {
  dhtAdvertiser,
  type ProviderOptions,
  type RunningProvider,
  startProvider,
} from "../provider/mod.ts";
import { fetchRelease } from "../client/mod.ts";
import { createPhaseNode, findManifestProviders, type PhaseNode } from "../p2p/mod.ts";
import { loadTrust, rawCid } from "../verify/mod.ts";
import { releaseKey, signFixture, tempDir, writeRelease } from "./fixtures.ts";
import { waitFor } from "./assert.ts";

/** Starts a provider with the test defaults; `root` and `state` are the caller's. */
export function startTestProvider(
  o: Pick<ProviderOptions, "root" | "state"> & Partial<ProviderOptions>,
): Promise<RunningProvider> {
  return startProvider({
    port: 0,
    sign: false,
    mdns: false,
    dht: false,
    logger: memoryLogger(),
    ...o,
  });
}

/** What {@link withDhtPeer} sets up for a test. */
export interface DhtPeerLab {
  readonly dir: string;
  readonly trustPath: string;
  readonly trust: Awaited<ReturnType<typeof loadTrust>>;
  /** The release's artifacts as written. */
  readonly files: Awaited<ReturnType<typeof writeRelease>>;
  /** The origin provider; still running (the test stops it when its story says). */
  readonly origin: RunningProvider;
  readonly originManifest: string;
  /** The DHT bootstrap node, and its addresses. */
  readonly boot: PhaseNode;
  readonly bootAddrs: string[];
  /** Machine A: re-serves the cache its fetch filled and provides the manifest CID. */
  readonly peer: RunningProvider;
  readonly manifestCid: string;
}

/** Bound of waiting for A's provider record to be found through the DHT, in ms. */
const PROVIDER_RECORD_WAIT_MS = 20_000;
/** Bound of one provider-record lookup while waiting, in ms. */
const PROVIDER_LOOKUP_TIMEOUT_MS = 2_000;

/**
 * The self-hosting loop over the DHT, on loopback with real parts: an
 * origin serving a release signed with a fresh key (its record naming the
 * origin as mirror, or no mirror, as `deno task images` signs it), a DHT
 * bootstrap node, machine A that fetched the release and re-serves its
 * cache (`fromCache`), providing the manifest CID; `fn` runs once A's
 * provider record can be found. Everything is stopped and removed after.
 */
export async function withDhtPeer(
  name: string,
  o: { readonly mirrors: "origin" | "none"; readonly kernelBytes: number },
  fn: (lab: DhtPeerLab) => Promise<void>,
): Promise<void> {
  const dir = await tempDir(name);
  const { key, trustPath } = await releaseKey(`${dir}/keys`);
  const trust = await loadTrust(trustPath);
  const files = await writeRelease(`${dir}/root`, "stable", "amd64", { kernel: o.kernelBytes });
  let origin: RunningProvider | undefined;
  let boot: PhaseNode | undefined;
  let peer: RunningProvider | undefined;
  try {
    origin = await startTestProvider({ root: `${dir}/root`, state: `${dir}/origin`, trustPath });
    const originManifest = `${origin.url}/stable/amd64/manifest.json`;
    await signFixture(`${dir}/root`, key, {
      mirrors: o.mirrors === "origin" ? [originManifest] : [],
    });
    await origin.rescan();
    boot = await createPhaseNode({ trust });
    const bootAddrs = boot.getMultiaddrs().map(String);
    await fetchRelease({ manifestUrl: originManifest, trust, cacheDir: `${dir}/cacheA` });
    // A re-serves and publishes the record it fetched (signed by the release key).
    const a = peer = await startTestProvider({
      root: `${dir}/cacheA`,
      fromCache: `${dir}/cacheA`,
      state: `${dir}/state-a`,
      trustPath,
      dht: dhtAdvertiser({ bootstrap: bootAddrs }),
      watch: false,
    });
    const node = boot;
    const manifestCid = rawCid(await Deno.readFile(`${dir}/root/stable/amd64/manifest.json`));
    await waitFor(async () => {
      const found = await findManifestProviders(node, manifestCid, {
        timeoutMs: PROVIDER_LOOKUP_TIMEOUT_MS,
      });
      return found.some((f) => f.url === a.url);
    }, PROVIDER_RECORD_WAIT_MS);
    await fn({
      dir,
      trustPath,
      trust,
      files,
      origin,
      originManifest,
      boot,
      bootAddrs,
      peer,
      manifestCid,
    });
  } finally {
    await peer?.close();
    await origin?.close().catch(() => {});
    await boot?.stop();
    await Deno.remove(dir, { recursive: true });
  }
}
