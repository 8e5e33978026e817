/**
 * images/: reproducible initramfs, USB, QCOW2 and Parallels images (issue #5).
 *
 * @module
 */
export {};
