/**
 * mDNS discovery of Plasm nodes (issue 13 §1) with real multicast: two
 * `deno task node` daemons, each in its own network namespace, joined by
 * one veth pair and listening on `/ip4/0.0.0.0` (so the node permission
 * set's networkInterfaces grant is exercised too). Needs root to create
 * the namespaces; skipped, saying why, without it.
 */
import {
  assert,
  assertEquals,
  IP_COMMAND_TIMEOUT_MS,
  netnsAvailable,
  NetnsLab,
  readUntil,
  REPO,
  taskArgv,
  tempDir,
} from "../testing/mod.ts";
import { STATUS_FILE } from "./mod.ts";

/** Longest a daemon may take to print its address, in ms. */
const START_TIMEOUT_MS = 20_000;
/** Longest two mDNS nodes may take to find each other (one query at start, then every 10 s), in ms. */
const FIND_TIMEOUT_MS = 25_000;
/** How long nodes that must not find each other are watched, in ms (a found pair takes ~1-2 s). */
const APART_WATCH_MS = 6_000;
/** Poll interval of the status files, in ms. */
const POLL_MS = 250;

const ROOT_OK = await netnsAvailable();
if (!ROOT_OK) {
  console.warn(
    "node/mdns_test.ts: skipped: creating network namespaces (ip netns) needs root",
  );
}

async function peers(state: string): Promise<number> {
  try {
    return Number(JSON.parse(await Deno.readTextFile(`${state}/${STATUS_FILE}`)).peers);
  } catch {
    return 0; // not written yet
  }
}

/**
 * A LAN host has a route for multicast (its default route, usually);
 * without one the kernel drops mDNS packets that @libp2p/mdns sends on
 * the default interface. The namespaces get the route a LAN would give.
 */
async function lanRoutes(lab: NetnsLab): Promise<void> {
  for (const ns of lab.namespaces) {
    const out = await new Deno.Command("ip", {
      args: ["-n", ns.name, "route", "add", "224.0.0.0/4", "dev", ns.veth],
      stderr: "piped",
      signal: AbortSignal.timeout(IP_COMMAND_TIMEOUT_MS),
    }).output();
    assert(out.success, new TextDecoder().decode(out.stderr));
  }
}

async function daemon(lab: NetnsLab, i: number, state: string, extra: string[]) {
  const child = lab.command(i, Deno.execPath(), [
    ...taskArgv("node"),
    "--state",
    state,
    "--listen",
    "/ip4/0.0.0.0/tcp/4001",
    ...extra,
  ], { cwd: REPO, stdout: "piped", stderr: "null" }).spawn();
  const { found, seen } = await readUntil(
    child.stdout,
    (s) => /listening \S+/.exec(s)?.[0],
    START_TIMEOUT_MS,
    { then: "release" },
  );
  assert(found, `node ${i} did not start: ${seen}`);
  return child;
}

async function stop(children: Deno.ChildProcess[]): Promise<void> {
  for (const c of children) {
    try {
      c.kill("SIGTERM");
    } catch { /* gone */ }
    await c.status;
    await c.stdout.cancel().catch(() => {});
  }
}

Deno.test({
  name:
    "node mDNS: two nodes in two network namespaces find each other without bootstrap; --no-mdns on one keeps them apart",
  ignore: !ROOT_OK,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const dir = await tempDir("node-mdns");
    try {
      {
        await using lab = await NetnsLab.create(2);
        await lanRoutes(lab);
        const children = [
          await daemon(lab, 0, `${dir}/a`, []),
          await daemon(lab, 1, `${dir}/b`, []),
        ];
        try {
          const t0 = Date.now();
          while (
            (await peers(`${dir}/a`) < 1 || await peers(`${dir}/b`) < 1) &&
            Date.now() - t0 < FIND_TIMEOUT_MS
          ) await new Promise((r) => setTimeout(r, POLL_MS));
          assertEquals([await peers(`${dir}/a`), await peers(`${dir}/b`)], [1, 1]);
        } finally {
          await stop(children);
        }
      }
      {
        await using lab = await NetnsLab.create(2);
        await lanRoutes(lab);
        const children = [
          await daemon(lab, 0, `${dir}/c`, []),
          await daemon(lab, 1, `${dir}/d`, ["--no-mdns"]),
        ];
        try {
          const t0 = Date.now();
          while (Date.now() - t0 < APART_WATCH_MS) {
            assertEquals([await peers(`${dir}/c`), await peers(`${dir}/d`)], [0, 0]);
            await new Promise((r) => setTimeout(r, POLL_MS));
          }
        } finally {
          await stop(children);
        }
      }
    } finally {
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  },
});
