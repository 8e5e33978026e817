/**
 * The package's metadata and maintainer scripts: DEBIAN/control, conffiles,
 * postinst, prerm, postrm, and /usr/share/doc/phase. Text only; the build
 * writes them. Private to deb/.
 *
 * @module
 */
import type { DebArch } from "./runtime.ts";

/** Debian package name. */
export const PACKAGE = "phase";
/** The provider's unit. */
export const PROVIDER_UNIT = "phase-provider.service";
/** The job node's unit. */
export const NODE_UNIT = "phase-node.service";
/** Every unit the package ships (prerm stops each, postrm purge forgets each). */
export const UNITS = [PROVIDER_UNIT, NODE_UNIT] as const;
/** The provider's system user (and group). */
export const SERVICE_USER = "phase";
/** Maintainer field. */
export const MAINTAINER = "Phase developers <phase@lists.example.org>";

/** DEBIAN/control. */
export function controlFile(o: {
  version: string;
  arch: DebArch;
  installedSizeKiB: number;
}): string {
  return [
    `Package: ${PACKAGE}`,
    `Version: ${o.version}`,
    `Architecture: ${o.arch}`,
    `Maintainer: ${MAINTAINER}`,
    `Installed-Size: ${o.installedSizeKiB}`,
    // libc6/libgcc-s1: what the Deno runtime links; curl: the units' readiness checks.
    "Depends: libc6 (>= 2.27), libgcc-s1, systemd, curl, passwd",
    "Section: admin",
    "Priority: optional",
    "Homepage: https://phase.example.org/",
    "Description: verified network boot: provider service and tools",
    " Phase signs, serves, fetches and verifies boot releases (kernel, initramfs,",
    " command line) described by signed manifests. This package installs the",
    " provider as a hardened systemd service (phase-provider.service, serving",
    " /srv/phase), the Plasm job node as another (phase-node.service, closed",
    " until submitters are allowed) and one command per permission set",
    " (phase-verify, phase-sign, phase-fetch, ...), each running the bundled",
    " program under the Deno runtime it carries with exactly the permissions",
    " of its set.",
    "",
  ].join("\n");
}

/** DEBIAN/conffiles. */
export const CONFFILES = ["/etc/phase/node.env", "/etc/phase/provider.env"] as const;

/** DEBIAN/postinst: the system user, /srv/phase, unit reload. */
export function postinst(): string {
  return `#!/bin/sh
set -e
if [ "$1" = "configure" ]; then
  # The provider's user, from the package's sysusers.d file.
  systemd-sysusers ${PACKAGE}.conf
  # The provider serves releases an administrator puts here.
  if [ ! -d /srv/phase ]; then
    mkdir -p /srv/phase
    chmod 0755 /srv/phase
  fi
fi
if [ -d /run/systemd/system ]; then
  systemctl --system daemon-reload >/dev/null || true
fi
exit 0
`;
}

/** DEBIAN/prerm: stop the services before their files go. */
export function prerm(): string {
  return `#!/bin/sh
set -e
if [ -d /run/systemd/system ] && [ "$1" = "remove" ]; then
  deb-systemd-invoke stop ${UNITS.map((u) => `'${u}'`).join(" ")} >/dev/null || true
fi
exit 0
`;
}

/**
 * DEBIAN/postrm: on purge, the state (the provider's /var/lib/phase and the
 * node's /var/lib/phase/node below it), the runtime directory and the user.
 */
export function postrm(): string {
  return `#!/bin/sh
set -e
if [ -d /run/systemd/system ]; then
  systemctl --system daemon-reload >/dev/null || true
fi
if [ "$1" = "purge" ]; then
  if command -v deb-systemd-helper >/dev/null 2>&1; then
    deb-systemd-helper purge ${UNITS.map((u) => `'${u}'`).join(" ")} >/dev/null || true
  fi
  rm -rf /var/lib/phase /var/lib/private/phase /var/cache/phase /run/phase
  if getent passwd ${SERVICE_USER} >/dev/null; then
    userdel ${SERVICE_USER} >/dev/null 2>&1 || true
  fi
  if getent group ${SERVICE_USER} >/dev/null; then
    groupdel ${SERVICE_USER} >/dev/null 2>&1 || true
  fi
  # Releases an administrator placed stay; the empty directory goes.
  rmdir --ignore-fail-on-non-empty /srv/phase 2>/dev/null || true
fi
exit 0
`;
}

