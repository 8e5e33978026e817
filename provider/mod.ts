/**
 * provider/: serves kernel, initramfs and rootfs with signed manifests over
 * HTTP and advertises them on mDNS and a libp2p DHT (issue #3).
 *
 * @module
 */
export {};
