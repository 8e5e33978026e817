/**
 * The base of every Phase error family and the project's one registry of
 * error codes: each code has one exit status in every binary. Components
 * define a subclass whose `code` is a subset of {@link ErrorCode}.
 *
 * @module
 */

/**
 * Every error code of Phase and its exit status, the same in every binary.
 * 3-9 are the conformance statuses of docs/formats.md and never change.
 * Ranges: 10-19 trust, keys and files; 20-29 fetch and discovery; 30-39
 * images, provider and build; 40-49 the boot chain; 50-59 kexec; 60-69 WASM
 * jobs and receipts; 80 work the user stopped; 81-89 the Plasm job node and its SDK.
 */
export const EXIT_STATUS = {
  /** audit, fuzz: the permission audit or a fuzz run found problems. */
  E_FINDINGS: 1,
  /** every CLI: bad or missing flags. */
  E_USAGE: 2,
  /** verify: a document is not well-formed (formats.md §1). */
  E_SCHEMA: 3,
  /** verify: too few valid trusted signatures (formats.md §1). */
  E_SIGNATURE: 4,
  /** verify: channel or arch differs from what was asked for (formats.md §1). */
  E_MISMATCH: 5,
  /** verify: the manifest has expired (formats.md §1). */
  E_EXPIRED: 6,
  /** verify: the version is below the accepted floor (formats.md §1). */
  E_ROLLBACK: 7,
  /** verify: an artifact's size differs from the manifest (formats.md §1). */
  E_SIZE: 8,
  /** verify: an artifact's SHA-256 differs from the manifest (formats.md §1). */
  E_DIGEST: 9,
  /** verify: a trust file is missing, unreadable or invalid. */
  E_TRUST: 10,
  /** every CLI: a file could not be read or written. */
  E_IO: 11,
  /** every CLI: the process holds permissions outside its set (TM-12). */
  E_PERMISSIONS: 13,
  /** sign: refusing to overwrite a key or signature that exists. */
  E_EXISTS: 14,
  /** sign, provider, wasm: a private key is missing or invalid. */
  E_KEY: 15,
  /** sign: a private key is readable by group or other. */
  E_KEY_MODE: 16,
  /** sign: an artifact to sign is missing or invalid. */
  E_ARTIFACT: 17,
  /** sign: the manifest to sign or extend is invalid. */
  E_MANIFEST: 18,
  /** client, boot: the policy file or kernel command line is invalid. */
  E_POLICY: 20,
  /** client, provider: every source failed to deliver. */
  E_FETCH: 21,
  /** client: a response exceeded its byte cap. */
  E_TOO_LARGE: 22,
  /** client: a transfer stalled or fell below the minimum rate. */
  E_STALL: 23,
  /** client: a redirect was refused. */
  E_REDIRECT: 24,
  /** client: the private-mode root is not a plain tmpfs. */
  E_PRIVATE_ROOT: 25,
  /** client: the content-addressed cache is unusable. */
  E_CACHE: 26,
  /** client: a captive portal answers instead of providers. */
  E_CAPTIVE: 27,
  /** client: discovery found no usable provider. */
  E_NO_CANDIDATE: 28,
  /** client, boot: Tor failed to start or to bootstrap. */
  E_TOR: 29,
  /** images: a host tool the build needs is missing or failed. */
  E_TOOL: 30,
  /** images: an input of the image build is missing or invalid. */
  E_INPUT: 31,
  /** images: the image build failed. */
  E_BUILD: 32,
  /** provider, node: the listen address cannot be bound. */
  E_BIND: 34,
  /** provider: the artifact root is unusable. */
  E_ROOT: 35,
  /** provider: the state directory is unusable. */
  E_STATE: 36,
  /** provider: the release catalog could not be built. */
  E_CATALOG: 37,
  /** build, wasm: the Deno runtime lacks what is needed (denort for deno compile; worker-options for a WASM job). */
  E_RUNTIME: 38,
  /** build: deno compile failed. */
  E_COMPILE: 39,
  /** boot: the network did not come up. */
  E_NETWORK: 40,
  /** boot: a step of the boot chain failed. */
  E_STEP: 41,
  /** boot: no release could be fetched or found in the cache. */
  E_NO_RELEASE: 42,
  /** boot: kexec and the chainload fallback both failed. */
  E_KEXEC: 43,
  /** kexec: the verified artifacts could not be staged. */
  E_STAGE: 50,
  /** kexec: the kernel refused to load the image. */
  E_LOAD: 51,
  /** kexec: the loaded kernel could not be executed. */
  E_EXEC: 52,
  /** kexec: the device tree could not be prepared. */
  E_FDT: 53,
  /** kexec: the chainload fallback failed. */
  E_FALLBACK: 54,
  /** kexec: exec was asked for with no kernel loaded. */
  E_NOT_LOADED: 55,
  /** wasm: the WASM module is invalid. */
  E_MODULE: 60,
  /** wasm: the module imports what the sandbox does not offer. */
  E_IMPORT: 61,
  /** wasm: the job trapped. */
  E_TRAP: 62,
  /** wasm: the job ran past its deadline. */
  E_TIMEOUT: 63,
  /** wasm: the job hit its memory cap. */
  E_MEMORY: 64,
  /** wasm: the job hit its output cap. */
  E_OUTPUT: 65,
  /** wasm: the job exited with a non-zero status. */
  E_EXIT: 66,
  /** wasm: a receipt is invalid. */
  E_RECEIPT: 67,
  /** every CLI: a bug in Phase: please report it. */
  E_INTERNAL: 70,
  /** fetch: interrupted (Ctrl-C); the partial files are kept and the same command resumes them. */
  E_INTERRUPTED: 80,
  /** node: a node refused the job offer (busy, over-limit, unauthorized, unsupported). */
  E_REJECTED: 81,
  /** node: a peer broke the job protocol (bad or oversized frame, missed deadline). */
  E_PROTOCOL: 82,
  /** node: no reachable node offers the capabilities the job asks for. */
  E_NO_NODE: 83,
  /** node: a job's receipt does not match the peer's key, the job sent or the output received. */
  E_UNVERIFIED: 84,
  /** node: two nodes signed different outputs for the same job (reexecute). */
  E_DISAGREE: 85,
  /** node: the job was cancelled by its submitter. */
  E_CANCELLED: 86,
  /** node: the node's configuration or limits are invalid. */
  E_CONFIG: 87,
} as const;

