/**
 * The `deno task images` command line, in one place for everything that
 * builds an image as a user would (the VM test plan, the demo, the
 * reproducibility test, the boot benchmark).
 *
 * @module
 */

/** What to build; see `deno task images --help`. */
export interface ImagesTaskOptions {
  readonly arch: "amd64" | "arm64";
  readonly out: string;
  readonly artifacts?: string;
  readonly keys?: string;
  readonly provider?: string;
  /** More flags: `--no-release`, `--sysroot DIR`, `--with-tor`, ... */
  readonly extra?: readonly string[];
}

/** Arguments of `deno` that run `deno task -q images` with `o`. */
export function imagesTaskArgs(o: ImagesTaskOptions): string[] {
  const a = ["task", "-q", "images", "--arch", o.arch, "--out", o.out];
  if (o.artifacts) a.push("--artifacts", o.artifacts);
  if (o.keys) a.push("--keys", o.keys);
  if (o.provider) a.push("--provider", o.provider);
  return [...a, ...(o.extra ?? [])];
}
