/**
 * Issue 11 §2: a path a user names outside the command's permission set is
 * refused the same way by every entrypoint: exit E_IO, the message names
 * the flag and the path, the `hint:` lists the directories the set allows
 * (read from deno.json), and nothing is written there.
 */
import { EXIT_STATUS } from "../core/mod.ts";
import { permissionSet } from "./mod.ts";
import { assert, assertEquals, makeRelease, REPO, taskArgv, tempDir } from "../testing/mod.ts";

/** Longest one refused command may take, in milliseconds. */
const CLI_TIMEOUT_MS = 60_000;

interface Case {
  /** The task in deno.json. */
  readonly task: string;
  /** Its permission set (the hint lists this set's directories). */
  readonly set: string;
  /** The arguments; OUT stands for the out-of-set directory. */
  readonly args: readonly string[];
  /** The flag the message must name (or undefined for a positional path). */
  readonly flag: string | undefined;
  /** Which list of the set the hint must print. */
  readonly access: "read" | "write";
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return false;
    throw err;
  }
}

Deno.test("cli: a path outside the set is refused by every entrypoint with exit E_IO, the flag, the set's directories as hint, nothing written", async () => {
  const rel = await makeRelease();
  const work = await tempDir("refusal");
  // Outside every set: /tmp/phase-x is not under /tmp/phase (Deno compares path components).
  const out = `/tmp/phase-outside-${crypto.randomUUID()}`;
  const relative = `./cache-${crypto.randomUUID()}`;
  const manifest = `${rel.root}/stable/amd64/manifest.json`;
  const state = `${work}/state`;
  const cases: Case[] = [
    {
      task: "fetch",
      set: "fetch",
      args: ["--manifest", "http://127.0.0.1:9/m.json", "--trust", rel.trustPath, "--cache", "OUT"],
      flag: "--cache",
      access: "write",
    },
    {
      task: "fetch",
      set: "fetch",
      args: [
        "--manifest",
        "http://127.0.0.1:9/m.json",
        "--trust",
        rel.trustPath,
        "--cache",
        relative,
      ],
      flag: "--cache",
      access: "write",
    },
    {
      task: "fetch",
      set: "fetch",
      args: [
        "--manifest",
        "http://127.0.0.1:9/m.json",
        "--trust",
        "OUT/trust.json",
        "--cache",
        work,
      ],
      flag: "--trust",
      access: "read",
    },
    {
      task: "serve",
      set: "serve",
      args: ["--root", "OUT", "--state", state, "--no-mdns", "--no-dht", "--port", "0"],
      flag: "--root",
      access: "read",
    },
    {
      task: "serve",
      set: "serve",
      args: ["--root", rel.root, "--state", "OUT", "--no-mdns", "--no-dht", "--port", "0"],
      flag: "--state",
      access: "write",
    },
    {
      task: "sign",
      set: "sign",
      args: ["--root", "OUT", "--channel", "stable", "--arch", "amd64", "--version", "2026.11.21"]
        .concat(["--key", rel.keyPath]),
      flag: "--root",
      access: "read",
    },
    { task: "keygen", set: "sign", args: ["--out", "OUT"], flag: "--out", access: "read" },
    {
      task: "verify",
      set: "verify",
      args: ["--manifest", "OUT/manifest.json", "--trust", rel.trustPath],
      flag: "--manifest",
      access: "read",
    },
    {
      task: "verify",
      set: "verify",
      args: ["--manifest", manifest, "--trust", "OUT/trust.json"],
      flag: "--trust",
      access: "read",
    },
    {
      task: "verify",
      set: "verify",
      args: ["--manifest", manifest, "--trust", rel.trustPath, "--artifact", "kernel=OUT/kernel"],
      flag: "--artifact",
      access: "read",
    },
    {
      task: "kexec",
      set: "kexec",
      args: ["load", "--manifest", "OUT/manifest.json", "--trust", rel.trustPath]
        .concat([
          "--artifact",
          `kernel=${work}/k`,
          "--artifact",
          `initramfs=${work}/i`,
          "--dry-run",
        ]),
      flag: "--manifest",
      access: "read",
    },
    {
      task: "wasm",
      set: "wasm",
      args: ["run", "wasm/examples/hello.wasm", "--state", "OUT"],
      flag: "--state",
      access: "read",
    },
    {
      task: "wasm",
      set: "wasm",
      args: ["run", "wasm/examples/hello.wasm", "--dir", "OUT", "--state", state],
      flag: "--dir",
      access: "read",
    },
    {
      task: "receipt",
      set: "receipt",
      args: ["verify", "OUT/r.json"],
      flag: undefined,
      access: "read",
    },
  ];
  try {
    for (const c of cases) {
      const args = c.args.map((a) => a.replace(/^OUT/, out).replace(/=OUT/, `=${out}`));
      const what = `${c.task} ${args.join(" ")}`;
      const r = await new Deno.Command(Deno.execPath(), {
        args: [...taskArgv(c.task), ...args],
        cwd: REPO,
        stdout: "piped",
        stderr: "piped",
        signal: AbortSignal.timeout(CLI_TIMEOUT_MS),
      }).output();
      const stderr = new TextDecoder().decode(r.stderr);
      assertEquals(r.code, EXIT_STATUS.E_IO, `${what}\n${stderr}`);
      assert(!stderr.includes("run again with the"), `${what}: Deno's raw text\n${stderr}`);
      assert(stderr.includes(`outside the '${c.set}' permission set`), `${what}\n${stderr}`);
      if (c.flag) assert(stderr.includes(`: ${c.flag} `), `${what}: names ${c.flag}\n${stderr}`);
      const grant = permissionSet(c.set)[c.access] as readonly string[];
      const hint = stderr.split("\n").find((l) => l.startsWith("hint: "));
      assertEquals(
        hint?.startsWith(`hint: ${c.set} may ${c.access} only under ${grant.join(", ")}`),
        true,
        `${what}\n${stderr}`,
      );
      assert(hint!.includes("repository root"), hint);
      assertEquals(await exists(out), false, `${what}: wrote ${out}`);
      assertEquals(
        await exists(`${REPO}/${relative.slice(2)}`),
        false,
        `${what}: wrote ${relative}`,
      );
    }
  } finally {
    await Deno.remove(work, { recursive: true });
    await Deno.remove(rel.dir, { recursive: true });
  }
});
