/**
 * Connecting under the caller's deadline. `Deno.connect` takes no signal,
 * and against a host that drops SYNs (a full backlog, a filtering
 * firewall) it waits for the kernel's SYN retries, about two minutes
 * (TM-06). Private to net/.
 *
 * @module
 */

/**
 * Waits for `connecting` until `signal` aborts, then throws its reason; a
 * connection that completes after that is closed at once.
 */
export async function connectUntil<C extends Deno.Conn>(
  connecting: Promise<C>,
  signal: AbortSignal | undefined,
): Promise<C> {
  if (!signal) return await connecting;
  let onAbort = () => {};
  const aborted = new Promise<never>((_, reject) => {
    onAbort = () => reject(signal.reason);
    if (signal.aborted) onAbort();
    else signal.addEventListener("abort", onAbort, { once: true });
  });
  try {
    return await Promise.race([connecting, aborted]);
  } catch (err) {
    connecting.then((c) => c.close(), () => {});
    throw err;
  } finally {
    signal.removeEventListener("abort", onAbort);
  }
}
