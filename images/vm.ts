/**
 * QEMU harness for the seeds' test plan and the demo: boots an image under
 * TCG (KVM here cannot run stock guests) with OVMF/AAVMF, the guest's
 * provider reached at http://10.0.2.100/ through a user-mode guestfwd to a
 * loopback port (the guest never leaves loopback), and watches the serial
 * console for markers with a deadline.
 *
 * @module
 */

/** OVMF firmware (apt package ovmf). */
export const OVMF_CODE = "/usr/share/OVMF/OVMF_CODE_4M.fd";
/** OVMF variable store template. */
export const OVMF_VARS = "/usr/share/OVMF/OVMF_VARS_4M.fd";
/**
 * OVMF with Secure Boot enforced and Debian's snakeoil certificate in PK,
 * KEK and db (test only: its key is public in the ovmf package).
 */
export const OVMF_SNAKEOIL = {
  code: "/usr/share/OVMF/OVMF_CODE_4M.snakeoil.fd",
  vars: "/usr/share/OVMF/OVMF_VARS_4M.snakeoil.fd",
} as const;
/** OVMF with Secure Boot enforced and Microsoft's keys enrolled (the shim path). */
export const OVMF_MS = {
  code: "/usr/share/OVMF/OVMF_CODE_4M.ms.fd",
  vars: "/usr/share/OVMF/OVMF_VARS_4M.ms.fd",
} as const;
/** AAVMF (arm64 UEFI, apt package qemu-efi-aarch64). */
export const AAVMF_CODE = "/usr/share/AAVMF/AAVMF_CODE.fd";
/** AAVMF variable store template. */
export const AAVMF_VARS = "/usr/share/AAVMF/AAVMF_VARS.fd";
/** Guest RAM in MiB: Deno in the seed plus a kexec of the target. */
export const GUEST_MEMORY_MIB = 1024;
/** Address the guest reaches the provider at. */
export const GUEST_PROVIDER = "http://10.0.2.100";
/** Largest console log kept in memory. */
export const MAX_CONSOLE_BYTES = 8 * 1024 * 1024;

/** One console line with the host time it arrived (ms since start). */
export interface ConsoleLine {
  readonly ms: number;
  readonly text: string;
}

/** What a boot saw. */
export interface VmRun {
  readonly lines: readonly ConsoleLine[];
  /** Name of the first pattern that matched, or "timeout" / "exit". */
  readonly outcome: string;
  readonly elapsedMs: number;
  /** Host time (ms) of the first line matching each watched pattern. */
  readonly marks: Readonly<Record<string, number>>;
  /** What the {@link VmOptions.hold} task gave, when it ran. */
  readonly held?: { readonly value?: unknown; readonly error?: unknown };
}

/** Options of one boot. */
export interface VmOptions {
  readonly image: string;
  /** Guest architecture (default amd64: q35 + OVMF; arm64: virt + cortex-a57 + AAVMF). */
  readonly arch?: "amd64" | "arm64";
  /** Loopback port of the provider, or undefined for no provider. */
  readonly providerPort?: number;
  /** Stop at the first of these (name -> pattern). */
  readonly until: Readonly<Record<string, RegExp>>;
  /** Record the time of these too. */
  readonly watch?: Readonly<Record<string, RegExp>>;
  readonly timeoutMs: number;
  /** amd64 firmware code and variable template (default OVMF_CODE / OVMF_VARS: no Secure Boot). */
  readonly firmware?: { readonly code: string; readonly vars: string };
  /** Writable OVMF vars copy (kept across boots when given). */
  readonly vars?: string;
  /** Boot with writes going to the image (the cache partition persists). */
  readonly persistent?: boolean;
  /** Echo the console to stdout (demo). */
  readonly echo?: boolean;
  /** Let the guest reboot (the chainload fallback) instead of exiting QEMU. */
  readonly allowReboot?: boolean;
  /** Type `text` on the console when a line matches `when` (once each). */
  readonly input?: readonly { readonly when: RegExp; readonly text: string }[];
  /** Command prefix QEMU runs under (e.g. `ip netns exec NS`). */
  readonly wrap?: readonly string[];
  /** Extra -device/-netdev arguments replacing the default user network. */
  readonly netArgs?: readonly string[];
  /**
   * While the guest runs: at the first line matching `when`, `task(line)`
   * starts (the console keeps being read); when it settles the boot ends
   * with outcome "held" and its result or error in {@link VmRun.held}.
   * `until` patterns still end the boot first if they match.
   */
  readonly hold?: {
    readonly when: RegExp;
    readonly task: (line: string) => Promise<unknown>;
  };
  /** Stops the guest (outcome "stopped"): a guest that keeps serving while another boots. */
  readonly stop?: AbortSignal;
  /** Bytes typed on the console as they come (a test's debug hook on a running guest). */
  readonly console?: ReadableStream<Uint8Array>;
  /** Told about each console line as it arrives. */
  readonly onLine?: (line: ConsoleLine) => void;
}

