/**
 * Text files placed in the images: the seed's /init, the udhcpc hook,
 * `phase-diag`, the target's /init, systemd-boot loader entries.
 * Private to images/.
 *
 * @module
 */
import { SEED_VERITY_WORDS } from "../kexec/mod.ts";
import { SEED_VERITY_KEYS } from "../client/mod.ts";
import { SEED_ROOT } from "./launcher.ts";
import { RUNTIME_LINKS, SEED_RUNTIME } from "./_inputs.ts";
import { selfHostBlock } from "./_selfhost.ts";
import { VERITY_BLOCK_BYTES } from "./_secureboot.ts";

/** Console line the target's init prints once it runs (tests grep it). */
export const TARGET_MARKER = "PHASE-TARGET-OK";
/** Console line the seed prints when it gives up and opens a shell. */
export const SEED_SHELL_MARKER = "phase-seed: boot failed";
/** Console line the seed prints when dm-verity refuses the seed partition (tests grep it). */
export const VERITY_REFUSED_MARKER = "phase-seed: dm-verity: the seed partition does not match";
/** Name of the device-mapper device of the verity seed (/dev/mapper/NAME). */
export const VERITY_DM_NAME = "phase-seed-verified";
/** Console line prefix of the target when it refuses the seed partition (tests grep it). */
export const TARGET_SEED_REFUSED = "phase-target: REFUSED the seed partition";
/** Console line of the target once dm-verity has verified the seed partition. */
export const TARGET_SEED_VERIFIED = "phase-target: dm-verity: seed partition verified";
/** Device-mapper name of the target's verity view of the seed partition. */
const TARGET_VERITY_DM_NAME = "phase-seed-target";
/** The SecureBoot variable (EFI global variable GUID) in efivarfs. */
export const SECURE_BOOT_EFIVAR = "SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c";
/** GPT partition names the seed looks for in /sys/class/block/ * /uevent. */
export const PART_NAMES = { esp: "phase-esp", seed: "phase-seed", cache: "phase-cache" } as const;

const FINDPART = `findpart() {
  for u in /sys/class/block/*/uevent; do
    if grep -qx "PARTNAME=$1" "$u"; then echo "/dev/$(sed -n 's/^DEVNAME=//p' "$u")"; return 0; fi
  done
  return 1
}`;

/**
 * Shell: `$(...)` printing the value of the command-line word `w`
 * (`phase.verity`) in `file`, made only of `digits` (a bracket set).
 */
function cmdlineWord(w: string, file = "/proc/cmdline", digits = "0-9a-f"): string {
  return `$(sed -n 's/.*${w.replace(".", "\\.")}=\\([${digits}]*\\).*/\\1/p' ${file})`;
}

/** Shell variables holding a dm-verity root hash, salt and data-block count. */
interface VerityVars {
  readonly hash: string;
  readonly salt: string;
  readonly blocks: string;
}

/**
 * Shell command: a read-only dm-verity view `name` of `dev`, whose hash tree
 * follows its data on the same partition (as `verityFormat` in
 * _secureboot.ts writes it). The seed and the target open the seed
 * partition with this one table (TM-14).
 */
function verityCreate(name: string, dev: string, v: VerityVars): string {
  const sectors = VERITY_BLOCK_BYTES / 512;
  return `DM_DISABLE_UDEV=1 dmsetup create --readonly ${name} --table "0 $((${v.blocks} * ${sectors})) verity 1 ${dev} ${dev} ${VERITY_BLOCK_BYTES} ${VERITY_BLOCK_BYTES} ${v.blocks} ${v.blocks} sha256 ${v.hash} ${v.salt}"`;
}

/**
 * Shell command: the node of `name`, then one full read of it, true only
 * when every block verified. dm-verity alone would fail only the first read
 * of a bad block, later, with something of the partition already running.
 */
function verityReadAll(name: string, errFile = "/dev/null"): string {
  return `{ DM_DISABLE_UDEV=1 dmsetup mknodes ${name} 2>/dev/null; dd if=/dev/mapper/${name} of=/dev/null bs=1M 2>${errFile}; }`;
}

/**
 * Shell lines of the Secure Boot seed's /init that open the seed partition
 * `$seed` (TM-14): a device-mapper verity table from the signed command line
 * (phase.verity=, phase.verity_salt=, phase.verity_blocks=), then one full
 * read so a mismatch stops the boot here (`fail`), with its message, before
 * anything on it runs; `$seed` is then the verity device. `cmdline` and
 * `errFile` are for tests.
 */
