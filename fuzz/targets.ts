/**
 * The registry of fuzz targets, by name.
 *
 * @module
 */
import type { FuzzTarget } from "./harness.ts";
import { NET_TARGETS } from "./targets_net.ts";
import { NODE_TARGETS } from "./targets_node.ts";
import { OTHER_TARGETS } from "./targets_other.ts";
import { TRUST_CHAIN_TARGETS } from "./targets_trust_chain.ts";
import { VERIFY_TARGETS } from "./targets_verify.ts";

/** Every target, in run order. */
export const TARGETS: readonly FuzzTarget[] = [
  ...VERIFY_TARGETS,
  ...TRUST_CHAIN_TARGETS,
  ...NET_TARGETS,
  ...OTHER_TARGETS,
  ...NODE_TARGETS,
];

/** The target named `name`, or undefined. */
export function targetNamed(name: string): FuzzTarget | undefined {
  return TARGETS.find((t) => t.name === name);
}
