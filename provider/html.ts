/**
 * The HTML status page (`GET /` from a browser): plain server-rendered
 * HTML, no script, every value escaped (CSP `default-src 'none'`). It
 * refreshes itself with a meta refresh (no script needed, so the CSP stays
 * strict). Paths on this machine (root, trust file) are shown to loopback
 * clients only (finding 18).
 *
 * @module
 */

function esc(v: unknown): string {
  return String(v ?? "").replace(
    /[&<>"']/g,
    (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]!,
  );
}

function bytes(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${n} B` : `${v.toFixed(1)} ${units[i]}`;
}

/** Seconds between reloads of the status page (meta refresh). */
export const PAGE_REFRESH_S = 10;

/** The default trust file a remote reader is told to use (what `deno task keygen` writes). */
const REMOTE_TRUST_HINT = "./.phase/trust/trust.json";

/** What the page shows beyond `GET /`'s JSON; paths only for loopback readers. */
export interface PageExtras {
  /** Base URL the reader used (`http://host:port`), for links and the fetch command. */
  readonly origin: string;
  /** Keyid of the provider's signing key; absent with `--no-sign`. */
  readonly keyid?: string;
  /** The trust file for clients (loopback readers only). */
  readonly trustPath?: string;
  /** The root as the operator named it (loopback readers only). */
  readonly root?: string;
  /** Per `<channel>/<arch>`: the trust file that verified a pre-signed release (loopback only). */
  readonly trustedBy?: Readonly<Record<string, string>>;
}

/** What {@link renderStatusPage} reads: `GET /`'s JSON. */
export interface PageInfo {
  name: string;
  version: string;
  uptime_s: number;
  channels: {
    channel: string;
    arch: string;
    version: string;
    origin: string;
    expires_at: string;
    manifest_cid: string;
    manifest: string;
    signers?: readonly string[];
    artifacts: { name: string; size: number; digest: string }[];
  }[];
  refused: readonly { dir: string; code: string; item?: string }[];
  advert: {
    mdns: { enabled: boolean; state: string; instances: readonly string[] };
    dht: {
      enabled: boolean;
      state: string;
      peerId?: string;
      addresses?: readonly string[];
      peers: number;
    };
  } | null;
  metrics: {
    requests: number;
    bytes: number;
    errors: number;
    inflight: number;
    rejectedPaths: number;
    downloads?: number;
    refusedDownloads?: number;
  } | null;
}

function counters(m: NonNullable<PageInfo["metrics"]>): string {
  return `<h2>Counters</h2>
<table id="counters">
<tr><th>requests</th><td id="requests">${m.requests}</td></tr>
<tr><th>bytes sent</th><td id="bytes" data-bytes="${m.bytes}">${esc(bytes(m.bytes))}</td></tr>
<tr><th>errors</th><td id="errors">${m.errors}</td></tr>
<tr><th>in flight</th><td id="inflight">${m.inflight}</td></tr>
<tr><th>rejected paths</th><td id="rejected">${m.rejectedPaths}</td></tr>
<tr><th>downloads</th><td id="downloads">${m.downloads ?? 0}</td></tr>
<tr><th>downloads refused (busy)</th><td id="refused-downloads">${m.refusedDownloads ?? 0}</td></tr>
</table>`;
}

/** The `deno task fetch` line for one release, ready to paste. */
export function fetchCommand(manifestUrl: string, trust: string): string {
  return `deno task fetch --manifest ${manifestUrl} --trust ${trust} --cache ./.cache`;
}

function advertRows(advert: NonNullable<PageInfo["advert"]>): string {
  const { mdns, dht } = advert;
  const mdnsText = mdns.enabled
    ? `${esc(mdns.state)}${mdns.instances.length ? `: ${esc(mdns.instances.join(", "))}` : ""}`
    : "off";
  // With the DHT off there is no peer to name (no "peer , 0 peers").
  const dhtText = dht.enabled
    ? `${esc(dht.state)}${
      dht.peerId ? `, peer <code id="dht-peer">${esc(dht.peerId)}</code>` : ""
    }, ` +
      `<span id="dht-peers">${dht.peers}</span> peer${dht.peers === 1 ? "" : "s"}`
    : "off";
  return `<h2>Advertisement</h2>
<table id="advert">
<tr><th>mDNS</th><td id="mdns-state">${mdnsText}</td></tr>
<tr><th>DHT</th><td id="dht-state">${dhtText}</td></tr>
</table>`;
}

/** Renders the status page. */
export function renderStatusPage(info: PageInfo, extras: PageExtras = { origin: "" }): string {
  const local = extras.root !== undefined;
  const rows = info.channels.flatMap((c) =>
    c.artifacts.map((a) =>
      `<tr data-channel="${esc(c.channel)}" data-arch="${esc(c.arch)}" data-artifact="${
        esc(a.name)
      }">` +
      `<td>${esc(c.channel)}</td><td>${esc(c.arch)}</td><td class="version">${
        esc(c.version)
      }</td>` +
      `<td class="expires">${esc(c.expires_at)}</td>` +
      `<td><a class="artifact" href="${esc(`/${c.channel}/${c.arch}/${a.name}`)}" download>${
        esc(a.name)
      }</a></td>` +
      `<td class="size" data-bytes="${a.size}">${esc(bytes(a.size))}</td>` +
      `<td class="digest"><code>${esc(a.digest)}</code></td></tr>`
    )
  ).join("\n");
  const releases = info.channels.map((c) => {
    const key = `${c.channel}/${c.arch}`;
    const trust = c.origin === "generated"
      ? extras.trustPath
      : extras.trustedBy?.[key] ?? extras.trustPath;
    const cmd = fetchCommand(`${extras.origin}${c.manifest}`, trust ?? REMOTE_TRUST_HINT);
    const note = trust
      ? ""
      : ` <small>(the trust file that lists ${
        c.signers?.length ? `<code>${esc(c.signers.join(", "))}</code>` : "its signer"
      })</small>`;
    return `<li data-release="${esc(key)}"><a href="${esc(c.manifest)}">${esc(key)}</a> ` +
      `version <b>${esc(c.version)}</b> (${esc(c.origin)}), cid <code>${
        esc(c.manifest_cid)
      }</code>` +
      `${c.signers?.length ? `, signed by <code>${esc(c.signers.join(", "))}</code>` : ""}` +
      `<pre class="fetch">${esc(cmd)}</pre>${note}</li>`;
  }).join("\n");
  const refused = info.refused.map((r) =>
    `<li><code>${esc(r.dir)}${r.item ? ` ${esc(r.item)}` : ""}</code>: ${esc(r.code)}</li>`
  )
    .join("\n");
  const where = local
    ? `<code id="root">${esc(extras.root)}/&lt;channel&gt;/&lt;arch&gt;/</code>`
    : "the provider's root, as <code>&lt;channel&gt;/&lt;arch&gt;/</code>";
  const signing = extras.keyid
    ? `generated manifests are signed by <code id="keyid">${esc(extras.keyid)}</code>`
    : `off (<code>--no-sign</code>): only pre-signed releases are served`;
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="refresh" content="${PAGE_REFRESH_S}">
<title>Phase provider ${esc(info.name)}</title>
<style>body{font-family:sans-serif;margin:2em;max-width:80em}table{border-collapse:collapse}
td,th{border:1px solid #ccc;padding:.2em .5em;text-align:left}code{font-size:.85em}
td{white-space:nowrap}pre.fetch{background:#f4f4f4;padding:.4em .6em;white-space:pre-wrap;overflow-wrap:anywhere}
small{color:#555}#about th{width:8em}</style>
</head><body>
<h1>Phase provider <span id="name">${esc(info.name)}</span></h1>
<p>phase ${esc(info.version)}, up <span id="uptime">${info.uptime_s}</span> s.
<small>This page reloads every ${PAGE_REFRESH_S} s.</small></p>
<table id="about">
<tr><th>signing</th><td>${signing}</td></tr>${
    local && extras.trustPath
      ? `\n<tr><th>trust file</th><td><code id="trust">${esc(extras.trustPath)}</code></td></tr>`
      : ""
  }${
    local ? `\n<tr><th>root</th><td><code id="root-path">${esc(extras.root)}</code></td></tr>` : ""
  }
</table>
<h2>Releases</h2>
${
    info.channels.length
      ? `<ul id="releases">${releases}</ul>`
      : `<p id="empty">No release yet. Put <code>kernel</code> and <code>initramfs</code> under ${where}${
        extras.keyid ? " (this provider signs them)" : ""
      }, or a release signed with <code>deno task sign</code>.</p>`
  }
<table id="artifacts"><thead><tr><th>channel</th><th>arch</th><th>version</th><th>expires</th><th>artifact</th><th>size</th><th>digest</th></tr></thead>
<tbody>
${rows}
</tbody></table>
${refused ? `<h2>Refused</h2><ul id="refused">${refused}</ul>` : ""}
${info.metrics ? counters(info.metrics) : ""}
${info.advert ? advertRows(info.advert) : ""}
</body></html>
`;
}
