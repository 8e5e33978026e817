/**
 * Boot-to-target time split by phase under TCG (issue #5 §7). Builds the
 * amd64 USB image, serves its release on loopback, boots it RUNS times with
 * OVMF and splits the host-side arrival times of console markers into
 * phases. Run: `deno run -q --no-prompt -P=test bench/boot/boot_bench.ts [RUNS]`.
 * Results and the machine are written up in bench/README.md.
 *
 * @module
 */
import { startProvider } from "../../provider/mod.ts";
import { memoryLogger } from "../../core/mod.ts";
import { bootVm } from "../../images/vm.ts";
import { imagesTaskArgs } from "../../images/mod.ts";

/** Bound of one boot. */
const BOOT_TIMEOUT_MS = 300_000;
const REPO = new URL("../..", import.meta.url).pathname.replace(/\/$/, "");

const MARKS = {
  efiStub: /EFI stub: /,
  seedInit: /phase-seed: init/,
  bootStart: /phase-boot: mode /,
  network: /phase-boot: network up/,
  discover: /phase-boot: discover:/,
  fetch: /phase-boot: fetch:/,
  kexec: /phase-boot: kexec:/,
  targetInit: /phase-target: init/,
  target: /PHASE-TARGET-OK/,
} as const;

/** Phase name -> [from mark, to mark]. */
const PHASES: [string, string, string][] = [
  ["firmware (OVMF + systemd-boot)", "", "efiStub"],
  ["seed kernel", "efiStub", "seedInit"],
  ["seed init (modules, mounts, Deno start)", "seedInit", "bootStart"],
  ["network (udhcpc)", "bootStart", "network"],
  ["discover", "network", "discover"],
  ["fetch (13.5 MiB kernel + 2 MiB initramfs)", "discover", "fetch"],
  // No separate verify step: kexec load verifies, stages and re-hashes.
  ["kexec (verify, stage, load, exec, target kernel boot)", "kexec", "targetInit"],
  ["target init (WASM job, marker)", "targetInit", "target"],
  ["total boot-to-target", "", "target"],
];

if (import.meta.main) {
  const runs = Number(Deno.args[0] ?? "2");
  await Deno.mkdir("/tmp/phase", { recursive: true });
  const work = await Deno.makeTempDir({ dir: "/tmp/phase", prefix: "boot-bench-" });
  try {
    const b = await new Deno.Command("deno", {
      args: imagesTaskArgs({
        arch: "amd64",
        out: `${work}/out`,
        artifacts: `${work}/artifacts`,
        keys: `${work}/keys`,
        provider: "http://10.0.2.100/stable/amd64/manifest.json",
      }),
      cwd: REPO,
      stdout: "null",
      stderr: "piped",
    }).output();
    if (b.code !== 0) throw new Error(new TextDecoder().decode(b.stderr));
    const p = await startProvider({
      root: `${work}/artifacts`,
      state: `${work}/state`,
      host: "127.0.0.1",
      port: 0,
      sign: false,
      trustPath: `${work}/keys/trust.json`,
      mdns: false,
      dht: false,
      watch: false,
      logger: memoryLogger(),
    });
    const results: Record<string, number>[] = [];
    try {
      for (let i = 0; i < runs; i++) {
        const r = await bootVm({
          image: `${work}/out/phase-amd64.img`,
          providerPort: p.port,
          timeoutMs: BOOT_TIMEOUT_MS,
          until: { target: MARKS.target, shell: /phase-seed: boot failed/ },
          watch: MARKS,
        });
        if (r.outcome !== "target") throw new Error(`run ${i}: ${r.outcome}`);
        results.push(r.marks);
        console.error(`run ${i + 1}/${runs}: ${JSON.stringify(r.marks)}`);
      }
    } finally {
      await p.close();
    }
    console.log("| phase | " + results.map((_, i) => `run ${i + 1} (s)`).join(" | ") + " |");
    console.log("|---|" + results.map(() => "---:").join("|") + "|");
    for (const [name, from, to] of PHASES) {
      const cells = results.map((m) =>
        (((m[to] ?? NaN) - (from ? m[from] ?? NaN : 0)) / 1000).toFixed(1)
      );
      console.log(`| ${name} | ${cells.join(" | ")} |`);
    }
  } finally {
    await Deno.remove(work, { recursive: true }).catch(() => {});
  }
}
