/**
 * The node key: the Ed25519 key a node signs its receipts with. It lives in
 * `<state>/node-key/node.pem` (PKCS#8 PEM, 0600, beside `node.pub.pem` and a
 * `trust.json` naming it) and is generated on first use. In private mode
 * the key is ephemeral and never written (TM-13).
 *
 * @module
 */
import { generateKeyPairSync } from "node:crypto";
import { keygen, keyPaths, loadSigningKey, SignError, type SigningKey } from "../sign/mod.ts";
import { keyidOf, rawPublicKey } from "../verify/mod.ts";
import { WasmError } from "./errors.ts";

/** Directory under the state dir that holds the node key. */
export const NODE_KEY_DIR = "node-key";
/** Name of the node key files. */
export const NODE_KEY_NAME = "node";

/**
 * Paths of the node key under `stateDir`: `privateKey`, `publicKey`, and
 * `trust` (a trust file naming the node key, to verify its receipts with).
 */
export function nodeKeyPaths(stateDir: string): ReturnType<typeof keyPaths> {
  return keyPaths(`${stateDir}/${NODE_KEY_DIR}`, NODE_KEY_NAME);
}

/** Loads the node key from `stateDir`, generating it on first use. */
export async function loadOrCreateNodeKey(
  stateDir: string,
): Promise<SigningKey & { created: boolean }> {
  const paths = nodeKeyPaths(stateDir);
  let created = false;
  try {
    await Deno.lstat(paths.privateKey);
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) {
      throw new WasmError("E_KEY", `cannot check ${paths.privateKey}: ${(err as Error).message}`, {
        cause: err,
        hint: "pass --state with a directory the 'wasm' permission set may read and write",
      });
    }
    try {
      await keygen(`${stateDir}/${NODE_KEY_DIR}`, NODE_KEY_NAME);
      created = true;
    } catch (e) {
      // Another process created it first: load theirs.
      if (!(e instanceof SignError && e.code === "E_EXISTS")) {
        throw new WasmError("E_KEY", `cannot create the node key: ${(e as Error).message}`, {
          cause: e,
          hint: "pass --state with a directory the 'wasm' permission set may write, or --private",
        });
      }
    }
  }
  try {
    return { ...(await loadSigningKey(paths.privateKey)), created };
  } catch (err) {
    throw new WasmError("E_KEY", `cannot load the node key: ${(err as Error).message}`, {
      cause: err,
      hint: (err as SignError).hint,
    });
  }
}

/** A key that lives only in memory, for private mode. */
export function ephemeralNodeKey(): SigningKey {
  const { privateKey } = generateKeyPairSync("ed25519");
  const publicRaw = rawPublicKey(privateKey);
  return { key: privateKey, publicRaw, keyid: keyidOf(publicRaw) };
}
