/**
 * The provider's route table (formats.md §3): each route matches decoded
 * path segments and answers from the catalog. Private to provider/.
 *
 * @module
 */
import { canonicalArch, digestOfRawCid, rawCidFromDigest } from "../verify/mod.ts";
import type { Artifact, Catalog, Release } from "./catalog.ts";
import { type PageExtras, renderStatusPage } from "./html.ts";
import {
  BUSY_LOG_QUIET_MS,
  DOWNLOAD_RETRY_AFTER_S,
  type HandlerOptions,
  MAX_DOWNLOADS,
  providerInfo,
} from "./http.ts";
import { accepts, prefersHtml } from "./range.ts";
import { type ArtifactContext, serveArtifact } from "./_artifact.ts";
import { downloadCap, type RequestContext } from "./_middleware.ts";
import { json, MemoryDocuments, sized, text } from "./_respond.ts";

const HEX64_RE = /^[0-9a-f]{64}$/;

/** One entry of the route table. */
export interface Route {
  readonly name: string;
  readonly match: (segs: readonly string[]) => boolean;
  readonly handle: (
    req: Request,
    ctx: RequestContext,
    catalog: Catalog,
  ) => Response | Promise<Response>;
}

/** True for a loopback client, or none (a handler called without a socket). */
export function isLoopback(remote: string | undefined): boolean {
  if (remote === undefined) return true;
  return remote === "::1" || remote.startsWith("127.") || remote.startsWith("::ffff:127.");
}

const HOST_RE = /^[A-Za-z0-9.-]{1,253}(:[0-9]{1,5})?$|^\[[0-9A-Fa-f:.]{2,45}\](:[0-9]{1,5})?$/;

/** `http://host:port` as the reader addressed this provider (a plain Host only). */
function originOf(req: Request): string {
  const host = req.headers.get("host");
  if (host && HOST_RE.test(host)) return `http://${host}`;
  try {
    return new URL(req.url).origin;
  } catch {
    return "";
  }
}

function hexBytes(hex: string): Uint8Array {
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.slice(i * 2, i * 2 + 2), 16);
  return out;
}

