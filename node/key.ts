/**
 * The node key: one Ed25519 key is both the libp2p identity (peer id) and
 * the key that signs receipts and capability records. It is wasm/'s node
 * key (`<state>/node-key/node.pem`, PKCS#8, mode 0600, created on first
 * use), so `deno task receipt verify --trust <state>/node-key/trust.json`
 * checks a remote job's receipt like a local one.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import {
  generateKeyPairFromSeed,
  publicKeyFromMultihash,
  publicKeyFromRaw,
} from "@libp2p/crypto/keys";
import { base58btc } from "multiformats/bases/base58";
import * as Digest from "multiformats/hashes/digest";
import type { SigningKey } from "../sign/mod.ts";
import { ephemeralNodeKey, loadOrCreateNodeKey } from "../wasm/mod.ts";

/** A libp2p Ed25519 private key. */
export interface Libp2pKey {
  /** The key type: `Ed25519`. */
  readonly type: string;
  /** The raw private key bytes. */
  readonly raw: Uint8Array;
}

/** A node's (or a submitter's) identity: the signing key and the same key for libp2p. */
export interface Identity {
  /** The Ed25519 key as Phase signs with it. */
  readonly signing: SigningKey;
  /** The same key as libp2p takes it. */
  readonly libp2p: Libp2pKey;
  /** The peer id the key gives (base58btc). */
  readonly peerId: string;
  /** The keyid of the key (`ed25519:<hex>`). */
  readonly keyid: string;
}

/** The libp2p form of a Phase signing key (same seed, same public key). */
export async function identityOf(signing: SigningKey): Promise<Identity> {
  const jwk = signing.key.export({ format: "jwk" }) as { d?: string };
  if (!jwk.d) throw new TypeError("not an Ed25519 private key");
  const libp2p = await generateKeyPairFromSeed(
    "Ed25519",
    new Uint8Array(Buffer.from(jwk.d, "base64url")),
  );
  return { signing, libp2p, peerId: libp2p.publicKey.toString(), keyid: signing.keyid };
}

/** Loads the node key of `stateDir` (creating it, mode 0600, on first use). */
export async function loadIdentity(stateDir: string): Promise<Identity & { created: boolean }> {
  const k = await loadOrCreateNodeKey(stateDir);
  return { ...(await identityOf(k)), created: k.created };
}

/** A key that lives only in memory (a client that needs no stable identity). */
export function ephemeralIdentity(): Promise<Identity> {
  return identityOf(ephemeralNodeKey());
}

/** The peer id of a raw Ed25519 public key. */
export function peerIdOf(publicRaw: Uint8Array): string {
  return publicKeyFromRaw(publicRaw).toString();
}

/** The raw Ed25519 public key inside a peer id, or undefined (not an inline Ed25519 id). */
export function publicKeyOfPeerId(peerId: string): Uint8Array | undefined {
  try {
    const key = publicKeyFromMultihash(
      Digest.decode(base58btc.decode("z" + peerId)) as Parameters<typeof publicKeyFromMultihash>[0],
    );
    return key.type === "Ed25519" ? key.raw : undefined;
  } catch {
    return undefined;
  }
}
