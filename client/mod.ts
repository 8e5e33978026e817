/**
 * client/: discovery, content-addressed fetch and the boot chain
 * (issues #4 and #5).
 *
 * @module
 */
export {};
