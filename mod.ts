/**
 * Phase: verified network boot. The library API: trust core (verify),
 * release signing (sign), and the components as they land.
 *
 * @module
 */
export * as verify from "./verify/mod.ts";
export * as sign from "./sign/mod.ts";
export * as cli from "./cli/mod.ts";
