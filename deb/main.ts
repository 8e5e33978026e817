/**
 * Entrypoint `phase-deb` (`deno task deb`, set 'deb', a development set:
 * it starts `deno bundle`): builds the Debian package.
 *
 * @module
 */
import { consoleLogger, UsageError } from "../core/mod.ts";
import { configDir, main, parseFlags } from "../cli/mod.ts";
import { DEFAULT_SOURCE_DATE_EPOCH } from "../images/mod.ts";
import { buildDeb } from "./build.ts";
import { DEB_HELP, DEB_USAGE } from "./_help.ts";

/** The flags of `deno task deb` (its `--help` lists each one; testing/help_test.ts checks). */
export const DEB_FLAGS = {
  arch: { type: "string" },
  out: { type: "string" },
} as const;

/** Runs phase-deb; returns the exit status. */
export async function runDeb(args: string[]): Promise<number> {
  const { values } = parseFlags(args, DEB_FLAGS, DEB_USAGE);
  const arch = values.arch ?? "amd64";
  if (arch !== "amd64" && arch !== "arm64") {
    throw new UsageError(`--arch must be amd64 or arm64, got '${arch}'`, DEB_USAGE);
  }
  if (!values.out) throw new UsageError("missing --out DIR", DEB_USAGE);
  const epochText = Deno.env.get("SOURCE_DATE_EPOCH");
  if (epochText !== undefined && !/^\d+$/.test(epochText)) {
    throw new UsageError(`SOURCE_DATE_EPOCH must be seconds, got '${epochText}'`, DEB_USAGE);
  }
  const epoch = epochText ? Number(epochText) : DEFAULT_SOURCE_DATE_EPOCH;
  await Deno.mkdir("/tmp/phase", { recursive: true });
  const work = await Deno.makeTempDir({ dir: "/tmp/phase", prefix: "deb-" });
  const t0 = performance.now();
  try {
    const r = await buildDeb({
      arch,
      out: values.out,
      repo: configDir(),
      epoch,
      work,
      log: consoleLogger("deb"),
    });
    console.log(
      `phase-deb: built ${r.deb} (sha256 ${r.sha256}) in ${
        ((performance.now() - t0) / 1000).toFixed(1)
      } s; check it: lintian ${r.deb}`,
    );
    return 0;
  } finally {
    await Deno.remove(work, { recursive: true }).catch(() => {});
  }
}

if (import.meta.main) {
  await main({ name: "deb", permissionSet: "deb", help: DEB_HELP, run: runDeb });
}