/** The route table of a handler, in match order. */
export function routes(
  opts: HandlerOptions,
  artifacts: ArtifactContext,
  defaults: { channel: string; arch: string },
): readonly Route[] {
  const m = opts.metrics;
  const docs = new MemoryDocuments(m);
  // TM-18, issue 12 §4: artifact bodies only; documents are never refused by it.
  const gate = downloadCap(
    m,
    opts.logger,
    opts.maxDownloads ?? MAX_DOWNLOADS,
    DOWNLOAD_RETRY_AFTER_S,
    BUSY_LOG_QUIET_MS,
  );
  const download = (
    req: Request,
    ctx: RequestContext,
    a: Artifact,
    extra: Record<string, string>,
    key: string,
  ) => gate(req, ctx, () => serveArtifact(artifacts, req, a, extra, key));
  const now = opts.now ?? (() => new Date());
  // Counters and advertisement state are for the operator (finding 15):
  // loopback only unless the operator said otherwise (logged at start).
  const showCounters = (ctx: RequestContext) =>
    opts.unsafePublicStatus === true || isLoopback(ctx.remote);

  const releaseFor = (catalog: Catalog, channel: string, arch: string): Release | undefined => {
    const canonical = canonicalArch(arch);
    return canonical ? catalog.releases.get(`${channel}/${canonical}`) : undefined;
  };
  const manifest = (req: Request, ctx: RequestContext, r: Release, type = "application/json") =>
    docs.serve(req, ctx, r.manifestBytes, r.manifestDigest, type);

  // Digests of discovery records, computed once per record.
  const recordDigests = new WeakMap<Uint8Array, string>();
  const recordDigest = async (record: Uint8Array): Promise<string> => {
    const digest = new Uint8Array(
      await crypto.subtle.digest("SHA-256", record as Uint8Array<ArrayBuffer>),
    );
    const hex = [...digest].map((b) => b.toString(16).padStart(2, "0")).join("");
    recordDigests.set(record, hex);
    return hex;
  };

  return [
    {
      name: "index",
      match: (s) => s.length === 0,
      handle: (req, ctx, catalog) => {
        const info = providerInfo(opts, { counters: showCounters(ctx) });
        if (prefersHtml(req.headers.get("accept"))) {
          // Paths on this machine only for loopback readers (finding 18).
          const local = isLoopback(ctx.remote);
          const page = opts.page ?? {};
          const trustedBy: Record<string, string> = {};
          if (local) {
            for (const [k, r] of catalog.releases) if (r.trustedBy) trustedBy[k] = r.trustedBy;
          }
          const extras: PageExtras = {
            origin: originOf(req),
            keyid: page.keyid,
            ...(local ? { trustPath: page.trustPath, root: page.root, trustedBy } : {}),
          };
          return sized(200, renderStatusPage(info, extras), {
            "content-type": "text/html; charset=utf-8",
            "cache-control": "no-store",
            "content-security-policy": "default-src 'none'; style-src 'unsafe-inline'",
            "referrer-policy": "no-referrer",
          });
        }
        return json(200, info);
      },
    },
    {
      name: "health",
      match: (s) => s.length === 1 && s[0] === "health",
      handle: () => {
        // Readiness: 503 until the first catalog is loaded, 503 again while stopping.
        if (!(opts.serving?.() ?? true)) return json(503, { status: "stopping" });
        if (!(opts.ready?.() ?? true)) return json(503, { status: "starting" });
        return json(200, { status: "serving" });
      },
    },
    {
      name: "status",
      match: (s) => s.length === 1 && s[0] === "status",
      handle: (_req, ctx, catalog) => {
        if (!showCounters(ctx)) return text(403, "status is answered on loopback only");
        return json(200, {
          ...m,
          // This request itself is not counted.
          inflight: m.inflight - 1,
          releases: catalog.releases.size,
          uptime_s: Math.floor((now().getTime() - opts.startedAt.getTime()) / 1000),
          advert: opts.advert?.() ?? null,
        });
      },
    },
    {
      name: "default manifest",
      match: (s) => s.length === 1 && s[0] === "manifest.json",
      handle: (req, ctx, catalog) => {
        const r = releaseFor(catalog, defaults.channel, defaults.arch);
        return r ? manifest(req, ctx, r) : text(404, "not found");
      },
    },
    {
      name: "cas",
      match: (s) => s.length === 3 && s[0] === "cas" && s[1] === "sha256" && HEX64_RE.test(s[2]),
      handle: (req, ctx, catalog) => {
        const a = catalog.byDigest.get(ctx.segs[2]);
        if (a) return download(req, ctx, a, {}, `${a.channel}/${a.arch}/${a.name}`);
        const r = catalog.manifestsByDigest.get(ctx.segs[2]);
        return r ? manifest(req, ctx, r) : text(404, "not found");
      },
    },
    {
      name: "ipfs",
      match: (s) => s.length === 2 && s[0] === "ipfs",
      handle: (req, ctx, catalog) => {
        const cid = ctx.segs[1];
        const hex = digestOfRawCid(cid);
        // One spelling per CID: base32 with non-zero padding bits decodes
        // to the same digest; only the canonical encoding is served.
        if (!hex || !HEX64_RE.test(hex) || rawCidFromDigest(hexBytes(hex)) !== cid) {
          return text(404, "not found");
        }
        const format = new URLSearchParams(ctx.query).get("format");
        if (format !== null && format !== "raw") return text(406, "only format=raw is served");
        const raw = format === "raw" ||
          accepts(req.headers.get("accept"), "application/vnd.ipld.raw");
        const type = raw ? "application/vnd.ipld.raw" : "application/octet-stream";
        const extra = {
          "content-type": type,
          "content-disposition": `attachment; filename="${cid}.bin"`,
          "x-ipfs-path": `/ipfs/${cid}`,
        };
        const a = catalog.byDigest.get(hex);
        if (a) return download(req, ctx, a, extra, `${a.channel}/${a.arch}/${a.name}`);
        const r = catalog.manifestsByDigest.get(hex);
        if (!r) return text(404, "not found");
        const res = manifest(req, ctx, r, type);
        for (const [k, v] of Object.entries(extra)) res.headers.set(k, v);
        return res;
      },
    },
    {
      // formats.md §1.1: one version of the trust chain; clients verify each step.
      name: "trust version",
      match: (s) => s.length === 2 && s[0] === "trust" && /^[1-9][0-9]{0,8}\.json$/.test(s[1]),
      handle: (req, ctx, catalog) => {
        const t = catalog.trustChain?.get(Number(ctx.segs[1].slice(0, -".json".length)));
        return t
          ? docs.serve(req, ctx, t.bytes, t.digest, "application/json")
          : text(404, "no such trust version");
      },
    },
    {
      name: "release file",
      match: (s) => s.length === 3,
      handle: (req, ctx, catalog) => {
        const [channel, arch, file] = ctx.segs;
        const r = releaseFor(catalog, channel, arch);
        if (!r) return text(404, "not found");
        if (file === "manifest.json") return manifest(req, ctx, r);
        if (file === "record.json") {
          if (!r.record) return text(404, "no discovery record for this release");
          const record = r.record;
          const hex = recordDigests.get(record);
          if (hex) return docs.serve(req, ctx, record, hex, "application/json");
          return recordDigest(record).then((h) =>
            docs.serve(req, ctx, record, h, "application/json")
          );
        }
        const a = r.artifacts.get(file);
        return a
          ? download(req, ctx, a, {}, `${r.channel}/${r.arch}/${a.name}`)
          : text(404, "not found");
      },
    },
  ];
}

/**
 * The last handler of the pipeline: the first matching route answers, else
 * 404. Matchers look at the segments only, so the route of a remembered
 * (frozen, see cachedSafeSegments) segment array is remembered with it.
 */
export function router(table: readonly Route[], catalog: () => Catalog) {
  const routeOf = new WeakMap<readonly string[], Route>();
  return (req: Request, ctx: RequestContext): Response | Promise<Response> => {
    const segs = ctx.segs;
    let route = routeOf.get(segs);
    if (route === undefined) {
      for (const r of table) {
        if (r.match(segs)) {
          route = r;
          break;
        }
      }
      if (route === undefined) return text(404, "not found");
      if (Object.isFrozen(segs)) routeOf.set(segs, route);
    }
    return route.handle(req, ctx, catalog());
  };
}