/** One error code of Phase. */
export type ErrorCode = keyof typeof EXIT_STATUS;

/** True when `code` is a code of the registry. */
export function isErrorCode(code: string): code is ErrorCode {
  return Object.hasOwn(EXIT_STATUS, code);
}

/** A Phase error: a literal code, a human message, a hint and a cause. */
export class PhaseError<C extends ErrorCode = ErrorCode> extends Error {
  /** The literal code; its exit status is `EXIT_STATUS[code]`. */
  readonly code: C;
  /** What the user can do about it, printed as `hint:` by the CLIs. */
  readonly hint: string | undefined;
  /** Makes an error with `code`, a message and optionally a hint and a cause. */
  constructor(
    code: C,
    message: string,
    options: { cause?: unknown; hint?: string } = {},
  ) {
    super(message, { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.hint = options.hint;
  }
}

/** Exit status for a usage error, shared by every CLI (as in the spec). */
export const EXIT_USAGE: number = EXIT_STATUS.E_USAGE;
/** Exit status when a process holds a permission outside its set. */
export const EXIT_PERMISSIONS: number = EXIT_STATUS.E_PERMISSIONS;
/** Exit status for an unexpected internal error. */
export const EXIT_INTERNAL: number = EXIT_STATUS.E_INTERNAL;

/** The exit status for any thrown value: its code's, or {@link EXIT_INTERNAL}. */
export function exitStatusOf(err: unknown): number {
  if (err instanceof PhaseError && isErrorCode(err.code)) return EXIT_STATUS[err.code];
  return EXIT_INTERNAL;
}

/** A usage error: bad or missing flags. */
export class UsageError extends PhaseError<"E_USAGE"> {
  /** A usage error with its message and, usually, the usage as hint. */
  constructor(message: string, hint?: string) {
    super("E_USAGE", message, { hint });
  }
}

/** The process holds a permission its set does not grant (TM-12). */
export class PermissionSetError extends PhaseError<"E_PERMISSIONS"> {
  /** The grants held beyond the set, in words. */
  readonly excess: readonly string[];
  /** Names the set and what the process holds beyond it. */
  constructor(set: string, excess: readonly string[]) {
    super(
      "E_PERMISSIONS",
      `refusing to run: this process holds permissions outside its set '${set}': ${
        excess.join(", ")
      }`,
      {
        hint:
          `run it through 'deno task' or the compiled binary, which grant exactly -P=${set}; never with -A`,
      },
    );
    this.excess = excess;
  }
}

/** Turns any thrown value into a short message. */
export function describe(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}