/** The QEMU argv for an amd64 q35 guest booting `image` with OVMF. */
export function qemuArgs(o: VmOptions, vars: string): string[] {
  const net = o.netArgs ?? [
    "-netdev",
    `user,id=n0,restrict=on${
      o.providerPort
        ? `,guestfwd=tcp:10.0.2.100:80-cmd:/bin/busybox nc 127.0.0.1 ${o.providerPort}`
        : ""
    }`,
    "-device",
    "virtio-net-pci,netdev=n0",
  ];
  const arm = o.arch === "arm64";
  return [
    "-accel",
    "tcg",
    "-M",
    arm ? "virt" : "q35",
    ...(arm ? ["-cpu", "cortex-a57"] : []),
    "-m",
    String(GUEST_MEMORY_MIB),
    "-smp",
    "1",
    "-nographic",
    ...(o.allowReboot ? [] : ["-no-reboot"]),
    "-drive",
    `if=pflash,format=raw,readonly=on,file=${arm ? AAVMF_CODE : (o.firmware?.code ?? OVMF_CODE)}`,
    "-drive",
    `if=pflash,format=raw,file=${vars}`,
    "-drive",
    `if=none,id=d0,format=raw,file=${o.image}${o.persistent ? "" : ",snapshot=on"}`,
    "-device",
    "virtio-blk-pci,drive=d0",
    "-device",
    "virtio-rng-pci",
    ...net,
    "-serial",
    "stdio",
    "-monitor",
    "none",
  ];
}

/** The firmware variable store a boot without `vars` starts from (a machine's first boot). */
export function varsTemplate(o: Pick<VmOptions, "arch" | "firmware">): string {
  return o.arch === "arm64" ? AAVMF_VARS : (o.firmware?.vars ?? OVMF_VARS);
}

/** Boots once; returns when a pattern matches, QEMU exits, or the deadline passes. */
export async function bootVm(o: VmOptions): Promise<VmRun> {
  let vars = o.vars;
  let tmpVars: string | undefined;
  if (!vars) {
    await Deno.mkdir("/tmp/phase", { recursive: true });
    tmpVars = await Deno.makeTempFile({ dir: "/tmp/phase", prefix: "ovmf-vars-" });
    await Deno.copyFile(varsTemplate(o), tmpVars);
    vars = tmpVars;
  }
  const t0 = performance.now();
  const qemu = o.arch === "arm64" ? "qemu-system-aarch64" : "qemu-system-x86_64";
  const argv = [...(o.wrap ?? []), qemu, ...qemuArgs(o, vars)];
  const child = new Deno.Command(argv[0], {
    args: argv.slice(1),
    stdin: o.input?.length || o.console ? "piped" : "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const pending = [...(o.input ?? [])];
  const writer = o.input?.length || o.console ? child.stdin.getWriter() : undefined;
  if (o.console && writer) {
    const w = writer;
    (async () => {
      try {
        for await (const c of o.console!) await w.write(c);
      } catch { /* the guest is gone */ }
    })();
  }
  const lines: ConsoleLine[] = [];
  const marks: Record<string, number> = {};
  let outcome = "exit";
  let kept = 0;
  let holding: Promise<void> | undefined;
  let held: { value?: unknown; error?: unknown } | undefined;
  const timer = setTimeout(() => {
    outcome = "timeout";
    try {
      child.kill("SIGKILL");
    } catch { /* gone */ }
  }, o.timeoutMs);
  const onStop = () => {
    outcome = "stopped";
    try {
      child.kill("SIGKILL");
    } catch { /* gone */ }
  };
  if (o.stop?.aborted) onStop();
  else o.stop?.addEventListener("abort", onStop, { once: true });
  const decoder = new TextDecoder();
  let partial = "";
  try {
    outer: for await (const chunk of child.stdout) {
      kept += chunk.length;
      if (kept > MAX_CONSOLE_BYTES) {
        outcome = "console-overflow";
        break;
      }
      partial += decoder.decode(chunk, { stream: true });
      const parts = partial.split("\n");
      partial = parts.pop() ?? "";
      for (const raw of parts) {
        // deno-lint-ignore no-control-regex
        const text = raw.replace(/\r/g, "").replace(/\x1b\[[0-9;?=]*[A-Za-z]/g, "");
        const ms = Math.round(performance.now() - t0);
        lines.push({ ms, text });
        o.onLine?.({ ms, text });
        if (o.echo) console.log(text);
        for (let i = 0; i < pending.length; i++) {
          if (pending[i].when.test(text)) {
            await writer?.write(new TextEncoder().encode(pending[i].text));
            pending.splice(i--, 1);
          }
        }
        for (const [name, re] of Object.entries(o.watch ?? {})) {
          if (!(name in marks) && re.test(text)) marks[name] = ms;
        }
        if (o.hold && !holding && o.hold.when.test(text)) {
          marks.hold = ms;
          holding = o.hold.task(text).then(
            (value) => void (held = { value }),
            (error) => void (held = { error }),
          ).finally(() => {
            if (outcome === "exit") outcome = "held";
            try {
              child.kill("SIGKILL");
            } catch { /* gone */ }
          });
        }
        for (const [name, re] of Object.entries(o.until)) {
          if (re.test(text)) {
            marks[name] ??= ms;
            outcome = name;
            break outer;
          }
        }
      }
    }
  } finally {
    clearTimeout(timer);
    o.stop?.removeEventListener("abort", onStop);
    try {
      child.kill("SIGKILL");
    } catch { /* gone */ }
    await child.status;
    await writer?.close().catch(() => {});
    await child.stderr.cancel().catch(() => {});
    if (tmpVars) await Deno.remove(tmpVars).catch(() => {});
  }
  // A task still running when the boot ended (timeout, until): its result too.
  await holding;
  return { lines, outcome, elapsedMs: Math.round(performance.now() - t0), marks, held };
}
