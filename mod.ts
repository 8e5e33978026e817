/**
 * Phase: verified network boot and open compute. The root export is the
 * trust core; each component has its own sub-path export, so a user pulls
 * in only what they use (the provider brings libp2p, the client brings the
 * transport stack):
 *
 * | import | what |
 * | --- | --- |
 * | `@phase/phase` | `core`, `verify`, `sign` namespaces |
 * | `@phase/phase/core` | `PhaseError`, the error-code registry `EXIT_STATUS` |
 * | `@phase/phase/verify` | `verifyManifest`, `checkArtifactFile`, trust files |
 * | `@phase/phase/sign` | `keygen`, `signRelease` |
 * | `@phase/phase/client` | `discover`, `fetchRelease` |
 * | `@phase/phase/net` | `fetchCapped`, the SOCKS5 dialer, `startTor` |
 * | `@phase/phase/provider` | `createHandler`, `startProvider` |
 * | `@phase/phase/kexec` | `stageArtifacts`, `loadKernel`, `execKernel` |
 * | `@phase/phase/wasm` | `runJob`, `verifyReceipt` |
 * | `@phase/phase/boot` | `runChain`, `cachedRelease` |
 *
 * @example Refuse a manifest that carries no trusted signature
 * ```ts
 * import { core, verify } from "./mod.ts";
 *
 * const trust = verify.parseTrust(new TextEncoder().encode(JSON.stringify({
 *   threshold: 1,
 *   keys: {
 *     "ed25519:1adc1d0438aa54910da878055c2d50aedc70b8ebfbff611b2019f354a6e84448": {
 *       public: "ca59bvkMy2bJqeunNBS8Ew9cNHANy/GsF+r1K03sGnA=",
 *     },
 *   },
 * })));
 * try {
 *   verify.verifyManifest(new TextEncoder().encode("{}"), trust);
 *   throw new Error("an empty document must not verify");
 * } catch (err) {
 *   if (!(err instanceof core.PhaseError)) throw err;
 *   console.log(err.code, core.exitStatusOf(err)); // E_SCHEMA 3
 * }
 * ```
 *
 * @module
 */
export * as core from "./core/mod.ts";
export * as verify from "./verify/mod.ts";
export * as sign from "./sign/mod.ts";
