/**
 * Entrypoints `phase-serve` (`deno task serve`, set 'serve') and
 * `phase-provider` (`deno task provider status|list <url>`, set 'provider').
 *
 * @module
 */
import { main } from "../cli/run.ts";
import { dhtAdvertiser, mdnsAdvertiser } from "./advertise.ts";
import { runProviderCli, runServe } from "./cli.ts";
import { PROVIDER_EXIT_CODES } from "./errors.ts";

if (import.meta.main) {
  const serve = Deno.args[0] === "serve";
  await main({
    name: serve ? "serve" : "provider",
    permissionSet: serve ? "serve" : "provider",
    exitCodes: PROVIDER_EXIT_CODES,
    run: (args) =>
      serve
        ? runServe(args.slice(1), {
          mdns: () => mdnsAdvertiser(),
          dht: (f) => dhtAdvertiser({ bootstrap: f.bootstrap, port: f.port }),
        })
        : runProviderCli(args),
  });
}
