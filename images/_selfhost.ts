/**
 * The target's self-hosting block (issue 12 §1): after the target marker,
 * the target mounts the cache the seed filled READ-ONLY, checks the
 * release's `rootfs` (Deno and the bundled entrypoints) against the digest
 * on its signed command line, and starts `phase-serve --from-cache` on its
 * LAN address with mDNS (and the DHT when the signed command line names
 * bootstrap peers). Private boots serve and advertise nothing. Kept apart
 * from the rest of the target's init so other post-boot services merge
 * beside it. Private to images/.
 *
 * What the target trusts, and why (docs/architecture.md, "The self-hosting
 * loop"):
 * - its command line: the manifest's, which the release key signed and the
 *   seed's kexec step verified before loading this kernel (TM-01, TM-11);
 *   it names the rootfs by its sha256 (`phase.rootfs=`);
 * - its initramfs (it holds the trust file the provider verifies with):
 *   kexec hashed it against the signed manifest;
 * - NOTHING on the cache partition: the rootfs is copied to tmpfs and the
 *   copy is hashed before it is mounted (the bytes checked are the bytes
 *   run), and `serve --from-cache` re-verifies every manifest and re-hashes
 *   every artifact before it offers it (TM-01, TM-02, TM-03, TM-19);
 * - nothing on the seed partition either: a USB seed does not download the
 *   rootfs its own partition holds (`phase.seed_rootfs`, `phase-fetch
 *   --have`, issue 17), so when the cache lacks it the copy comes from the
 *   partition's first `phase.rootfs_bytes` bytes and is hashed the same
 *   way. Only a copy that matched is added to the cache (under its digest,
 *   the one file the target writes there), so that peers booting from this
 *   machine get the whole release and the next boot finds it.
 *
 * @module
 */
import { PART_NAMES } from "./_files.ts";
import { SEED_ROOT } from "./launcher.ts";

/** Port the target's provider listens on (the provider's default). */
export const SELFHOST_PORT = 8080;
/**
 * Where the verified rootfs is mounted: the launchers' root, in place of
 * the seed partition (its launchers and the inits' library links point there).
 */
export const SELFHOST_ROOT = SEED_ROOT;
/** Console line prefix of the block (tests grep it). */
export const SELFHOST_LOG = "phase-target: self-host:";
/** Printed once the provider runs: `... serving <url>`. */
export const SELFHOST_SERVING = `${SELFHOST_LOG} serving`;
/** Printed when the rootfs in the cache does not hash to its signed digest. */
export const SELFHOST_ROOTFS_REFUSED = `${SELFHOST_LOG} REFUSED the rootfs`;
/** Printed by a private boot (nothing served, nothing advertised). */
export const SELFHOST_PRIVATE =
  `${SELFHOST_LOG} private mode: serving nothing, advertising nothing`;
/** Kernel command-line word naming the rootfs artifact (sha256 hex; signed with the manifest). */
export const ROOTFS_CMDLINE_WORD = "phase.rootfs";
/** Kernel command-line word with the rootfs's size in bytes (signed with the manifest). */
export const ROOTFS_BYTES_CMDLINE_WORD = "phase.rootfs_bytes";
/** Printed when the rootfs was read from the seed partition, not the cache. */
export const SELFHOST_FROM_SEED = `${SELFHOST_LOG} rootfs read from the seed partition`;

/** The `phase.rootfs=` (and `phase.rootfs_bytes=`) words the build puts into the signed command line. */
export function rootfsCmdline(sha256hex: string, bytes?: number): string {
  return `${ROOTFS_CMDLINE_WORD}=${sha256hex}${
    bytes === undefined ? "" : ` ${ROOTFS_BYTES_CMDLINE_WORD}=${bytes}`
  }`;
}

/**
 * Shell text (busybox sh) defining and running `phase_selfhost`; expects
 * `$mode`, `findpart` and `$seed` (the seed partition's device as the
 * target init opened it, dm-verity under Secure Boot; empty when refused)
 * from the target init. Runs after the marker, so
 * it adds nothing to the time to the marker; the provider runs in the
 * background and logs to the console.
 */
