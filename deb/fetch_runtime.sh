#!/bin/sh
# Fetches the Deno runtime tarballs deb/runtime.ts pins (DENO_RUNTIME) into
# ./.cache/deb/npm with `npm pack`; `deno task deb` is offline and checks
# their sha512 integrity against the pins before using them.
set -eu
cd "$(dirname "$0")/.."
VERSION=2.9.6
DIR=./.cache/deb/npm
mkdir -p "$DIR"
for pkg in linux-x64-glibc linux-arm64-glibc; do
  if [ ! -s "$DIR/deno-$pkg-$VERSION.tgz" ]; then
    npm pack --silent --pack-destination "$DIR" "@deno/$pkg@$VERSION" >/dev/null
  fi
done
ls -l "$DIR"