export function seedVerityLines(
  o: { readonly cmdline?: string; readonly errFile?: string } = {},
): string {
  const cmdline = o.cmdline ?? "/proc/cmdline";
  const v = { hash: "$root_hash", salt: "$salt", blocks: "$blocks" };
  return `# Secure Boot image (TM-14): the seed partition opens only through dm-verity.
root_hash=${cmdlineWord(SEED_VERITY_KEYS.rootHash, cmdline)}
salt=${cmdlineWord(SEED_VERITY_KEYS.salt, cmdline)}
blocks=${cmdlineWord(SEED_VERITY_KEYS.blocks, cmdline, "0-9")}
[ -n "$root_hash" ] && [ -n "$salt" ] && [ -n "$blocks" ] || fail "${VERITY_REFUSED_MARKER}: no ${SEED_VERITY_KEYS.rootHash} root hash on the command line (this seed requires one)"
${verityCreate(VERITY_DM_NAME, "$seed", v)} \
  || fail "${VERITY_REFUSED_MARKER}: cannot set up dm-verity on $seed"
if ! ${verityReadAll(VERITY_DM_NAME, o.errFile ?? "/run/phase/verity.err")}; then
  dmsetup remove ${VERITY_DM_NAME} 2>/dev/null
  fail "${VERITY_REFUSED_MARKER} its signed root hash $root_hash: refusing to boot it (the medium was changed or is damaged)"
fi
echo "phase-seed: dm-verity: seed partition $seed verified (root hash $root_hash)"
seed=/dev/mapper/${VERITY_DM_NAME}`;
}

/**
 * Init lines that link Deno's libraries from the seed partition
 * ({@link RUNTIME_LINKS}, images/_inputs.ts `initramfsLibs`): dangling
 * until the partition is mounted, and only Deno, from that partition, loads them.
 */
const RUNTIME_LINK_LINES =
  `while read -r l; do mkdir -p "\${l%/*}"; ln -s "${SEED_RUNTIME}$l" "$l"; done < ${RUNTIME_LINKS}`;

