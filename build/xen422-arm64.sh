#!/usr/bin/env bash
# Xen 4.22.0's hypervisor for arm64, cross-built from the tarball in
# ../shared/xen-src (checked against its SHA256SUMS) with Debian 12's
# gcc-aarch64-linux-gnu, for the dom0less boot (no dom0, so no toolstack:
# the hypervisor alone). Into a cache outside the tree:
#   $XSSTUB_CACHE/xen-4.22-arm64/xen           the arm64 Image QEMU loads
#   $XSSTUB_CACHE/xen-4.22-arm64/config        the .config it was built with
#   $XSSTUB_CACHE/xen-4.22-arm64/.key          tarball checksum + options
# A rerun with the cache in place only checks. Prints the Image's path on
# its last line. Progress on stderr; a failed step prints its name and the
# last 40 lines of its log.
#
# The configuration is Xen's arm64 defconfig (DOM0LESS_BOOT is on by
# default in 4.22) with the options below on top.
#
# Environment: XSSTUB_CACHE (default /var/cache/xsstub), XEN_TARBALL
# (default ../shared/xen-src/xen-4.22.0.tar.xz beside the repository),
# JOBS (default nproc).
set -euo pipefail
. "$(dirname "$0")/xen-src.sh"
xen_src_init xen-4.22-arm64 "${XSSTUB_CACHE:-/var/cache/xsstub}/xen-4.22-arm64"

MAKEVARS=(XEN_TARGET_ARCH=arm64 CROSS_COMPILE=aarch64-linux-gnu-)
# Kconfig lines added to defconfig: no debug build (asserts and extra
# printks cost time under TCG; the default, pinned because the key holds it).
EXTRA_CONFIG=("CONFIG_DEBUG=n")
DEPS=(gcc-aarch64-linux-gnu binutils-aarch64-linux-gnu bison flex python3 make)

KEY=$(printf '%s %s %s\n' "$SUM" "${MAKEVARS[*]}" "${EXTRA_CONFIG[*]}" | sha256sum | cut -c1-16)
mkdir -p "$C"
if [ "$(cat "$C/.key" 2>/dev/null)" = "$KEY" ] && [ -s "$C/xen" ]; then
	say "cached: $C/xen"
	echo "$C/xen"
	exit 0
fi

xen_src_deps "${DEPS[@]}"
xen_src_unpack /xen "; building the hypervisor only"
JOBS=${JOBS:-$(nproc)}
step defconfig make "${MAKEVARS[@]}" defconfig
printf '%s\n' "${EXTRA_CONFIG[@]}" | sed 's/^\(CONFIG_[A-Z0-9_]*\)=n$/# \1 is not set/' >>"$S/.config"
step olddefconfig make "${MAKEVARS[@]}" olddefconfig
step build make -j"$JOBS" "${MAKEVARS[@]}"
[ -s "$S/xen" ] || die "the build made no xen Image"
grep -q '^CONFIG_DOM0LESS_BOOT=y' "$S/.config" || die "the configuration has no CONFIG_DOM0LESS_BOOT"
cp "$S/xen" "$C/xen.tmp" && mv "$C/xen.tmp" "$C/xen"
cp "$S/.config" "$C/config"
echo "$KEY" >"$C/.key"
rm -rf "$B"
say "built: $C/xen ($(du -h "$C/xen" | cut -f1))"
echo "$C/xen"
