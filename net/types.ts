/**
 * Types shared by the bounded HTTP layer (http.ts) and the raw client
 * (raw_http.ts), so that neither imports the other.
 *
 * @module
 */

/** The fetch function used (injected; defaults to the global one). */
export type FetchFn = (input: string | URL, init?: RequestInit) => Promise<Response>;

/**
 * Direct access to a raw-client body: `read(view)` reads socket bytes into
 * the caller's view (no transfer, no copy) and returns how many, or null at
 * the end; it throws when the body is cut short. The body stream must then
 * not be read (cancelling it still closes the connection).
 */
export interface DirectReader {
  /** Reads body bytes into `view`; returns how many, or null at the end of the body. */
  read(view: Uint8Array): Promise<number | null>;
}

/**
 * A response that carries its own direct body reader: what the raw client
 * returns. `readGuarded` (http.ts) reads through `direct` when the caller
 * reads into its own buffers; any other `Response` is read as a stream.
 */
export interface DirectResponse extends Response {
  /** The direct reader of this response's body. */
  readonly direct?: DirectReader;
}

/**
 * Opens the byte stream for one request: a TCP connection, or a tunnel
 * through a proxy (socks.ts), with TLS already started for https. It must
 * give up when `signal` aborts, also while connecting (TM-06).
 */
export type Dialer = (
  url: URL,
  signal?: AbortSignal,
) => Promise<Deno.Conn>;
