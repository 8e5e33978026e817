/**
 * The human-readable form of discover's and fetch's results, printed on a
 * terminal (cli/output.ts decides); pipes and `--json` get the JSON line
 * the boot orchestrator decodes, unchanged.
 *
 * @module
 */
import type { DiscoverResult } from "./discover.ts";
import type { FetchResult } from "./results.ts";

/** Bytes as a short human size (KiB, MiB, GiB). */
export function humanBytes(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${n} B` : `${v.toFixed(1)} ${units[u]}`;
}

/** discover's result as lines: ranked candidates, then rejected ones, then the steps. */
export function discoverLines(r: DiscoverResult): string[] {
  const out = [
    r.candidates.length
      ? `phase-discover: ${r.candidates.length} candidate(s), best first:`
      : "phase-discover: no usable candidate",
  ];
  r.candidates.forEach((c, i) => {
    const claims = c.version ? ` (claims ${c.version})` : "";
    out.push(`  ${i + 1}. ${c.manifestUrl}  [${c.source}]${claims}`);
  });
  for (const x of r.rejected) {
    out.push(
      `  rejected ${x.url} [${x.source}]: ${x.reason}${x.captivePortal ? " (captive portal)" : ""}`,
    );
  }
  out.push(
    "  steps: " +
      r.steps.map((s) =>
        `${s.step} ${s.found} found in ${Math.round(s.ms)} ms${s.error ? ` (${s.error})` : ""}`
      )
        .join("; "),
  );
  if (r.candidates.length) {
    out.push(
      `  next: deno task fetch --manifest ${r.candidates[0].manifestUrl} --trust FILE --cache DIR`,
    );
  }
  return out;
}

/** fetch's result as lines: the verified release, then each artifact. */
export function fetchLines(r: FetchResult): string[] {
  const out = [
    `phase-fetch: ok: ${r.channel}/${r.arch} ${r.version}, verified, from ${r.source}`,
    `  manifest ${r.manifest}`,
  ];
  for (const [name, a] of Object.entries(r.artifacts)) {
    out.push(
      `  ${name.padEnd(10)} ${humanBytes(a.size).padStart(10)}  ${
        a.cached ? "cached " : "fetched"
      }  ${a.path}`,
    );
  }
  return out;
}