/** The seed's /init (busybox sh); `secureBoot` opens the seed partition through dm-verity. */
export function seedInit(opts: { secureBoot?: boolean } = {}): string {
  return `#!/bin/busybox sh
# Phase seed init: mount, load modules, mount the seed squashfs, run phase-boot.
/bin/busybox mkdir -p /proc /sys /dev /run /tmp /usr/bin /usr/sbin /sbin /var/cache/phase /usr/lib/phase
/bin/busybox --install -s
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs /run
mkdir -p /dev/shm && mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /dev/shm
mkdir -p /run/phase /run/phase/home && chmod 700 /run/phase
ln -sf /run/phase/resolv.conf /etc/resolv.conf
${RUNTIME_LINK_LINES}
# Deno refuses scoped reads of /proc: the steps read this copy.
cat /proc/cmdline > /run/phase/cmdline
# Loopback: tor's SOCKS listener (private mode over Tor) binds 127.0.0.1.
ip link set lo up
echo "phase-seed: init at $(cut -d' ' -f1 /proc/uptime)s"
while read -r m; do insmod "/lib/modules/$m" 2>/dev/null; done < /etc/phase/modules.order
# Deno refuses scoped access under /sys: efivarfs is mounted (again) and
# the device tree copied under /run/phase for phase-kexec.
mkdir -p /run/phase/efivars && mount -t efivarfs efivarfs /run/phase/efivars 2>/dev/null
[ -r /sys/firmware/fdt ] && cat /sys/firmware/fdt > /run/phase/fdt
# Secure Boot and lockdown state, for the console and for phase-kexec
# (Deno refuses scoped reads of /sys: a copy under /run/phase).
mkdir -p /sys/kernel/security && mount -t securityfs securityfs /sys/kernel/security 2>/dev/null
lockdown=$(cat /sys/kernel/security/lockdown 2>/dev/null || echo "unknown")
echo "$lockdown" > /run/phase/lockdown
# efivarfs files cannot seek (od -j fails): 4 attribute bytes, then the value.
sb=$(cat /run/phase/efivars/${SECURE_BOOT_EFIVAR} 2>/dev/null | od -An -t u1 | awk '{print $5; exit}')
case "$sb" in 1) sb=enabled ;; 0) sb=disabled ;; *) sb="unknown (no SecureBoot variable)" ;; esac
echo "phase-seed: secure boot: $sb; lockdown: $lockdown"
${FINDPART}
mode=$(sed -n 's/.*phase\\.mode=\\([a-z]*\\).*/\\1/p' /proc/cmdline)
seed=""
i=0
while [ $i -lt 50 ]; do seed=$(findpart ${PART_NAMES.seed}) && break; sleep 0.2; i=$((i+1)); done
fail() {
  echo "$1" >> /run/phase/last-error
  echo "${SEED_SHELL_MARKER}: $1"
  echo "phase-seed: seed shell; run 'phase-diag' for addresses, routes, DNS, provider reachability and the last error"
  exec setsid cttyhack sh
}
[ -n "$seed" ] || fail "no partition named ${PART_NAMES.seed}"
${
    opts.secureBoot
      ? seedVerityLines() + `
[ "$sb" = enabled ] || echo "phase-seed: WARNING: this is a Secure Boot image but Secure Boot is $sb: nothing checked this seed before it ran"
`
      : ""
  }mount -t squashfs -o ro "$seed" /usr/lib/phase || fail "cannot mount the seed squashfs $seed"
if [ "$mode" != private ]; then
  cache=$(findpart ${PART_NAMES.cache}) && mount -t ext4 -o nosuid,nodev,noexec "$cache" /var/cache/phase
  # The ESP, for the chainload fallback (phase-kexec fallback writes the target there).
  mkdir -p /run/phase/esp
  if esp=$(findpart ${PART_NAMES.esp}) && mount -t vfat -o nosuid,nodev,noexec,umask=077 "$esp" /run/phase/esp; then
    echo "phase-seed: ESP $esp mounted for the chainload fallback"
  else
    echo "phase-seed: ESP not mounted: the chainload fallback is unavailable"
  fi
else
  # Private mode: the cache partition is never mounted; everything lives on tmpfs.
  echo "phase-seed: private mode: cache partition not mounted, state on tmpfs only"
fi
ls /sys/class/net > /run/phase/interfaces
echo "phase-seed: seed ready at $(cut -d' ' -f1 /proc/uptime)s (mode \${mode:-internet})"
/usr/lib/phase/bin/phase-boot
rc=$?
fail "phase-boot exited with status $rc: $(tail -n 1 /run/phase/last-error 2>/dev/null)"
`;
}

/** busybox udhcpc hook: configures the interface and writes the lease. */
export function udhcpcScript(): string {
  return `#!/bin/sh
# udhcpc hook (Phase seed): configure $interface from the lease.
case "$1" in
  deconfig)
    ip addr flush dev "$interface"
    ip link set "$interface" up
    ;;
  bound|renew)
    ip addr flush dev "$interface"
    ip addr add "$ip/\${mask:-24}" dev "$interface"
    for r in $router; do ip route add default via "$r" dev "$interface"; break; done
    : > /run/phase/resolv.conf
    for d in $dns; do echo "nameserver $d" >> /run/phase/resolv.conf; done
    echo "interface=$interface ip=$ip/\${mask:-24} router=$router dns=$dns" > /run/phase/net.lease
    ;;
esac
exit 0
`;
}

/** `phase-diag`: what a person at the console needs after a failure. */
export function phaseDiag(): string {
  return `#!/bin/sh
# phase-diag: addresses, routes, DNS, provider reachability, last error.
echo "== kernel command line"; cat /proc/cmdline
echo "== addresses"; ip -o addr show
echo "== routes"; ip route show
echo "== DNS"; if [ -s /run/phase/resolv.conf ]; then cat /run/phase/resolv.conf; else echo "(no DNS server from DHCP)"; fi
echo "== DHCP lease"; cat /run/phase/net.lease 2>/dev/null || echo "(none)"
echo "== provider"
url=$(sed -n 's/.*phase\\.provider=\\([^ ]*\\).*/\\1/p' /proc/cmdline)
[ -z "$url" ] && url=$(cat /run/phase/provider 2>/dev/null)
if [ -n "$url" ]; then
  if timeout 5 wget -q -O /dev/null "$url"; then echo "$url: reachable"; else echo "$url: NOT reachable"; fi
else
  echo "(no provider URL known)"
fi
echo "== last error"; cat /run/phase/last-error 2>/dev/null || echo "(none)"
echo "== end of phase-diag"
`;
}

