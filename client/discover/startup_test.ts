import { assert } from "../../testing/mod.ts";

interface InfoDep {
  readonly code?: { readonly specifier: string };
  readonly isDynamic?: boolean;
}
interface InfoModule {
  readonly specifier: string;
  readonly dependencies?: readonly InfoDep[];
}

/** Modules phase-discover evaluates at its start: its static import graph (`deno info`). */
async function staticGraph(entry: string): Promise<Set<string>> {
  const r = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", entry],
    cwd: new URL("../..", import.meta.url).pathname,
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert(r.success, new TextDecoder().decode(r.stderr));
  const modules = new Map<string, InfoModule>();
  for (const m of JSON.parse(new TextDecoder().decode(r.stdout)).modules as InfoModule[]) {
    modules.set(m.specifier, m);
  }
  const seen = new Set<string>();
  const todo = [new URL(`../../${entry}`, import.meta.url).href];
  while (todo.length) {
    const s = todo.pop()!;
    if (seen.has(s)) continue;
    seen.add(s);
    for (const d of modules.get(s)?.dependencies ?? []) {
      if (d.code && !d.isDynamic) todo.push(d.code.specifier);
    }
  }
  return seen;
}

Deno.test("phase-discover start-up (issue 17): libp2p and the DHT are loaded only when a DHT lookup runs", async () => {
  const graph = await staticGraph("client/discover/main.ts");
  assert(graph.has(new URL("../discover.ts", import.meta.url).href), [...graph].join("\n"));
  const p2p = [...graph].filter((s) => s.includes("/p2p/") || s.includes("libp2p"));
  assert(p2p.length === 0, `statically imported at start-up:\n${p2p.join("\n")}`);
});
