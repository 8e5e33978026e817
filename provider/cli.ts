/**
 * The provider CLIs: `serve` (run a provider) and `status` / `list` (ask a
 * running one). Flag parsing and printing only; the work is in server.ts.
 *
 * @module
 */
import { UsageError } from "../core/mod.ts";
import {
  parseDurationMs,
  parseFlags,
  parseIntFlag,
  PROVIDER_STATE_DIR,
  SYSTEM_TRUST_FILE,
  TRUST_FILE,
} from "../cli/mod.ts";
import { consoleLogger, type Logger } from "../core/mod.ts";
import { ProviderError } from "./errors.ts";
import { PROVIDER_USAGE, SERVE_USAGE } from "./_help.ts";
import { httpUrlHint } from "../net/mod.ts";
import { bufferedJsonLogger, type BufferedLogger } from "./log.ts";
import { canonicalArch } from "../verify/mod.ts";
import { ROOT_POLL_INTERVAL_MS, WATCH_DEBOUNCE_MS } from "./_rescan.ts";
import { MIN_MIRROR_REFRESH_MS } from "./_mirror.ts";
import { MAX_INFLIGHT } from "./http.ts";
import { MAX_MEMORY_CACHE_MIB } from "./memory_cache.ts";
import {
  DEFAULT_HOST,
  DEFAULT_PORT,
  type ProviderOptions,
  type RunningProvider,
  startProvider,
} from "./server.ts";

/** Longest wait for a provider's answer in `status` / `list`, in ms. */
export const FETCH_TIMEOUT_MS = 10_000;
/** Largest answer read by `status` / `list`, in bytes. */
export const MAX_INFO_BYTES = 4 * 1024 * 1024;
/** TCP ports `--port` and `--dht-port` take (0: any free one). */
const PORT_RANGE = { min: 0, max: 65535 } as const;

/** Builders of the advertisement layers, injected by main.ts. */
export interface AdvertFactories {
  readonly mdns?: (flags: { host: string }) => ProviderOptions["mdns"];
  readonly dht?: (
    flags: { bootstrap: string[]; port: number; host: string },
  ) => ProviderOptions["dht"];
}

/** The flags of `deno task provider` (its `--help` lists each one). */
export const PROVIDER_FLAGS = { json: { type: "boolean" }, help: { type: "boolean" } } as const;

/** The flags of `deno task serve` (its `--help` lists each one; testing/help_test.ts checks). */
export const SERVE_FLAGS = {
  root: { type: "string" },
  state: { type: "string" },
  host: { type: "string" },
  port: { type: "string" },
  key: { type: "string" },
  "no-sign": { type: "boolean" },
  trust: { type: "string" },
  name: { type: "string" },
  expires: { type: "string" },
  "no-mdns": { type: "boolean" },
  "no-dht": { type: "boolean" },
  "dht-port": { type: "string" },
  bootstrap: { type: "string", multiple: true },
  "no-watch": { type: "boolean" },
  "no-snapshot": { type: "boolean" },
  "header-timeout": { type: "string" },
  "idle-timeout": { type: "string" },
  "max-downloads": { type: "string" },
  "memory-cache-mib": { type: "string" },
  "unsafe-public-status": { type: "boolean" },
  channel: { type: "string" },
  "from-cache": { type: "string" },
  mirror: { type: "string" },
  "mirror-interval": { type: "string" },
  help: { type: "boolean" },
} as const;

/** The cache `--mirror` fills when no `--from-cache DIR` is given (what `fetch` uses too). */
export const DEFAULT_MIRROR_CACHE = "./.cache";

