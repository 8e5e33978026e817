/**
 * Network namespaces for tests: two (or more) namespaces joined by veth
 * pairs on a private /24, commands run inside one, and guaranteed cleanup
 * (processes in them are killed, the namespaces deleted; deleting a
 * namespace removes its veth ends). Needs root (`ip netns`).
 *
 * @module
 */

/** Longest an `ip` command may take, in ms. */
export const IP_COMMAND_TIMEOUT_MS = 10_000;

/** One namespace of a {@link NetnsLab}. */
export interface Netns {
  readonly name: string;
  /** Its IPv4 address on the shared link. */
  readonly ip: string;
  readonly veth: string;
}

async function ip(args: string[]): Promise<string> {
  const out = await new Deno.Command("ip", {
    args,
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(IP_COMMAND_TIMEOUT_MS),
  }).output();
  if (!out.success) {
    throw new Error(`ip ${args.join(" ")}: ${new TextDecoder().decode(out.stderr).trim()}`);
  }
  return new TextDecoder().decode(out.stdout);
}

/** True when this process can create network namespaces. */
export async function netnsAvailable(): Promise<boolean> {
  try {
    const probe = `phase-probe-${Deno.pid}`;
    await ip(["netns", "add", probe]);
    await ip(["netns", "del", probe]);
    return true;
  } catch {
    return false;
  }
}

/**
 * A set of namespaces joined to a bridge-less star: namespace 0 is linked
 * to every other by its own veth pair when `count` > 2; with 2 it is one
 * veth pair. All share the subnet `10.<a>.<b>.0/24`.
 */
export class NetnsLab implements AsyncDisposable {
  readonly namespaces: Netns[] = [];
  readonly #tag: string;
  #bridgeNs?: string;

  private constructor(tag: string) {
    this.#tag = tag;
  }

  /** Creates `count` namespaces on one L2 segment (a bridge in its own namespace when count > 2). */
  static async create(count = 2): Promise<NetnsLab> {
    const tag = `${(Deno.pid % 10000).toString(36)}${
      Math.floor(Math.random() * 36 ** 3).toString(36)
    }`;
    const lab = new NetnsLab(tag);
    const a = 200 + Math.floor(Math.random() * 50);
    const b = Math.floor(Math.random() * 250) + 1;
    try {
      if (count === 2) {
        const [n0, n1] = [`phase-${tag}-0`, `phase-${tag}-1`];
        const [v0, v1] = [`ph${tag}0`, `ph${tag}1`];
        await ip(["netns", "add", n0]);
        lab.namespaces.push({ name: n0, ip: `10.${a}.${b}.1`, veth: v0 });
        await ip(["netns", "add", n1]);
        lab.namespaces.push({ name: n1, ip: `10.${a}.${b}.2`, veth: v1 });
        await ip(["link", "add", v0, "netns", n0, "type", "veth", "peer", "name", v1, "netns", n1]);
      } else {
        const br = `phase-${tag}-br`;
        await ip(["netns", "add", br]);
        lab.#bridgeNs = br;
        await ip(["-n", br, "link", "add", "br0", "type", "bridge"]);
        await ip(["-n", br, "link", "set", "br0", "up"]);
        for (let i = 0; i < count; i++) {
          const n = `phase-${tag}-${i}`;
          const v = `ph${tag}${i}`;
          await ip(["netns", "add", n]);
          lab.namespaces.push({ name: n, ip: `10.${a}.${b}.${i + 1}`, veth: v });
          await ip([
            "link",
            "add",
            v,
            "netns",
            n,
            "type",
            "veth",
            "peer",
            "name",
            `p${i}`,
            "netns",
            br,
          ]);
          await ip(["-n", br, "link", "set", `p${i}`, "master", "br0"]);
          await ip(["-n", br, "link", "set", `p${i}`, "up"]);
        }
      }
      for (const ns of lab.namespaces) {
        await ip(["-n", ns.name, "link", "set", "lo", "up"]);
        await ip(["-n", ns.name, "addr", "add", `${ns.ip}/24`, "dev", ns.veth]);
        await ip(["-n", ns.name, "link", "set", ns.veth, "up", "multicast", "on"]);
      }
    } catch (err) {
      await lab.cleanup();
      throw err;
    }
    return lab;
  }

  /** A command that runs `cmd args` inside namespace `i`. */
  command(
    i: number,
    cmd: string,
    args: string[],
    opts: Omit<Deno.CommandOptions, "args"> = {},
  ): Deno.Command {
    return new Deno.Command("ip", {
      ...opts,
      args: ["netns", "exec", this.namespaces[i].name, cmd, ...args],
    });
  }

  /** Kills every process still inside the namespaces, then deletes them. */
  async cleanup(): Promise<void> {
    const all = [
      ...this.namespaces.map((n) => n.name),
      ...(this.#bridgeNs ? [this.#bridgeNs] : []),
    ];
    for (const name of all) {
      try {
        const pids = (await ip(["netns", "pids", name])).split(/\s+/).filter(Boolean).map(Number);
        for (const pid of pids) {
          try {
            Deno.kill(pid, "SIGKILL");
          } catch { /* gone */ }
        }
      } catch { /* no such namespace */ }
      await ip(["netns", "del", name]).catch(() => {});
    }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.cleanup();
  }
}
