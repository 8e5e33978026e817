/**
 * The HTML status page (`GET /` from a browser): plain server-rendered
 * HTML, no script, every value escaped (CSP `default-src 'none'`).
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

interface PageInfo {
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
    artifacts: { name: string; size: number; digest: string }[];
  }[];
  refused: readonly { dir: string; code: string }[];
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
</table>`;
}

/** Renders the status page. */
export function renderStatusPage(info: PageInfo): string {
  const rows = info.channels.flatMap((c) =>
    c.artifacts.map((a) =>
      `<tr data-channel="${esc(c.channel)}" data-arch="${esc(c.arch)}" data-artifact="${
        esc(a.name)
      }">` +
      `<td>${esc(c.channel)}</td><td>${esc(c.arch)}</td><td class="version">${
        esc(c.version)
      }</td>` +
      `<td class="expires">${esc(c.expires_at)}</td><td>${esc(a.name)}</td>` +
      `<td class="size" data-bytes="${a.size}">${esc(bytes(a.size))}</td>` +
      `<td class="digest"><code>${esc(a.digest)}</code></td></tr>`
    )
  ).join("\n");
  const releases = info.channels.map((c) =>
    `<li><a href="${esc(c.manifest)}">${esc(c.channel)}/${esc(c.arch)}</a> ` +
    `version <b>${esc(c.version)}</b> (${esc(c.origin)}), cid <code>${
      esc(c.manifest_cid)
    }</code></li>`
  ).join("\n");
  const refused = info.refused.map((r) => `<li><code>${esc(r.dir)}</code>: ${esc(r.code)}</li>`)
    .join("\n");
  const mdns = info.advert?.mdns;
  const dht = info.advert?.dht;
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>Phase provider ${esc(info.name)}</title>
<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}
td,th{border:1px solid #ccc;padding:.2em .5em;text-align:left}code{font-size:.85em}</style>
</head><body>
<h1>Phase provider <span id="name">${esc(info.name)}</span></h1>
<p>phase ${esc(info.version)}, up <span id="uptime">${info.uptime_s}</span> s</p>
<h2>Releases</h2>
${
    info.channels.length
      ? `<ul id="releases">${releases}</ul>`
      : `<p id="empty">No release yet. Put kernel and initramfs under <code>&lt;root&gt;/&lt;channel&gt;/&lt;arch&gt;/</code>, or a release signed with <code>deno task sign</code>.</p>`
  }
<table id="artifacts"><thead><tr><th>channel</th><th>arch</th><th>version</th><th>expires</th><th>artifact</th><th>size</th><th>digest</th></tr></thead>
<tbody>
${rows}
</tbody></table>
${refused ? `<h2>Refused</h2><ul id="refused">${refused}</ul>` : ""}
${info.metrics ? counters(info.metrics) : ""}
<h2>Advertisement</h2>
<table id="advert">
<tr><th>mDNS</th><td id="mdns-state">${esc(mdns ? (mdns.enabled ? mdns.state : "off") : "off")}</td>
<td id="mdns-instances">${esc(mdns?.instances.join(", ") ?? "")}</td></tr>
<tr><th>DHT</th><td id="dht-state">${esc(dht ? (dht.enabled ? dht.state : "off") : "off")}</td>
<td>peer <code id="dht-peer">${esc(dht?.peerId ?? "")}</code>, <span id="dht-peers">${
    dht?.peers ?? 0
  }</span> peers</td></tr>
</table>
</body></html>
`;
}
