/**
 * A provider on loopback as most tests start it: a free port, no signing
 * key (pre-signed releases only), neither mDNS nor the DHT, a memory
 * logger. Whatever `o` names overrides these. Used only by tests and
 * benchmarks.
 *
 * @module
 */
import { memoryLogger } from "../core/mod.ts";
import { type ProviderOptions, type RunningProvider, startProvider } from "../provider/mod.ts";

/** Starts a provider with the test defaults above; `root` and `state` are the caller's. */
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
