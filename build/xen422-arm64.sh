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
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SRCDIR=$(cd "$ROOT/.." && pwd)/shared/xen-src
TARBALL=${XEN_TARBALL:-$SRCDIR/xen-4.22.0.tar.xz}
C=${XSSTUB_CACHE:-/var/cache/xsstub}/xen-4.22-arm64
T0=$SECONDS
say() { printf '== xen-4.22-arm64 [%ss]: %s\n' "$((SECONDS - T0))" "$*" >&2; }
die() { printf '== xen-4.22-arm64 [%ss]: FAIL: %s\n' "$((SECONDS - T0))" "$*" >&2; exit 1; }

MAKEVARS=(XEN_TARGET_ARCH=arm64 CROSS_COMPILE=aarch64-linux-gnu-)
# Kconfig lines added to defconfig: no debug build (asserts and extra
# printks cost time under TCG; the default, pinned because the key holds it).
EXTRA_CONFIG=("CONFIG_DEBUG=n")
DEPS=(gcc-aarch64-linux-gnu binutils-aarch64-linux-gnu bison flex python3 make)

[ -f "$TARBALL" ] || die "no Xen source tarball at $TARBALL (set XEN_TARBALL)"
SUM=$(sha256sum "$TARBALL" | cut -d' ' -f1)
if [ -z "${XEN_TARBALL:-}" ]; then
	want=$(awk '$2 == "xen-4.22.0.tar.xz" {print $1}' "$SRCDIR/SHA256SUMS")
	[ "$SUM" = "$want" ] || die "$TARBALL: sha256 $SUM, SHA256SUMS says $want"
fi
KEY=$(printf '%s %s %s\n' "$SUM" "${MAKEVARS[*]}" "${EXTRA_CONFIG[*]}" | sha256sum | cut -c1-16)
mkdir -p "$C"
if [ "$(cat "$C/.key" 2>/dev/null)" = "$KEY" ] && [ -s "$C/xen" ]; then
	say "cached: $C/xen"
	echo "$C/xen"
	exit 0
fi

miss=()
for p in "${DEPS[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || miss+=("$p"); done
if ((${#miss[@]})); then
	say "installing ${miss[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get install -y -qq --no-install-recommends "${miss[@]}" >/dev/null 2>&1 || {
		apt-get update -qq && apt-get install -y -qq --no-install-recommends "${miss[@]}" >/dev/null
	}
fi

B=$C/build
rm -rf "$B" && mkdir -p "$B"
say "unpacking $(basename "$TARBALL") (sha256 ${SUM:0:16}…); building the hypervisor only"
tar -xJf "$TARBALL" -C "$B"
S=$B/xen-4.22.0/xen
step() {
	local name=$1 t=$SECONDS
	shift
	say "$name"
	(cd "$S" && "$@") >"$B/$name.log" 2>&1 || {
		echo "----- last 40 lines of $B/$name.log -----" >&2
		tail -40 "$B/$name.log" >&2
		die "step $name failed (log $B/$name.log)"
	}
	say "$name done in $((SECONDS - t)) s"
}
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
