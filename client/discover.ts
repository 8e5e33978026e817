/**
 * Discovery: LAN (mDNS), then WAN (DHT), then the manual URL;
 * a manual URL from the kernel command line goes first. Each step is
 * bounded by its own timeout. Everything found is a hint (TM-07, TM-08):
 * trust comes only from the manifest signature checked by `fetch`. DHT
 * values are kept only when the trust file signs them, highest version
 * first. Every candidate's origin is probed at `/health`: a redirect or an
 * HTML page there is a captive portal, reported with a hint and never used
 * (TM-15).
 *
 * @module
 */
import { type Logger, PhaseError } from "../core/mod.ts";
import {
  canonicalArch,
  compareVersions,
  decodeRecord,
  dhtRecordKey,
  type DiscoveryRecord,
  isVersion,
  MAX_TRUST_VERSION,
  type Trust,
  verifyRecord,
} from "../verify/mod.ts";
import { ClientError } from "./errors.ts";
import { reachTrust, type TrustOrigin } from "./trust.ts";
import { type FetchFn, openRequest, readGuarded, type TransferLimits } from "../net/mod.ts";
import type { Policy } from "./policy.ts";

/** Time the mDNS step listens for answers, in milliseconds. */
export const MDNS_STEP_TIMEOUT_MS = 1_500;
/** Time the DHT step may take, in milliseconds. */
export const DHT_STEP_TIMEOUT_MS = 5_000;
/** Time a `/health` probe may take, in milliseconds. */
export const PROBE_TIMEOUT_MS = 3_000;
/** Largest `/health` answer read, in bytes. */
export const MAX_HEALTH_BYTES = 4 * 1024;
/** Most DHT values considered (TM-08: a flood of forged values is bounded). */
export const MAX_DHT_VALUES = 64;
/** Most candidates reported. */
export const MAX_CANDIDATES = 32;

/** Discovery steps: `lan` (mDNS), `wan` (DHT), `manual` (the policy's provider URL). */
export type Step = "lan" | "wan" | "manual";

/** A place a release may be fetched from. A hint, never trust. */
export interface Candidate {
  /** URL of the manifest (for `fetch --manifest`). */
  readonly manifestUrl: string;
  /** Other URLs of the same manifest. */
  readonly mirrors: readonly string[];
  /** libp2p provider addresses (DHT records). */
  readonly providers: readonly string[];
  /** Where it was found: the kernel command line, mDNS, the DHT or the policy file. */
  readonly source: "cmdline" | "mdns" | "dht" | "manual";
  /** Version the source claims (verified only for DHT records signed by the trust file). */
  readonly version?: string;
  /** CID of the manifest (raw sha2-256 CIDv1) when the source names it, for gateways. */
  readonly manifestCid?: string;
  /** mDNS instance name or DHT key. */
  readonly name?: string;
}

/** A candidate that must not be used, and why. */
export interface Rejected {
  /** The candidate's manifest URL. */
  readonly url: string;
  /** Where it was found. */
  readonly source: Candidate["source"];
  /** What its `/health` probe saw. */
  readonly reason: string;
  /** True when the network answered in place of the provider (redirect, HTML page). */
  readonly captivePortal: boolean;
  /** What the user can do about it. */
  readonly hint?: string;
}

/** An mDNS answer for the `_phase._tcp` service, as an mDNS querier returns it. */
export interface MdnsAnswer {
  /** Service instance name. */
  readonly instance: string;
  /** Target host name (SRV). */
  readonly host: string;
  /** HTTP port of the provider (SRV). */
  readonly port: number;
  /** Addresses announced for the host (A / AAAA). */
  readonly addresses: readonly string[];
  /** TXT keys (`channel`, `arch`, `version`, `mirror`, `manifest_cid`): hints only. */
  readonly txt: Readonly<Record<string, string>>;
  /** Source address of the answer packet. */
  readonly from: string;
}

