import { DEFAULT_LIMITS, openRequest, type TransferLimits } from "./http.ts";
import { NetError } from "./errors.ts";
import { rawHttpFetch } from "./raw_http.ts";
import type { FetchFn } from "./types.ts";
import { assert, assertEquals, assertRejectsCode } from "../testing/mod.ts";

/**
 * Connections queued on a listener that never accepts, until the kernel
 * drops further SYNs (the accept queue is full): a connect to it then waits
 * for the kernel's SYN retries, about two minutes.
 */
async function fullBacklog(): Promise<{ url: string; close(): void }> {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  const queued: Deno.Conn[] = [];
  for (;;) {
    const c = await Promise.race([
      Deno.connect({ hostname: "127.0.0.1", port }),
      new Promise<undefined>((r) => setTimeout(() => r(undefined), 200)),
    ]);
    if (!c) break;
    queued.push(c);
    if (queued.length > 100_000) throw new Error("the backlog never filled");
  }
  return {
    url: `http://127.0.0.1:${port}/stable/amd64/kernel`,
    close() {
      for (const c of queued) c.close();
      l.close();
    },
  };
}

const SHORT: TransferLimits = { ...DEFAULT_LIMITS, headersTimeoutMs: 400 };

async function connectBounded(fetchFn: FetchFn): Promise<void> {
  const target = await fullBacklog();
  try {
    const t0 = performance.now();
    let guard: ReturnType<typeof setTimeout> | undefined;
    const e = await assertRejectsCode(
      Promise.race([
        openRequest({ url: target.url }, { limits: SHORT, fetchFn }),
        new Promise((_, reject) => {
          guard = setTimeout(() => reject(new Error("still connecting after 5 s")), 5_000);
        }),
      ]).finally(() => clearTimeout(guard)),
      NetError,
      "E_STALL",
    );
    const took = performance.now() - t0;
    assert(e.message.includes("within 400 ms"), e.message);
    assert(took < 2_000, `took ${Math.round(took)} ms for a 400 ms deadline`);
    assertEquals(e.code, "E_STALL");
  } finally {
    target.close();
  }
}

// The abandoned connect attempt ends only with the kernel's SYN retries:
// no op or resource sanitizer.
Deno.test({
  name:
    "TM-06 slow retrieval: a host that never completes the connect fails within the header deadline (global fetch)",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: () => connectBounded(fetch),
});

Deno.test({
  name:
    "TM-06 slow retrieval: a host that never completes the connect fails within the header deadline (raw client)",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: () => connectBounded(rawHttpFetch),
});