/** The target's /init: the post-boot WASM job, then the marker. */
export function targetInit(version: string): string {
  return `#!/bin/busybox sh
# Phase target init (release ${version}).
/bin/busybox mkdir -p /proc /sys /dev /run /tmp /usr/bin /usr/sbin /sbin /usr/lib/phase
/bin/busybox --install -s
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /run
mkdir -p /run/phase/home /tmp/phase && chmod 700 /run/phase
${RUNTIME_LINK_LINES}
mode=$(sed -n 's/.*phase\\.mode=\\([a-z]*\\).*/\\1/p' /proc/cmdline)
echo "phase-target: init at $(cut -d' ' -f1 /proc/uptime)s"
while read -r m; do insmod "/lib/modules/$m" 2>/dev/null; done < /etc/phase/modules.order
${FINDPART}
# The post-boot WASM job runs with Deno from the seed partition when the
# machine has one (the USB image); a target without it still boots.
${targetSeedLines()}
if [ -x /usr/lib/phase/bin/phase-wasm ]; then
  # Private: an ephemeral node key, nothing written (the seed is read-only).
  /usr/lib/phase/bin/phase-wasm postboot --private || echo "phase-target: post-boot job failed"
else
  echo "phase-target: no post-boot job runner on this machine"
fi
via=$(sed -n 's/.*phase\\.boot=\\([a-z]*\\).*/\\1/p' /proc/cmdline)
echo "${TARGET_MARKER} version=${version} mode=\${mode:-unknown} via=\${via:-kexec}"
${selfHostBlock()}${targetNodeStart()}
exec setsid cttyhack sh
`;
}

/**
 * Shell lines of the target's /init that mount the seed partition (TM-14).
 * A Secure Boot seed opened it through dm-verity; after kexec the medium
 * is read again, and a medium that answers the second read differently
 * (a USB device's own firmware) would run unverified code here. So the
 * target opens it through dm-verity too, with the root hash phase-kexec
 * copied from the seed's signed command line (\`phase.seed_verity*\`),
 * reads it in full first and refuses it on a mismatch: the post-boot job
 * and the node then do not run. Under Secure Boot without those words it
 * refuses too. A seed without Secure Boot verified nothing itself, so its
 * target mounts the partition as it is.
 */
export function targetSeedLines(
  o: { readonly cmdline?: string; readonly efivars?: string } = {},
): string {
  const cmdline = o.cmdline ?? "/proc/cmdline";
  const efivars = o.efivars ?? "/run/phase/efivars";
  const v = { hash: "$v_hash", salt: "$v_salt", blocks: "$v_blocks" };
  return `mkdir -p ${efivars} && mount -t efivarfs efivarfs ${efivars} 2>/dev/null
sb=$(cat ${efivars}/${SECURE_BOOT_EFIVAR} 2>/dev/null | od -An -t u1 | awk '{print $5; exit}')
v_hash=${cmdlineWord(SEED_VERITY_WORDS.rootHash, cmdline)}
v_salt=${cmdlineWord(SEED_VERITY_WORDS.salt, cmdline)}
v_blocks=${cmdlineWord(SEED_VERITY_WORDS.blocks, cmdline, "0-9")}
if seed=$(findpart ${PART_NAMES.seed}); then
  if [ -n "$v_hash" ]; then
    if [ -n "$v_salt" ] && [ -n "$v_blocks" ] \\
      && ${verityCreate(TARGET_VERITY_DM_NAME, "$seed", v)} \\
      && ${verityReadAll(TARGET_VERITY_DM_NAME)}; then
      echo "${TARGET_SEED_VERIFIED} (root hash $v_hash)"
      seed=/dev/mapper/${TARGET_VERITY_DM_NAME}
    else
      dmsetup remove ${TARGET_VERITY_DM_NAME} 2>/dev/null
      echo "${TARGET_SEED_REFUSED}: it does not match the seed's signed dm-verity root hash $v_hash (the medium changed after the seed verified it?): no post-boot job, no node"
      seed=""
    fi
  elif [ "$sb" = 1 ]; then
    echo "${TARGET_SEED_REFUSED}: Secure Boot is on and the command line names no seed dm-verity root hash (${SEED_VERITY_WORDS.rootHash}=): no post-boot job, no node"
    seed=""
  fi
  [ -n "$seed" ] && mount -t squashfs -o ro "$seed" /usr/lib/phase
fi`;
}