/** What discovery needs; the network parts are injected. */
export interface DiscoverOptions {
  /** The effective policy: channel, mode, manual URL. */
  readonly policy: Policy;
  /** The trust file: DHT records count only when it signs them. */
  readonly trust: Trust;
  /** Arch wanted (policy.arch, else this machine's). */
  readonly arch: string;
  /** LAN step: returns mDNS answers within `timeoutMs`. */
  readonly mdns?: (timeoutMs: number) => Promise<readonly MdnsAnswer[]>;
  /** WAN step: returns raw DHT values for `key` from several peers within `timeoutMs`. */
  readonly dht?: (key: string, timeoutMs: number) => Promise<readonly Uint8Array[]>;
  /**
   * WAN step: HTTP base URLs of the peers that announced themselves in the
   * DHT as providers of a manifest CID (re-serving nodes, issue 12 §2).
   * Hints (TM-07, TM-08): added to the candidate's `providers`.
   */
  readonly dhtProviders?: (manifestCid: string, timeoutMs: number) => Promise<readonly string[]>;
  /** Step order (default: lan, wan, manual; a command-line URL goes first). */
  readonly order?: readonly Step[];
  /** How long the LAN step listens, in milliseconds (default 1 500). */
  readonly mdnsTimeoutMs?: number;
  /** How long the WAN step may take, in milliseconds (default 5 000). */
  readonly dhtTimeoutMs?: number;
  /** How long one `/health` probe may take, in milliseconds (default 3 000). */
  readonly probeTimeoutMs?: number;
  /** Probe `/health` of each candidate (default true). */
  readonly probe?: boolean;
  /** Clock for DHT record expiry (default: now). */
  readonly now?: () => Date;
  /** The fetch used for probes (default: the global `fetch`; over Tor: `socksFetch`). */
  readonly fetchFn?: FetchFn;
  /** Structured log of each step, rejected record and captive portal. */
  readonly logger?: Logger;
  /**
   * Walk the trust chain before judging DHT records (TM-09, formats.md
   * §1.1): from `trust`, the candidate sources (the manual URL, mDNS
   * answers, the DHT records' mirrors and HTTP providers) are asked for
   * `/trust/<N+1>.json`, each step verified, nothing persisted, within the
   * probe deadline. Absent: records are judged under `trust` as given.
   */
  readonly trustWalk?: DiscoverTrustWalk;
}

/** How discover walks the trust chain (read-only: fetch is what persists). */
export interface DiscoverTrustWalk {
  /** The device's trust-version floor (`<state>/trust-floor.json`), if any. */
  readonly floor?: number;
}

/** What one discovery step did. */
export interface DiscoverStep {
  /** The step. */
  step: Step;
  /** Its duration, in milliseconds. */
  ms: number;
  /** Candidates it found (before deduplication and probing). */
  found: number;
  /** Why it failed, when it did (a failed step does not stop discovery). */
  error?: string;
}

/** The outcome: ranked candidates, rejected ones, and what each step did. */
export interface DiscoverResult {
  /** Candidates in rank order, at most 32; none is trusted before fetch verifies it. */
  readonly candidates: readonly Candidate[];
  /** Candidates whose `/health` probe failed, e.g. a captive portal. */
  readonly rejected: readonly Rejected[];
  /** Each step in the order it ran. */
  readonly steps: readonly DiscoverStep[];
}

function httpUrl(s: string | undefined): string | undefined {
  if (!s) return undefined;
  try {
    const u = new URL(s);
    return u.protocol === "http:" || u.protocol === "https:" ? u.href : undefined;
  } catch {
    return undefined;
  }
}

async function bounded<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new ClientError("E_STALL", `${what} took more than ${ms} ms (TM-06)`)),
          ms,
        );
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * mDNS answers to candidates. TXT data is a hint (TM-07): answers for
 * another channel/arch are dropped; an answer whose mirror URL points at
 * the host that sent it ranks before one pointing elsewhere; then by the
 * claimed version.
 */
