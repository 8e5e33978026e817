/**
 * mdns/: DNS-SD over mDNS for `_phase-image._tcp.local` (formats.md §4):
 * a responder the provider runs and a one-shot querier clients use for
 * discovery. TXT data is a hint only; trust comes from manifest signatures.
 *
 * @module
 */
export {
  dnsLabel,
  HOST_TTL_S,
  instanceName,
  LEGACY_TTL_S,
  MAX_PACKET_BYTES,
  MDNS_GROUP,
  MDNS_PORT,
  PTR_TTL_S,
  SERVICE_TYPE,
  type ServiceInstance,
} from "./service.ts";
export { ANNOUNCE_COUNT, MdnsResponder, type ResponderOptions } from "./responder.ts";
export {
  assemble,
  DEFAULT_QUERY_TIMEOUT_MS,
  type DiscoveredService,
  MAX_INSTANCES,
  MAX_QUERY_TIMEOUT_MS,
  type QueryOptions,
  queryServices,
} from "./querier.ts";
