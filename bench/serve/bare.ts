/**
 * bench/serve/bare: the runtime's own ceiling for the manifest benchmark
 * (issue 17 §2). A bare `Deno.serve` that answers every request with a
 * clone of one prepared Response: the same manifest bytes and the same
 * response headers the provider sends, and nothing else (no routing, no
 * caps, no metrics, no access log, no ETag check).
 *
 * Usage: deno run -q --no-prompt -P=test bench/serve/bare.ts FILE HEADERS_JSON
 * Prints `bare: listening on http://127.0.0.1:PORT` once it listens.
 *
 * @module
 */
const [file, headersJson] = Deno.args;
const bytes = await Deno.readFile(file);
const headers = JSON.parse(headersJson ?? "{}") as Record<string, string>;
const prepared = new Response(bytes, { status: 200, headers });
Deno.serve({
  hostname: "127.0.0.1",
  port: 0,
  onListen: ({ port }) => console.log(`bare: listening on http://127.0.0.1:${port}`),
}, () => prepared.clone());