/** Parses `serve` flags into provider options. */
export function serveOptions(args: string[], factories: AdvertFactories = {}): ProviderOptions {
  const { values, positionals } = parseFlags(
    args,
    SERVE_FLAGS,
    SERVE_USAGE,
    true,
  );
  if (values.help) throw new UsageError("help requested", SERVE_USAGE);
  if (positionals.length > 0) {
    throw new UsageError(`unexpected argument '${positionals[0]}'`, SERVE_USAGE);
  }
  const port = parseIntFlag(values.port, "port", PORT_RANGE, SERVE_USAGE) ?? DEFAULT_PORT;
  const dhtPort = parseIntFlag(values["dht-port"], "dht-port", PORT_RANGE, SERVE_USAGE) ?? 0;
  if (values.key && values["no-sign"]) {
    throw new UsageError("--key and --no-sign exclude each other", SERVE_USAGE);
  }
  // Issue 12 §2: a re-serving provider re-serves signed bytes and holds no key.
  const reServe = values["from-cache"] !== undefined || values.mirror !== undefined;
  if (reServe && values.key) {
    throw new UsageError(
      `--key cannot be used with ${
        values.mirror !== undefined ? "--mirror" : "--from-cache"
      }: a provider that re-serves a cache never signs (--no-sign is implied)`,
      SERVE_USAGE,
    );
  }
  if (reServe && values.root !== undefined) {
    throw new UsageError("--root and --from-cache/--mirror exclude each other", SERVE_USAGE);
  }
  if (values["mirror-interval"] !== undefined && values.mirror === undefined) {
    throw new UsageError("--mirror-interval needs --mirror URL", SERVE_USAGE);
  }
  if (values.mirror !== undefined) {
    let u: URL | undefined;
    try {
      u = new URL(values.mirror);
    } catch { /* below */ }
    if (!u || (u.protocol !== "http:" && u.protocol !== "https:")) {
      throw new UsageError(
        `--mirror '${values.mirror}' is not an http(s) URL (e.g. http://10.0.0.1:8080)`,
        SERVE_USAGE,
      );
    }
  }
  const cacheDir = values["from-cache"] ??
    (values.mirror !== undefined ? DEFAULT_MIRROR_CACHE : undefined);
  const mirrorIntervalMs = values["mirror-interval"]
    ? parseDurationMs(values["mirror-interval"], "mirror-interval")
    : undefined;
  if (mirrorIntervalMs !== undefined && mirrorIntervalMs < MIN_MIRROR_REFRESH_MS) {
    throw new UsageError(
      `--mirror-interval must be at least ${MIN_MIRROR_REFRESH_MS / 1000}s`,
      SERVE_USAGE,
    );
  }
  const host = values.host ?? DEFAULT_HOST;
  const name = values.name;
  if (name !== undefined && !/^[A-Za-z0-9][A-Za-z0-9-]{0,62}$/.test(name)) {
    throw new UsageError("--name must be letters, digits and '-' (a DNS label)", SERVE_USAGE);
  }
  const maxDownloads = parseIntFlag(
    values["max-downloads"],
    "max-downloads",
    { min: 1, max: MAX_INFLIGHT },
    SERVE_USAGE,
  );
  const memoryMib = parseIntFlag(
    values["memory-cache-mib"],
    "memory-cache-mib",
    { min: 0, max: MAX_MEMORY_CACHE_MIB },
    SERVE_USAGE,
  );
  return {
    root: cacheDir ?? values.root ?? "./artifacts",
    fromCache: cacheDir,
    mirror: values.mirror,
    mirrorIntervalMs,
    // TM-12: the provider's own folder; the release keys (./.phase/keys)
    // and the trust files it reads (./.phase/trust) are outside what it writes.
    state: values.state ?? PROVIDER_STATE_DIR,
    host,
    port,
    name,
    keyPath: values.key,
    sign: !values["no-sign"] && !reServe,
    trustPath: values.trust,
    // Issue 11 §1: what 'deno task keygen' writes, then a system install's.
    trustCandidates: values.trust ? undefined : [TRUST_FILE, SYSTEM_TRUST_FILE],
    expiresInMs: values.expires ? parseDurationMs(values.expires, "expires") : undefined,
    watch: !values["no-watch"],
    snapshot: !values["no-snapshot"],
    defaultChannel: values.channel,
    headerTimeoutMs: values["header-timeout"]
      ? parseDurationMs(values["header-timeout"], "header-timeout")
      : undefined,
    idleTimeoutMs: values["idle-timeout"]
      ? parseDurationMs(values["idle-timeout"], "idle-timeout")
      : undefined,
    unsafePublicStatus: values["unsafe-public-status"] === true,
    maxDownloads,
    memoryCacheBytes: memoryMib === undefined ? undefined : memoryMib * 1024 * 1024,
    mdns: values["no-mdns"] ? false : factories.mdns?.({ host }) ?? false,
    dht: values["no-dht"]
      ? false
      : factories.dht?.({ bootstrap: values.bootstrap ?? [], port: dhtPort, host }) ?? false,
  };
}