export function mdnsCandidates(
  answers: readonly MdnsAnswer[],
  channel: string,
  arch: string,
): Candidate[] {
  const out: (Candidate & { own: boolean })[] = [];
  for (const a of answers) {
    if (a.txt.channel !== undefined && a.txt.channel !== channel) continue;
    if (a.txt.arch !== undefined && canonicalArch(a.txt.arch) !== arch) continue;
    const addr = a.addresses[0] ?? a.from;
    const url = httpUrl(a.txt.mirror) ??
      httpUrl(`http://${addr}:${a.port}/${channel}/${arch}/manifest.json`);
    if (!url) continue;
    const host = new URL(url).hostname;
    out.push({
      manifestUrl: url,
      mirrors: [],
      providers: [],
      source: "mdns",
      version: a.txt.version && isVersion(a.txt.version) ? a.txt.version : undefined,
      manifestCid: a.txt.manifest_cid,
      name: a.instance,
      own: host === a.from || a.addresses.includes(host),
    });
  }
  out.sort((x, y) => {
    if (x.own !== y.own) return x.own ? -1 : 1;
    return compareVersions(y.version ?? "0", x.version ?? "0");
  });
  return out.map(({ own: _own, ...c }) => c);
}

/** The records the trust file signs (TM-08), highest version first (then latest expiry). */
function trustedRecords(
  values: readonly Uint8Array[],
  trust: Trust,
  now: Date,
  key: string,
  logger?: Logger,
): DiscoveryRecord[] {
  const good: DiscoveryRecord[] = [];
  const seen = new Set<string>();
  for (const v of values.slice(0, MAX_DHT_VALUES)) {
    try {
      const r = verifyRecord(v, trust, now).value;
      if (seen.has(r.manifestCid)) continue;
      seen.add(r.manifestCid);
      good.push(r);
    } catch (err) {
      logger?.warn("dht_record_rejected", {
        key,
        code: (err as { code?: string }).code,
        error: (err as Error).message,
        threat: "TM-08",
      });
    }
  }
  return good.sort((a, b) =>
    compareVersions(b.version, a.version) || b.expiresAt.getTime() - a.expiresAt.getTime()
  );
}

/**
 * DHT values to candidates: only records signed by the trust file are
 * kept (TM-08), highest version first; a forged record with a higher
 * version is dropped, so it cannot hide the genuine one.
 */
export function dhtCandidates(
  values: readonly Uint8Array[],
  trust: Trust,
  now: Date,
  key: string,
  logger?: Logger,
): Candidate[] {
  return recordCandidates(trustedRecords(values, trust, now, key, logger), key, logger);
}

function recordCandidates(
  records: readonly DiscoveryRecord[],
  key: string,
  logger?: Logger,
): Candidate[] {
  const out: Candidate[] = [];
  for (const r of records) {
    if (r.mirrors.length === 0) {
      logger?.info("dht_record_without_mirror", {
        key,
        manifest_cid: r.manifestCid,
        providers: r.providers.length,
      });
      continue;
    }
    out.push({
      manifestUrl: r.mirrors[0],
      mirrors: r.mirrors.slice(1),
      providers: r.providers,
      source: "dht",
      version: r.version,
      manifestCid: r.manifestCid,
      name: key,
    });
  }
  return out;
}

/**
 * The re-serving peers of a trusted record as candidates of their own:
 * each peer's HTTP URL (from its peer record, docs/dht-keys.md) with the
 * release's manifest path. Used when the record names no mirror, or when
 * its mirrors fail their probe (the origin is gone, the peers are not).
 * Hints like mDNS answers (TM-07, TM-08): each is probed, and fetch
 * verifies the manifest under the trust file and every digest.
 */
export function providerCandidates(
  record: { readonly version?: string; readonly manifestCid: string },
  peers: readonly string[],
  channel: string,
  arch: string,
  key: string,
): Candidate[] {
  const out: Candidate[] = [];
  for (const p of peers) {
    const url = httpUrl(
      new URL(`${channel}/${arch}/manifest.json`, p.endsWith("/") ? p : `${p}/`).href,
    );
    if (!url) continue;
    out.push({
      manifestUrl: url,
      mirrors: [],
      providers: [...peers],
      source: "dht",
      version: record.version,
      manifestCid: record.manifestCid,
      name: key,
    });
  }
  return out;
}