export function selfHostBlock(): string {
  const L = SELFHOST_LOG;
  return `# ---- self-hosting (issue 12 §1): re-serve the verified cache to the LAN ----
phase_selfhost() {
  if [ "$mode" = private ]; then
    # TM-13: a private boot has no cache and must not announce itself.
    echo "${SELFHOST_PRIVATE}"
    return 0
  fi
  want=$(sed -n 's/.*${
    ROOTFS_CMDLINE_WORD.replace(".", "\\.")
  }=\\([0-9a-f]\\{64\\}\\).*/\\1/p' /proc/cmdline)
  [ -n "$want" ] || { echo "${L} the signed command line names no rootfs: not serving"; return 0; }
  cache=$(findpart ${PART_NAMES.cache}) || { echo "${L} no ${PART_NAMES.cache} partition: not serving"; return 0; }
  mkdir -p /var/cache/phase /run/phase/provider
  # Read-only: the target never changes what the seed verified and stored
  # (it only adds a rootfs it read from the seed partition and verified).
  mount -t ext4 -o ro,nosuid,nodev,noexec "$cache" /var/cache/phase \\
    || { echo "${L} cannot mount $cache read-only: not serving"; return 0; }
  src=/var/cache/phase/cas/sha256/$want
  size=$(sed -n 's/.*${
    ROOTFS_BYTES_CMDLINE_WORD.replace(".", "\\.")
  }=\\([0-9]\\{1,12\\}\\).*/\\1/p' /proc/cmdline)
  # TM-01: copy, then hash the copy: the bytes mounted are the bytes checked.
  if [ -f "$src" ]; then
    from=cache
    cp "$src" /run/phase/rootfs.img || { echo "${L} cannot copy the rootfs: not serving"; return 0; }
  elif [ -n "$seed" ] && [ -n "$size" ]; then
    # Issue 17: the seed did not download what its own partition holds.
    from="seed partition"
    head -c "$size" "$seed" > /run/phase/rootfs.img || { echo "${L} cannot read the rootfs from $seed: not serving"; return 0; }
  else
    echo "${L} rootfs $want is not in the cache: not serving"; return 0
  fi
  got=$(sha256sum /run/phase/rootfs.img | cut -d' ' -f1)
  if [ "$got" != "$want" ]; then
    rm -f /run/phase/rootfs.img
    echo "${SELFHOST_ROOTFS_REFUSED}: the copy from the $from hashes to $got, the signed command line says $want: not serving"
    return 1
  fi
  if [ "$from" != cache ]; then
    echo "${SELFHOST_FROM_SEED} ($size bytes) and verified"
    # Only the verified copy, under its digest: peers booting from here get
    # the whole release, and the next boot finds it in the cache.
    if mount -o remount,rw /var/cache/phase; then
      cp /run/phase/rootfs.img "/var/cache/phase/cas/sha256/.$want.tmp" \\
        && chmod 600 "/var/cache/phase/cas/sha256/.$want.tmp" \\
        && mv "/var/cache/phase/cas/sha256/.$want.tmp" "$src" \\
        || { rm -f "/var/cache/phase/cas/sha256/.$want.tmp"; echo "${L} cannot add the rootfs to the cache: peers get it elsewhere"; }
      sync
      mount -o remount,ro /var/cache/phase
    fi
  fi
  # The launchers' root: the seed partition the hello job ran from makes way.
  umount ${SELFHOST_ROOT} 2>/dev/null
  mount -t squashfs -o ro,loop /run/phase/rootfs.img ${SELFHOST_ROOT} \\
    || { echo "${L} cannot mount the verified rootfs: not serving"; return 1; }
  echo "${L} rootfs sha256:$want verified and mounted"
  ip link set lo up
  lease=""
  for i in $(ls /sys/class/net); do
    [ "$i" = lo ] && continue
    if udhcpc -i "$i" -f -q -n -t 5 -T 2 -s /usr/share/udhcpc/default.script >/dev/null 2>&1; then lease=$i; break; fi
  done
  addr=$(sed -n 's/.* ip=\\([0-9.]*\\)\\/.*/\\1/p' /run/phase/net.lease 2>/dev/null)
  [ -n "$lease" ] && [ -n "$addr" ] || { echo "${L} no DHCP lease: not serving"; return 1; }
  dht="--no-dht"
  for b in $(tr ' ' '\\n' < /proc/cmdline | sed -n 's/^phase\\.bootstrap=//p' | tr ',' ' '); do dht="$dht --bootstrap $b"; done
  case "$dht" in *--bootstrap*) dht=\${dht#--no-dht } ;; esac
  echo "${L} starting phase-serve --from-cache on $addr:${SELFHOST_PORT} (mDNS on; DHT $([ "$dht" = --no-dht ] && echo off || echo on))"
  # No snapshot copies (RAM): the cache is mounted read-only and the
  # provider re-checks each chunk it streams (TM-19).
  ${SELFHOST_ROOT}/bin/phase-serve --from-cache /var/cache/phase --trust /etc/phase/trust.json \\
    --state /run/phase/provider --host "$addr" --port ${SELFHOST_PORT} --no-snapshot $dht \\
    > /dev/console 2>&1 &
  echo "${SELFHOST_SERVING} http://$addr:${SELFHOST_PORT}/ (pid $!)"
}
phase_selfhost
# ---- end of self-hosting ----
`;
}
