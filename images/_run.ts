/**
 * Running host tools for the image build: every tool is named with the apt
 * package that provides it, every run has a deadline and a capped output.
 * Private to images/.
 *
 * @module
 */
import { ImagesError } from "./errors.ts";

/** Deadline of one host tool run (mksquashfs of Deno under load: ~1 min). */
export const TOOL_TIMEOUT_MS = 10 * 60_000;
/** Largest stdout kept from a tool (ldd, modprobe --show-depends). */
export const MAX_TOOL_STDOUT_BYTES = 4 * 1024 * 1024;

/** Debian package of each host tool (the error names it). */
export const TOOL_PACKAGES: Readonly<Record<string, string>> = {
  cpio: "cpio",
  gzip: "gzip",
  zstd: "zstd",
  mksquashfs: "squashfs-tools",
  "mkfs.fat": "dosfstools",
  mmd: "mtools",
  mcopy: "mtools",
  "mkfs.ext4": "e2fsprogs",
  debugfs: "e2fsprogs",
  sfdisk: "fdisk",
  "qemu-img": "qemu-utils",
  "grub-mkimage": "grub-common (with grub-efi-amd64-bin)",
  ldd: "libc-bin",
  modprobe: "kmod",
  "dpkg-deb": "dpkg",
  deno: "(npm install -g deno@2.9.6)",
  "qemu-aarch64-static": "qemu-user-static",
  "qemu-x86_64-static": "qemu-user-static",
};

/** The environment every tool gets: fixed locale and time zone, nothing else. */
export function toolEnv(extra: Record<string, string> = {}): Record<string, string> {
  return {
    PATH: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    LC_ALL: "C",
    TZ: "UTC",
    ...extra,
  };
}

/** Runs `tool args`; returns stdout. Throws ImagesError naming the apt package when it is missing. */
export async function runTool(
  tool: string,
  args: readonly string[],
  opts: { env?: Record<string, string>; stdin?: Uint8Array; cwd?: string; timeoutMs?: number } = {},
): Promise<Uint8Array> {
  let child: Deno.ChildProcess;
  try {
    child = new Deno.Command(tool, {
      args: [...args],
      env: toolEnv(opts.env),
      clearEnv: true,
      cwd: opts.cwd,
      stdin: opts.stdin ? "piped" : "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) {
      throw new ImagesError("E_TOOL", `host tool '${tool}' is missing`, {
        cause: err,
        hint: `apt-get install ${TOOL_PACKAGES[tool] ?? tool}`,
      });
    }
    throw new ImagesError("E_TOOL", `cannot run '${tool}': ${(err as Error).message}`, {
      cause: err,
      hint: "the 'images' permission set lists the tools it may run (deno.json)",
    });
  }
  const timer = setTimeout(() => {
    try {
      child.kill("SIGKILL");
    } catch { /* gone */ }
  }, opts.timeoutMs ?? TOOL_TIMEOUT_MS);
  try {
    if (opts.stdin) {
      const w = child.stdin.getWriter();
      await w.write(opts.stdin);
      await w.close();
    }
    const [out, err] = await Promise.all([capped(child.stdout), capped(child.stderr)]);
    const status = await child.status;
    if (!status.success) {
      throw new ImagesError(
        "E_TOOL",
        `${tool} ${args.slice(0, 6).join(" ")}${
          args.length > 6 ? " ..." : ""
        } failed (exit ${status.code}${status.signal ? ", " + status.signal : ""}): ${
          new TextDecoder().decode(err).trim().slice(-800)
        }`,
      );
    }
    return out;
  } finally {
    clearTimeout(timer);
  }
}

async function capped(stream: ReadableStream<Uint8Array>): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  let total = 0;
  for await (const c of stream) {
    if (total < MAX_TOOL_STDOUT_BYTES) chunks.push(c.subarray(0, MAX_TOOL_STDOUT_BYTES - total));
    total += c.length;
  }
  const out = new Uint8Array(Math.min(total, MAX_TOOL_STDOUT_BYTES));
  let o = 0;
  for (const c of chunks) {
    out.set(c, o);
    o += c.length;
  }
  return out;
}
