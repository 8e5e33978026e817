/**
 * THREAT-MODEL.md stays honest: every threat names tests that exist (or
 * says "open" with what will build it), and every test named after a
 * threat names one the document lists.
 */
import { deepStrictEqual as assertEquals, ok } from "node:assert/strict";

const ROOT = new URL("..", import.meta.url).pathname;
// deno fmt wraps long list items; join continuation lines back.
const doc = (await Deno.readTextFile(new URL("./THREAT-MODEL.md", import.meta.url))).replace(
  /\n {2}(?=\S)/g,
  " ",
);

interface Threat {
  id: string;
  title: string;
  body: string;
}

function threats(): Threat[] {
  const parts = doc.split(/^## (?=TM-\d\d )/m).slice(1);
  return parts.map((p) => {
    const [head, ...rest] = p.split("\n");
    const m = /^(TM-\d\d) (.+)$/.exec(head)!;
    return { id: m[1], title: m[2], body: rest.join("\n") };
  });
}

async function testFiles(dir = ROOT): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(dir)) {
    if (e.name.startsWith(".") || ["dist", "artifacts", "node_modules"].includes(e.name)) continue;
    const p = `${dir}${e.name}`;
    if (e.isDirectory) out.push(...await testFiles(p + "/"));
    else if (e.name.endsWith("_test.ts")) out.push(p);
  }
  return out;
}

Deno.test("threat model: THREAT-MODEL.md lists TM-01..TM-24 in order, each with defence and status", () => {
  const ts = threats();
  const ids = ts.map((t) => t.id);
  assertEquals(
    ids,
    Array.from({ length: 24 }, (_, i) => `TM-${String(i + 1).padStart(2, "0")}`),
  );
  for (const t of ts) {
    ok(/^\*\*Defence\.\*\*/m.test(t.body), `${t.id} has a Defence paragraph`);
    ok(/^\*\*Status\.\*\* (defended|partial|open)/m.test(t.body), `${t.id} has a Status`);
  }
});

Deno.test("threat model: every test THREAT-MODEL.md cites exists and is named after its threat; every TM-named test is cited", async () => {
  const cited = new Set<string>();
  for (const t of threats()) {
    const refs = [...t.body.matchAll(/^- `([^`]+\.ts)`: "([^"]+)"/gm)];
    const status = /^\*\*Status\.\*\* (\w+)/m.exec(t.body)![1];
    if (status !== "open") ok(refs.length > 0, `${t.id} is ${status} but cites no test`);
    for (const [, file, name] of refs) {
      ok(name.startsWith(t.id + " "), `${t.id} cites "${name}", which is not named after it`);
      const text = await Deno.readTextFile(`${ROOT}${file}`);
      ok(
        text.includes(JSON.stringify(name)) || text.includes(`"${name}`),
        `${file} has a test "${name}"`,
      );
      cited.add(`${file}::${name}`);
    }
  }
  for (const file of await testFiles()) {
    const text = await Deno.readTextFile(file);
    for (const m of text.matchAll(/Deno\.test\(\s*"(TM-\d\d [^"]+)"/g)) {
      const rel = file.slice(ROOT.length);
      const id = m[1].slice(0, 5);
      ok(threats().some((t) => t.id === id), `${rel}: "${m[1]}" names an unknown threat`);
      ok(cited.has(`${rel}::${m[1]}`), `${rel}: "${m[1]}" is not cited in THREAT-MODEL.md`);
    }
  }
  ok(cited.size > 0);
});