function mib(n: number): string {
  return `${(n / (1024 * 1024)).toFixed(1)} MiB`;
}

/**
 * The shell lines that put a release under `root` on this machine: the
 * newest installed kernel and its initramfs. Debian and Ubuntu both name
 * them `/boot/vmlinuz-<version>` and `/boot/initrd.img-<version>`; there is
 * no `/boot/vmlinuz` on Debian, and the running kernel (`uname -r`) need
 * not be installed at all (a VM booted with an external kernel).
 */
export function firstReleaseHint(root: string, arch: string): string[] {
  const dir = `${root}/stable/${arch}`;
  return [
    `mkdir -p ${dir}`,
    `k=$(ls -v /boot/vmlinuz-* | tail -n 1)`,
    `cp "$k" ${dir}/kernel`,
    `cp "/boot/initrd.img-\${k#/boot/vmlinuz-}" ${dir}/initramfs`,
  ];
}

/** What `serve` prints on start (stdout), including the hint for an empty root. */
export function startBanner(p: RunningProvider, opts: ProviderOptions): string {
  const lines = [`phase-serve: serving ${opts.root} on ${p.url}`];
  if (opts.fromCache !== undefined) {
    lines.push(
      `re-serving the verified releases of the cache ${opts.fromCache}: no signing key; each manifest is re-verified (trust, expiry, floor) and each artifact re-hashed`,
    );
    if (opts.mirror) lines.push(`mirror of ${opts.mirror}: fetched through the verified fetcher`);
  } else if (p.keyid) {
    lines.push(
      `provider key: ${p.keyid}${p.generatedKey ? ` (generated in ${opts.state}, mode 0600)` : ""}`,
    );
    lines.push(`trust file: ${p.trustPath} (clients of the manifests this provider signs)`);
  } else {
    lines.push("signing: off (--no-sign): only pre-signed manifests are served");
  }
  const presigned = p.trustFiles.length ? p.trustFiles.join(", ") : "none";
  lines.push(`pre-signed manifests are verified against: ${presigned}`);
  if (opts.snapshot !== false) {
    // Issue 11 §3: the copy doubles disk use; say so, with the number.
    lines.push(
      `snapshots: ${
        mib(p.snapshotBytes())
      } in ${opts.state}/snapshots (a private copy of every artifact served, as much disk again as the artifacts; --no-snapshot serves from the root)`,
    );
  }
  const c = p.catalog();
  for (const r of c.releases.values()) {
    lines.push(
      `  ${r.channel}/${r.arch} ${r.manifest.version} (${r.origin}) ${p.url}/${r.channel}/${r.arch}/manifest.json`,
    );
  }
  for (const r of c.refused) {
    lines.push(`  refused ${r.dir}${r.item ? ` ${r.item}` : ""}: ${r.reason}`);
  }
  if (c.releases.size === 0 && opts.fromCache !== undefined) {
    lines.push(
      opts.mirror
        ? `no verified release in ${opts.fromCache} yet: it is served once fetched from ${opts.mirror}`
        : `no verified release in ${opts.fromCache} yet: 'deno task fetch --cache ${opts.fromCache} --manifest URL --trust FILE' fills it; it is served within ${
          Math.ceil((ROOT_POLL_INTERVAL_MS + WATCH_DEBOUNCE_MS) / 1000) + 1
        } s`,
    );
  } else if (c.releases.size === 0) {
    const arch = canonicalArch(opts.defaultArch ?? Deno.build.arch) ?? "amd64";
    const within = Math.ceil((ROOT_POLL_INTERVAL_MS + WATCH_DEBOUNCE_MS) / 1000) + 1;
    lines.push(`no release under ${opts.root} yet. To serve this machine's kernel:`);
    for (const l of firstReleaseHint(opts.root, arch)) lines.push(`  ${l}`);
    lines.push(
      p.keyid
        ? `this provider signs it and serves it within ${within} s. To sign it offline instead (then serve with --no-sign):`
        : `then sign it offline; it is served within ${within} s:`,
    );
    lines.push(`  deno task keygen`);
    lines.push(
      `  deno task sign --root ${opts.root} --channel stable --arch ${arch} --version ${
        dayVersion(new Date())
      } --key ./.phase/keys/release.pem`,
    );
  }
  lines.push("phase-serve: ready");
  return lines.join("\n") + "\n";
}

