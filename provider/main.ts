/**
 * Entrypoints `phase-serve` (`deno task serve`, set 'serve') and
 * `phase-provider` (`deno task provider status|list <url>`, set 'provider').
 *
 * @module
 */
import { main } from "../cli/mod.ts";
import { runProviderCli, runServe } from "./cli.ts";
import { PROVIDER_HELP, SERVE_HELP } from "./_help.ts";

async function serve(args: string[]): Promise<number> {
  // libp2p reads the environment as it loads: only 'serve' (env granted) loads it.
  const { dhtAdvertiser, mdnsAdvertiser } = await import("./advertise.ts");
  return await runServe(args, {
    mdns: () => mdnsAdvertiser(),
    dht: (f) => dhtAdvertiser({ bootstrap: f.bootstrap, port: f.port }),
  });
}

if (import.meta.main) {
  const isServe = Deno.args[0] === "serve";
  await main({
    name: isServe ? "serve" : "provider",
    permissionSet: isServe ? "serve" : "provider",
    help: isServe ? SERVE_HELP : PROVIDER_HELP,
    run: (args) => isServe ? serve(args.slice(1)) : runProviderCli(args),
  });
}