/** Result of a `/health` probe. */
export type Health =
  | { readonly ok: true }
  | { readonly ok: false; readonly captivePortal: boolean; readonly reason: string };

/**
 * Probes `<origin>/health`. A Phase provider answers 200 with JSON; a
 * redirect (to anywhere) or an HTML page is a captive portal (TM-15).
 */
export async function probeHealth(
  manifestUrl: string,
  opts: { timeoutMs?: number; fetchFn?: FetchFn } = {},
): Promise<Health> {
  const url = new URL("/health", manifestUrl).href;
  const timeoutMs = opts.timeoutMs ?? PROBE_TIMEOUT_MS;
  const limits: TransferLimits = {
    headersTimeoutMs: timeoutMs,
    stallTimeoutMs: timeoutMs,
    minRateBytesPerS: 0,
    minRateWindowMs: timeoutMs,
  };
  const fetchFn = opts.fetchFn ?? fetch;
  // Redirects are not followed at all here: even a same-origin redirect of
  // /health is not what a provider does.
  const noFollow: FetchFn = (input, init) => fetchFn(input, { ...init, redirect: "manual" });
  let open;
  try {
    open = await openRequest({ url, accept: "application/json" }, { limits, fetchFn: noFollow });
  } catch (err) {
    if (err instanceof PhaseError && err.code === "E_REDIRECT") {
      return {
        ok: false,
        captivePortal: true,
        reason: `/health redirected elsewhere: ${err.message}`,
      };
    }
    return { ok: false, captivePortal: false, reason: `unreachable: ${(err as Error).message}` };
  }
  const { response } = open;
  if (response.status >= 300 && response.status < 400) {
    open.abort.abort();
    await response.body?.cancel().catch(() => {});
    return {
      ok: false,
      captivePortal: true,
      reason: `/health answered ${response.status} to ${response.headers.get("location")}`,
    };
  }
  const parts: Uint8Array[] = [];
  try {
    await readGuarded(open, MAX_HEALTH_BYTES, (c) => {
      parts.push(c.slice());
    }, { limits });
  } catch (err) {
    return { ok: false, captivePortal: false, reason: `unreachable: ${(err as Error).message}` };
  }
  const text = new TextDecoder().decode(new Uint8Array(parts.flatMap((p) => [...p])));
  const type = response.headers.get("content-type") ?? "";
  if (/text\/html/i.test(type) || /<\s*(!doctype|html|head|body|form)\b/i.test(text)) {
    return {
      ok: false,
      captivePortal: true,
      reason: "/health answered an HTML page (a login page?)",
    };
  }
  if (response.status !== 200) {
    return { ok: false, captivePortal: false, reason: `/health answered ${response.status}` };
  }
  try {
    const doc = JSON.parse(text);
    if (doc?.status !== "serving") throw new Error("not serving");
  } catch {
    return {
      ok: false,
      captivePortal: true,
      reason: "/health answered something that is not a Phase provider",
    };
  }
  return { ok: true };
}

/**
 * The step order: a command-line manual URL first, then the requested
 * order. Local mode asks the LAN only: never the WAN (DHT) nor the policy
 * file's manual URL (one rule, here; the boot orchestrator passes the mode).
 */
export function stepOrder(policy: Policy, order?: readonly Step[]): Step[] {
  let steps = [...(order ?? ["lan", "wan", "manual"])];
  if (policy.mode === "local") steps = steps.filter((s) => s === "lan");
  if (policy.providerFromCmdline) steps = ["manual", ...steps.filter((s) => s !== "manual")];
  return steps;
}

function trustClaim(v: string | undefined): number | undefined {
  if (v === undefined || !/^[1-9][0-9]{0,8}$/.test(v)) return undefined;
  const n = Number(v);
  return n <= MAX_TRUST_VERSION ? n : undefined;
}

/**
 * The sources asked for the trust chain before the DHT records: the
 * policy's manual URL (when the manual step runs), then the candidates the
 * LAN step found, each with the trust version its TXT claims. The DHT
 * records' own sources are added by {@link walkForRecords}.
 */