/** Today's date as a release version (`2026.11.30`), for the start-up hint. */
function dayVersion(d: Date): string {
  const p = (n: number) => String(n).padStart(2, "0");
  return `${d.getUTCFullYear()}.${p(d.getUTCMonth() + 1)}.${p(d.getUTCDate())}`;
}

/** Runs `serve` until SIGINT/SIGTERM; returns the exit status. */
export async function runServe(
  args: string[],
  factories: AdvertFactories = {},
  logger?: Logger,
): Promise<number> {
  const opts = serveOptions(args, factories);
  // JSON lines batched (one write per batch); a terminal gets readable lines.
  const log = logger ??
    (Deno.stderr.isTerminal() ? consoleLogger("serve") : bufferedJsonLogger("serve"));
  const provider = await startProvider({ ...opts, logger: log });
  await Deno.stdout.write(new TextEncoder().encode(startBanner(provider, opts)));
  await new Promise<void>((resolve) => {
    const stop = () => {
      Deno.removeSignalListener("SIGINT", stop);
      Deno.removeSignalListener("SIGTERM", stop);
      resolve();
    };
    Deno.addSignalListener("SIGINT", stop);
    Deno.addSignalListener("SIGTERM", stop);
  });
  await provider.close();
  (log as Partial<BufferedLogger>).flush?.();
  return 0;
}

async function getJson(base: string, path: string): Promise<Record<string, unknown>> {
  let url: URL;
  try {
    url = new URL(path, base.endsWith("/") ? base : base + "/");
  } catch {
    throw new UsageError(`'${base}' is not a URL`, httpUrlHint(base));
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new UsageError(`'${base}' is not an http(s) URL`, httpUrlHint(base));
  }
  let res: Response;
  try {
    res = await fetch(url, {
      headers: { accept: "application/json" },
      redirect: "manual",
      signal: AbortSignal.timeout(FETCH_TIMEOUT_MS),
    });
  } catch (err) {
    // fetch says only "fetch failed"; the reason (connection refused, ...) is its cause.
    const cause = (err as { cause?: unknown }).cause;
    const why = cause instanceof Error
      ? `${(err as Error).message}: ${cause.message}`
      : (err as Error).message;
    throw new ProviderError("E_FETCH", `cannot reach ${url}: ${why}`, {
      cause: err,
      hint: "is the provider running ('deno task serve') and is the URL right?",
    });
  }
  if (!res.ok) {
    await res.body?.cancel();
    throw new ProviderError("E_FETCH", `${printable(url)} answered ${res.status}`, {
      hint:
        "is the URL the provider's base, e.g. http://127.0.0.1:8080 ('deno task serve' prints it)?",
    });
  }
  const reader = res.body!.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.length;
    if (total > MAX_INFO_BYTES) {
      await reader.cancel();
      throw new ProviderError("E_FETCH", `${url} answered more than ${MAX_INFO_BYTES} bytes`);
    }
    chunks.push(value);
  }
  const all = new Uint8Array(total);
  let off = 0;
  for (const c of chunks) {
    all.set(c, off);
    off += c.length;
  }
  try {
    return JSON.parse(new TextDecoder().decode(all));
  } catch {
    throw new ProviderError("E_FETCH", `${url} did not answer JSON: is it a Phase provider?`);
  }
}

