#!/bin/sh
# Fills the arm64 sysroot and Deno that `deno task images --arch arm64` and
# the arm64 scenario of `deno task test:vm` use (rootless: apt-get download
# + dpkg-deb -x, npm pack). Needs `dpkg --add-architecture arm64 && apt-get update`
# once (root). Usage: images/fetch_arm64.sh [DIR]   (default ./.cache/arm64)
set -eu
DIR=${1:-./.cache/arm64}
DENO_VERSION=2.9.5 # latest @deno/linux-arm64-glibc published; the bundles are plain JS
mkdir -p "$DIR/debs" "$DIR/root" "$DIR/deno"
# The kernel the meta-package points at today (Debian replaces the ABI
# package on every kernel update; the meta-package name stays).
KPKG=$(apt-cache depends linux-image-cloud-arm64:arm64 2>/dev/null |
  sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*-cloud-arm64\).*/\1/p' | head -n 1)
if [ -z "$KPKG" ]; then
  echo "fetch_arm64.sh: error: apt has no linux-image-cloud-arm64:arm64" >&2
  echo "hint: dpkg --add-architecture arm64 && apt-get update" >&2
  exit 2
fi
cd "$DIR/debs"
apt-get download "$KPKG:arm64" busybox-static:arm64 kexec-tools:arm64 \
  systemd-boot-efi:arm64 grub-efi-arm64-bin:arm64 libc6:arm64 libgcc-s1:arm64 zlib1g:arm64 libxenmisc4.17:arm64 \
  libext2fs2:arm64 libfdt1:arm64 libuuid1:arm64 libxencall1:arm64 libxendevicemodel1:arm64 \
  libxenevtchn1:arm64 libxenforeignmemory1:arm64 libxengnttab1:arm64 libxenhypfs1:arm64 \
  libxenstore4:arm64 libxentoollog1:arm64 libyajl2:arm64 libxentoolcore1:arm64
for d in *.deb; do dpkg-deb -x "$d" ../root; done
cd ../deno
npm pack "@deno/linux-arm64-glibc@$DENO_VERSION" >/dev/null
tar -xzf "deno-linux-arm64-glibc-$DENO_VERSION.tgz"
echo "arm64 sysroot: $DIR/root  deno: $DIR/deno/package/deno"