function trustSources(
  o: DiscoverOptions,
  found: readonly Candidate[],
  mdnsClaims: ReadonlyMap<string, number | undefined>,
): TrustOrigin[] {
  const out: TrustOrigin[] = [];
  if (o.policy.provider && stepOrder(o.policy, o.order).includes("manual")) {
    out.push({ url: o.policy.provider });
  }
  for (const c of found) {
    out.push({ url: c.manifestUrl, claims: c.name ? mdnsClaims.get(c.name) : undefined });
  }
  return out;
}

/**
 * TM-09: the newest trust reachable before DHT records are judged, so a
 * record signed only by a rotated-in key counts, and one signed only by a
 * retired key does not, even on a device that never fetched since the
 * rotation (every private boot). Sources: the manual URL and LAN
 * candidates first; then the records' mirrors and HTTP providers, those
 * the current trust signs before the others, each with the
 * `trust_version` it claims. A record's claims are hints: every step is
 * verified from the trust already held, and a bad source is skipped.
 */
async function walkForRecords(
  o: DiscoverOptions,
  values: readonly Uint8Array[],
  before: readonly TrustOrigin[],
  now: Date,
): Promise<Trust> {
  const signed: TrustOrigin[] = [];
  const unsigned: TrustOrigin[] = [];
  for (const v of values.slice(0, MAX_DHT_VALUES)) {
    let r: DiscoveryRecord;
    try {
      r = decodeRecord(v, now);
    } catch {
      continue; // dhtCandidates reports it
    }
    let trusted = true;
    try {
      verifyRecord(v, o.trust, now);
    } catch {
      trusted = false;
    }
    const urls = [...r.mirrors, ...r.providers.filter((p) => /^https?:\/\//.test(p))];
    for (const url of urls) (trusted ? signed : unsigned).push({ url, claims: r.trustVersion });
  }
  // Among unsigned records, the highest claim first (its source is the likeliest to serve it).
  unsigned.sort((a, b) => (b.claims ?? 0) - (a.claims ?? 0));
  const deadlineMs = o.probeTimeoutMs ?? PROBE_TIMEOUT_MS;
  const { trust, asked } = await reachTrust({
    start: o.trust,
    floor: o.trustWalk?.floor,
    origins: [...before, ...signed, ...unsigned],
    now,
    deadlineMs,
    fetchFn: o.fetchFn,
    logger: o.logger,
  });
  o.logger?.info("discover_trust", {
    from: o.trust.version,
    version: trust.version,
    asked,
    persisted: false,
    threat: "TM-09",
  });
  return trust;
}

/** Runs discovery. Never throws for a failed step: it is reported in `steps`. */
export async function discover(o: DiscoverOptions): Promise<DiscoverResult> {
  const arch = canonicalArch(o.arch);
  if (!arch) {
    throw new ClientError("E_POLICY", `unknown arch '${o.arch}'`, {
      hint: "give --arch amd64 or arm64 (x86_64 and aarch64 are accepted too)",
    });
  }
  const channel = o.policy.channel;
  const now = o.now?.() ?? new Date();
  const steps: DiscoverStep[] = [];
  const found: Candidate[] = [];
  const mdnsClaims = new Map<string, number | undefined>();
  const healthByOrigin = new Map<string, Promise<Health>>();
  // Per manifest CID: the DHT provider records' peers, standing in for a record whose mirrors fail their probe.
  const dhtStandIns = new Map<string, Candidate[]>();
  const order = stepOrder(o.policy, o.order);
  for (const step of order) {
    const t0 = performance.now();
    let got: Candidate[] = [];
    let error: string | undefined;
    try {
      if (step === "lan") {
        if (!o.mdns) {
          throw new ClientError("E_NO_CANDIDATE", "no mDNS querier available", {
            hint:
              "this machine has no non-loopback IPv4 address: give --interface IPv4, or --order manual",
          });
        }
        const ms = o.mdnsTimeoutMs ?? MDNS_STEP_TIMEOUT_MS;
        const answers = await bounded(o.mdns(ms), ms + 1_000, "mDNS step");
        for (const a of answers) mdnsClaims.set(a.instance, trustClaim(a.txt.trust_version));
        got = mdnsCandidates(answers, channel, arch);
      } else if (step === "wan") {
        if (!o.dht) {
          throw new ClientError("E_NO_CANDIDATE", "no DHT lookup available (no bootstrap peers?)", {
            hint:
              "give --bootstrap MULTIADDR or bootstrap = [...] in policy.toml, or leave 'wan' out of --order",
          });
        }
        const ms = o.dhtTimeoutMs ?? DHT_STEP_TIMEOUT_MS;
        const key = dhtRecordKey(channel, arch);
        const values = await bounded(o.dht(key, ms), ms + 1_000, "DHT step");
        const trust = o.trustWalk && values.length > 0
          ? await walkForRecords(o, values, trustSources(o, found, mdnsClaims), now)
          : o.trust;
        const records = trustedRecords(values, trust, now, key, o.logger);
        got = recordCandidates(records, key, o.logger);
        const best = records[0];
        if (o.dhtProviders && best) {
          // Re-serving peers of the best trusted release (one bounded lookup).
          const cid = best.manifestCid;
          const urls = await bounded(o.dhtProviders(cid, ms), ms + 1_000, "DHT provider lookup")
            .catch((err) => {
              o.logger?.warn("dht_providers_failed", { error: (err as Error).message });
              return [] as readonly string[];
            });
          const peers = [...new Set(urls.map(httpUrl).filter((u): u is string => !!u))];
          o.logger?.info("dht_providers", { manifest_cid: cid, found: peers.length });
          got = got.map((c) =>
            c.manifestCid === cid
              ? { ...c, providers: [...new Set([...c.providers, ...peers])] }
              : c
          );
          const own = providerCandidates(best, peers, channel, arch, key);
          if (got.some((c) => c.manifestCid === cid)) {
            // Kept for the probe: they stand in if the record's mirrors fail it.
            dhtStandIns.set(cid, own);
          } else {
            // The record names no mirror: its providers are the only sources.
            got = [...own, ...got];
          }
        }
      } else if (o.policy.provider) {
        got = [{
          manifestUrl: o.policy.provider,
          mirrors: [],
          providers: [],
          source: o.policy.providerFromCmdline ? "cmdline" : "manual",
        }];
      }
    } catch (err) {
      error = (err as Error).message;
      o.logger?.warn("discover_step_failed", { step, error });
    }
    const ms = Math.round(performance.now() - t0);
    steps.push({ step, ms, found: got.length, ...(error ? { error } : {}) });
    o.logger?.info("discover_step", { step, ms, found: got.length });
    found.push(...got);
    // Issue 17: a command-line URL that answers as a provider is the
    // operator's choice; the LAN window (and the DHT) are not waited out
    // for it. One that does not answer (down, captive portal: TM-15) falls
    // through to the other steps as before. Its manifest is verified by
    // fetch like any other candidate's.
    if (step === "manual" && o.policy.providerFromCmdline && got.length && o.probe !== false) {
      const origin = new URL(got[0].manifestUrl).origin;
      const health = probeHealth(got[0].manifestUrl, {
        timeoutMs: o.probeTimeoutMs,
        fetchFn: o.fetchFn,
      });
      healthByOrigin.set(origin, health);
      if ((await health).ok && order.length > 1) {
        o.logger?.info("discover_cmdline_first", {
          url: got[0].manifestUrl,
          skipped: order.slice(1),
        });
        break;
      }
    }
  }
  // Deduplicate by manifest URL, keeping the first (best-ranked) occurrence.
  const firstByUrl = new Map<string, Candidate>();
  for (const c of found) if (!firstByUrl.has(c.manifestUrl)) firstByUrl.set(c.manifestUrl, c);
  const candidates: Candidate[] = [];
  const rejected: Rejected[] = [];
  const list = [...firstByUrl.values()].slice(0, MAX_CANDIDATES);
  const health = (c: Candidate): Promise<Health> => {
    const origin = new URL(c.manifestUrl).origin;
    let h = healthByOrigin.get(origin);
    if (!h) {
      h = probeHealth(c.manifestUrl, { timeoutMs: o.probeTimeoutMs, fetchFn: o.fetchFn });
      healthByOrigin.set(origin, h);
    }
    return h;
  };
  /** Probes `c`: keeps it, or records why not. */
  const judge = async (c: Candidate): Promise<boolean> => {
    const h = await health(c);
    if (h.ok) {
      candidates.push(c);
      return true;
    }
    rejected.push({
      url: c.manifestUrl,
      source: c.source,
      reason: h.reason,
      captivePortal: h.captivePortal,
      hint: h.captivePortal
        ? "this network answers in place of the provider (captive portal?): log in elsewhere or give a manual URL with phase.provider= on the kernel command line"
        : undefined,
    });
    if (h.captivePortal) {
      o.logger?.warn("captive_portal", { url: c.manifestUrl, reason: h.reason, threat: "TM-15" });
    }
    return false;
  };
  if (o.probe === false) {
    candidates.push(...list);
  } else {
    // Probes run concurrently, one per origin, each bounded.
    for (const c of list) health(c);
    for (const c of list) {
      if (await judge(c)) continue;
      const cid = c.source === "dht" ? c.manifestCid : undefined;
      const standIns = cid ? dhtStandIns.get(cid) : undefined;
      if (!cid || !standIns) continue;
      // The record verified, its mirrors did not answer (the origin is
      // gone): the peers that provide its manifest CID stand in, in its
      // place, each probed; still hints (TM-07, TM-08).
      dhtStandIns.delete(cid);
      const fresh = standIns.filter((s) => !firstByUrl.has(s.manifestUrl));
      for (const s of fresh) health(s);
      let kept = 0;
      for (const s of fresh) if (await judge(s)) kept++;
      o.logger?.info("dht_providers_stand_in", {
        manifest_cid: cid,
        mirror: c.manifestUrl,
        peers: fresh.length,
        kept,
      });
    }
  }
  return { candidates: spread(candidates.slice(0, MAX_CANDIDATES)), rejected, steps };
}

/**
 * Candidates that claim the same manifest (by CID) are the same release
 * from several peers: each gets the others' manifest URLs as mirrors and
 * their providers, so `fetch` spreads ranged requests over all of them.
 * The claim is a hint: a peer that lies is caught by the digest and dropped.
 */
export function spread(candidates: readonly Candidate[]): Candidate[] {
  const byCid = new Map<string, Candidate[]>();
  for (const c of candidates) {
    if (!c.manifestCid) continue;
    const list = byCid.get(c.manifestCid) ?? [];
    list.push(c);
    byCid.set(c.manifestCid, list);
  }
  return candidates.map((c) => {
    const group = c.manifestCid ? byCid.get(c.manifestCid)! : [c];
    if (group.length < 2) return c;
    const mirrors = [...c.mirrors];
    const providers = [...c.providers];
    for (const o of group) {
      if (o === c) continue;
      for (const u of [o.manifestUrl, ...o.mirrors]) {
        if (u !== c.manifestUrl && !mirrors.includes(u)) mirrors.push(u);
      }
      for (const p of o.providers) if (!providers.includes(p)) providers.push(p);
    }
    return { ...c, mirrors, providers };
  });
}

/**
 * A re-discovery for `fetchRelease({ rediscover })`: runs {@link discover}
 * again and returns the HTTP origins of every candidate that claims the
 * given manifest CID (its manifest URL, mirrors and HTTP providers). The
 * claim is a hint (TM-07, TM-08): the fetcher checks every artifact's
 * digest and drops a peer that sends wrong bytes.
 */
export function discoverProviders(
  o: DiscoverOptions,
): (manifestCid: string, signal: AbortSignal) => Promise<readonly string[]> {
  return async (manifestCid) => {
    const { candidates } = await discover(o);
    const out: string[] = [];
    for (const c of candidates) {
      if (c.manifestCid !== manifestCid) continue;
      for (const u of [c.manifestUrl, ...c.mirrors, ...c.providers]) {
        const h = httpUrl(u);
        if (!h) continue;
        const origin = new URL(h).origin;
        if (!out.includes(origin)) out.push(origin);
      }
    }
    return out;
  };
}