// deno-lint-ignore no-control-regex
const UNPRINTABLE_RE = /[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;

/**
 * A string from the network made safe to print (finding 16): control
 * characters (C0, DEL, C1: ANSI/OSC escapes, CR, LF) and bidi overrides
 * become `\u{..}` escapes, so a hostile provider cannot move the cursor,
 * rewrite earlier lines or set the terminal title.
 */
export function printable(v: unknown): string {
  return String(v).replace(
    UNPRINTABLE_RE,
    (c) => `\\u{${c.codePointAt(0)!.toString(16)}}`,
  );
}

/** JSON for printing: also escapes DEL, C1 and bidi controls, which JSON.stringify leaves raw (finding 16). */
export function printableJson(v: unknown): string {
  return JSON.stringify(v).replace(
    /[\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
}

/** Formats rows as an aligned text table (every cell passed through {@link printable}). */
export function table(head: string[], rows: (string | number)[][]): string {
  const cells = [head, ...rows.map((r) => r.map(printable))];
  const widths = head.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? "").length)));
  return cells.map((r) => r.map((c, i) => c.padEnd(widths[i])).join("  ").trimEnd()).join("\n") +
    "\n";
}

/** Runs `provider status|list <url> [--json]`; returns the exit status. */
export async function runProviderCli(
  args: string[],
  write: (s: string) => void = (s) => Deno.stdout.writeSync(new TextEncoder().encode(s)),
): Promise<number> {
  const { values, positionals } = parseFlags(
    args,
    PROVIDER_FLAGS,
    PROVIDER_USAGE,
    true,
  );
  if (values.help) throw new UsageError("help requested", PROVIDER_USAGE);
  const [cmd, url, ...rest] = positionals;
  if (!cmd || !url || rest.length > 0 || (cmd !== "status" && cmd !== "list")) {
    throw new UsageError("expected 'status <url>' or 'list <url>'", PROVIDER_USAGE);
  }
  if (cmd === "status") {
    // /status answers loopback clients only (finding 15): elsewhere the
    // counters are shown as unknown.
    const [info, status] = await Promise.all([
      getJson(url, "./"),
      getJson(url, "./status").catch((err) => {
        if (err instanceof ProviderError && / answered 403$/.test(err.message)) {
          return {} as Record<string, unknown>;
        }
        throw err;
      }),
    ]);
    if (values.json) {
      write(
        printableJson({
          name: info.name,
          version: info.version,
          uptime_s: info.uptime_s,
          ...status,
        }) + "\n",
      );
      return 0;
    }
    const adv = (status.advert ?? {}) as {
      mdns?: { state?: string };
      dht?: { state?: string; peers?: number };
    };
    write(table(["field", "value"], [
      ["name", String(info.name)],
      ["version", String(info.version)],
      ["uptime_s", Number(info.uptime_s)],
      ["releases", Number(status.releases)],
      ["requests", Number(status.requests)],
      ["bytes", Number(status.bytes)],
      ["errors", Number(status.errors)],
      ["inflight", Number(status.inflight)],
      ["downloads", Number(status.downloads ?? 0)],
      ["refused_downloads", Number(status.refusedDownloads ?? 0)],
      ["rejected_paths", Number(status.rejectedPaths)],
      ["mdns", adv.mdns?.state ?? "off"],
      [
        "dht",
        adv.dht?.state && adv.dht.state !== "off"
          ? `${adv.dht.state} (${adv.dht.peers ?? 0} peers)`
          : "off",
      ],
    ]));
    return 0;
  }
  const info = await getJson(url, "./");
  const channels = (Array.isArray(info.channels) ? info.channels : []) as {
    channel: string;
    arch: string;
    version: string;
    expires_at: string;
    origin: string;
    manifest: string;
    signers?: string[];
    artifacts: { name: string; size: number; digest: string }[];
  }[];
  if (values.json) {
    write(printableJson(channels) + "\n");
    return 0;
  }
  const base = url.replace(/\/+$/, "");
  // Issue 11 §4: the table shows what the JSON shows: who signed each
  // release and where its manifest is, then the artifacts.
  write(table(
    ["channel", "arch", "version", "origin", "expires", "signers", "manifest"],
    channels.map((c) => [
      c.channel,
      c.arch,
      c.version,
      c.origin,
      c.expires_at,
      (c.signers ?? []).join(","),
      `${base}${c.manifest}`,
    ]),
  ));
  write("\n");
  write(table(
    ["channel", "arch", "artifact", "size", "digest"],
    channels.flatMap((c) => c.artifacts.map((a) => [c.channel, c.arch, a.name, a.size, a.digest])),
  ));
  return 0;
}