/** /usr/share/doc/phase/copyright (machine-readable format 1.0). */
export function copyrightFile(year: number): string {
  return `Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: phase
Source: https://phase.example.org/

Files: *
Copyright: ${year} Phase developers
License: MIT

Files: usr/lib/phase/deno
Copyright: 2018-${year} the Deno authors
License: MIT

License: MIT
 Permission is hereby granted, free of charge, to any person obtaining a
 copy of this software and associated documentation files (the "Software"),
 to deal in the Software without restriction, including without limitation
 the rights to use, copy, modify, merge, publish, distribute, sublicense,
 and/or sell copies of the Software, and to permit persons to whom the
 Software is furnished to do so, subject to the following conditions:
 .
 The above copyright notice and this permission notice shall be included
 in all copies or substantial portions of the Software.
 .
 THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS
 OR IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF
 MERCHANTABILITY, FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT.
 IN NO EVENT SHALL THE AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY
 CLAIM, DAMAGES OR OTHER LIABILITY, WHETHER IN AN ACTION OF CONTRACT,
 TORT OR OTHERWISE, ARISING FROM, OUT OF OR IN CONNECTION WITH THE
 SOFTWARE OR THE USE OR OTHER DEALINGS IN THE SOFTWARE.
`;
}

/** /usr/share/doc/phase/changelog (gzipped by the build; a native package's name). */
export function changelogDebian(version: string, epoch: number): string {
  return `${PACKAGE} (${version}) unstable; urgency=medium

  * Built from the Phase repository with deno task deb.

 -- ${MAINTAINER}  ${rfc2822(epoch)}
`;
}

/** RFC 2822 date of a Unix time, in UTC (Debian changelog trailer). */
export function rfc2822(epoch: number): string {
  const d = new Date(epoch * 1000);
  const days = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
  const months = [
    "Jan",
    "Feb",
    "Mar",
    "Apr",
    "May",
    "Jun",
    "Jul",
    "Aug",
    "Sep",
    "Oct",
    "Nov",
    "Dec",
  ];
  const p = (n: number) => String(n).padStart(2, "0");
  return `${days[d.getUTCDay()]}, ${p(d.getUTCDate())} ${
    months[d.getUTCMonth()]
  } ${d.getUTCFullYear()} ${p(d.getUTCHours())}:${p(d.getUTCMinutes())}:${
    p(d.getUTCSeconds())
  } +0000`;
}

/**
 * /usr/share/man/man1/<name>.1: a short page that names the permission set
 * and points at `--help`, which each command renders from its HelpSpec.
 */
export function manPage(name: string, set: string, version: string): string {
  return `.TH ${name.toUpperCase()} 1 "" "phase ${version}" "Phase"
.SH NAME
${name.replaceAll("-", "\\-")} \\- Phase command (permission set ${set})
.SH SYNOPSIS
.B ${name}
[\\fIOPTIONS\\fR]
.SH DESCRIPTION
Runs the bundled Phase program under /usr/lib/phase/deno with exactly the
permissions of the set
.B ${set}
of the Phase permission table; it refuses to start holding more.
.B ${name} \\-\\-help
prints its flags, examples and exit statuses.
.SH SEE ALSO
/usr/share/doc/phase/packaging.md
`;
}

/** /usr/share/lintian/overrides/phase: the runtime binary is upstream's, not rebuilt (packaging.md). */
export const LINTIAN_OVERRIDES =
  `# Deno's upstream release binary, pinned by version and sha512 (deb/runtime.ts),
# is shipped as published, not rebuilt: it links lcms2 statically and is
# linked without RELRO. docs/packaging.md says why.
phase: embedded-library lcms2 [usr/lib/phase/deno]
phase: hardening-no-relro [usr/lib/phase/deno]
`;