/** TCP port the target's Plasm node listens on, on its LAN address. */
export const TARGET_NODE_PORT = 4001;
/**
 * The node's part of the seed policy (`node_accept_jobs`,
 * `unsafe_node_open`) as a node config, on the seed partition at this path:
 * the target never sees the seed's initramfs, where policy.toml lives.
 */
export const TARGET_NODE_CONFIG = "etc/node.json";
/** Console line prefix of the target's node start (tests grep it). */
export const TARGET_NODE_PREFIX = "phase-target: node:";
/** Bound of the target's DHCP request, in seconds (busybox udhcpc: tries x timeout). */
const TARGET_DHCP_TRIES = 5;
const TARGET_DHCP_TIMEOUT_S = 3;

/**
 * Shell lines of the target's /init, run after the marker: the Plasm node
 * (issue 13 §6), started only when the seed partition carries a node config
 * (the build writes one only when the policy sets `node_accept_jobs` or
 * `unsafe_node_open`: no listener otherwise, TM-22) and never in private
 * mode (a node announces itself on the LAN, TM-13). It brings the network up
 * if nothing did, keeps its state on a tmpfs (a fresh node key each boot:
 * the cache partition is not covered by any signature or verity, TM-21) and
 * runs in the background; its stdout (peer id, listening multiaddr) goes to
 * the console.
 */
export function targetNodeStart(): string {
  const config = `${SEED_ROOT}/${TARGET_NODE_CONFIG}`;
  return `# --- Plasm node (issue 13 §6): separate block, see targetNodeStart() ---
if [ "$mode" = private ]; then
  echo "${TARGET_NODE_PREFIX} not started (private mode)"
elif [ ! -r ${config} ] || [ ! -x ${SEED_ROOT}/bin/phase-node ]; then
  echo "${TARGET_NODE_PREFIX} not started (the policy sets no node_accept_jobs and no unsafe_node_open)"
else
  ip link set lo up
  if ! ip -o -4 addr show scope global | grep -q inet; then
    mkdir -p /run/phase/udhcpc
    cat > /run/phase/udhcpc/default.script <<'PHASE_UDHCPC_EOF'
${udhcpcScript().trimEnd()}
PHASE_UDHCPC_EOF
    chmod 755 /run/phase/udhcpc/default.script
    for i in $(ls /sys/class/net); do
      [ "$i" = lo ] && continue
      udhcpc -i "$i" -n -q -t ${TARGET_DHCP_TRIES} -T ${TARGET_DHCP_TIMEOUT_S} -s /run/phase/udhcpc/default.script >/dev/null 2>&1 && break
    done
  fi
  addr=$(ip -o -4 addr show scope global | awk '{ split($4, a, "/"); print a[1]; exit }')
  if [ -z "$addr" ]; then
    echo "${TARGET_NODE_PREFIX} not started (no network address)"
  else
    mkdir -p /etc/phase /var/lib/phase/node
    mount -t tmpfs -o mode=0700,nosuid,nodev,noexec,size=64m tmpfs /var/lib/phase/node
    cp ${config} /etc/phase/node.json
    if grep -q '"open": *true' /etc/phase/node.json; then
      echo "${TARGET_NODE_PREFIX} WARNING: unsafe_node_open: this node accepts jobs from ANY peer on the network (rate-limited per peer)"
    fi
    echo "${TARGET_NODE_PREFIX} starting on $addr:${TARGET_NODE_PORT}, state on tmpfs (a fresh node key each boot)"
    setsid ${SEED_ROOT}/bin/phase-node --state /var/lib/phase/node --config /etc/phase/node.json --listen /ip4/$addr/tcp/${TARGET_NODE_PORT} </dev/null &
  fi
fi
# --- end of the Plasm node block ---`;
}

/** systemd-boot loader.conf. Editor off: the command line is part of the image. */
export function loaderConf(defaultEntry: string): string {
  return `default ${defaultEntry}\ntimeout 0\neditor no\nconsole-mode keep\n`;
}

/** One systemd-boot entry. */
export function loaderEntry(title: string, options: string): string {
  return `title ${title}\nlinux /phase/linux\ninitrd /phase/initrd\noptions ${options}\n`;
}
