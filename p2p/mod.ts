/**
 * p2p/: the libp2p Kademlia DHT of Phase (formats.md §5, docs/dht-keys.md):
 * node factory, publishing signed discovery records and provider records,
 * and client lookups that collect values from several peers and keep only
 * trusted ones (TM-08).
 *
 * @module
 */
export {
  parseRecordKey,
  PHASE_KAD_PROTOCOL,
  PHASE_NAMESPACE,
  providerCid,
  recordKey,
} from "./keys.ts";
export { phaseSelector, phaseValidator } from "./validate.ts";
export {
  bestTrusted,
  bootstrap,
  createPhaseNode,
  dhtRoutingPeers,
  DIAL_TIMEOUT_MS,
  findManifestProviders,
  findProviders,
  type FoundRecord,
  httpMultiaddr,
  httpUrlOfMultiaddr,
  loadPeerKey,
  LOOKUP_TIMEOUT_MS,
  lookupRecords,
  MAX_HTTP_PROVIDERS,
  MAX_LOOKUP_VALUES,
  type PhaseNode,
  type PhaseNodeOptions,
  provideManifest,
  PUBLISH_TIMEOUT_MS,
  type Published,
  publishRecord,
  RECORD_TTL_MS,
  REPUBLISH_INTERVAL_MS,
} from "./node.ts";
