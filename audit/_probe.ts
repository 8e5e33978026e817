/**
 * Preloaded before an entrypoint by the dynamic audit (`--preload`): runs in
 * the entrypoint's own process under its own set, tries what a compromised
 * component would (TM-12), prints one JSON line and exits before the
 * entrypoint's code runs.
 */
const marker = "PHASE_PROBE_RESULT ";
type Outcome = "denied" | "allowed";
const results: { kind: string; target: string; outcome: Outcome; detail: string }[] = [];

function denied(err: unknown): boolean {
  return err instanceof Deno.errors.NotCapable ||
    (err instanceof Error && /Requires \w+ access|--no-remote|NotCapable/.test(err.message));
}

async function attempt(kind: string, target: string, fn: () => Promise<unknown> | unknown) {
  try {
    await fn();
    results.push({ kind, target, outcome: "allowed", detail: "succeeded" });
  } catch (err) {
    const d = denied(err);
    results.push({
      kind,
      target,
      outcome: d ? "denied" : "allowed",
      detail: err instanceof Error ? `${err.name}: ${err.message.split("\n")[0]}` : String(err),
    });
  }
}

// Port 9 (discard) on loopback: refused if the connect is allowed at all.
await attempt(
  "net",
  "127.0.0.1:9",
  async () => (await Deno.connect({ hostname: "127.0.0.1", port: 9 })).close(),
);
await attempt("read", "/etc/hostname", () => Deno.readFileSync("/etc/hostname"));
const junk = `/var/tmp/phase-probe-${crypto.randomUUID()}`;
await attempt("write", junk, () => {
  Deno.writeTextFileSync(junk, "probe");
  Deno.removeSync(junk);
});
await attempt("run", "/bin/true", () => new Deno.Command("/bin/true").outputSync());
await attempt("env", "PHASE_PROBE_SECRET", () => Deno.env.get("PHASE_PROBE_SECRET"));
await attempt("sys", "osRelease", () => Deno.osRelease());
await attempt("ffi", "libc.so.6", () => {
  const dl = (Deno as unknown as { dlopen?: (p: string, s: object) => { close(): void } }).dlopen;
  if (!dl) throw new Deno.errors.NotCapable("Deno.dlopen is not available");
  dl("libc.so.6", {}).close();
});
// A loopback URL: even a wrongly granted import never leaves the machine.
const remote = "http://127.0.0.1:9/probe.ts";
await attempt("import", remote, () => import(remote));

console.log(marker + JSON.stringify(results));
Deno.exit(0);
