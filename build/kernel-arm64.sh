#!/usr/bin/env bash
# The xenstore domain's kernel for arm64 (make kernel-arm64), for Xen's
# dom0less boot: Debian's linux-source-6.1 with kernel/patches applied (the
# same patched tree build/kernel.sh makes and keeps), `make ARCH=arm64
# tinyconfig` + kernel/stubdom-arm64.config, olddefconfig, every fragment
# line checked, then the arm64 Image cross-built with gcc-aarch64-linux-gnu.
# Cached outside the tree in $XSSTUB_CACHE/linux-6.1/kernel-arm64-KEY/
# (KEY: the fragment, the patches, this script, the package and compiler
# versions); prints the Image's path on its last line. Progress on stderr;
# a failed build prints the last 40 lines of its log.
#
# Environment: XSSTUB_CACHE, JOBS (default nproc), KERNEL_FORCE=1.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
FRAGMENT=$ROOT/kernel/stubdom-arm64.config
PATCHES=("$ROOT"/kernel/patches/*.patch)
PKG=linux-source-6.1
KCACHE=${XSSTUB_CACHE:-/var/cache/xsstub}/linux-6.1
JOBS=${JOBS:-$(nproc)}
MK=(ARCH=arm64 CROSS_COMPILE=aarch64-linux-gnu-)
T0=$SECONDS
say() { printf '== kernel-arm64 [%ss]: %s\n' "$((SECONDS - T0))" "$*" >&2; }
die() { printf '== kernel-arm64 [%ss]: FAIL: %s\n' "$((SECONDS - T0))" "$*" >&2; exit 1; }

command -v aarch64-linux-gnu-gcc >/dev/null || die "no aarch64-linux-gnu-gcc (build/test-deps.sh installs gcc-aarch64-linux-gnu)"
# The patched source tree is build/kernel.sh's (it unpacks and patches).
PHASH=$(cat "${PATCHES[@]}" | sha256sum | cut -c1-12)
SRC=$KCACHE/src-$PHASH
if [ ! -f "$SRC/.xsstub-patched" ]; then
	say "no patched source tree $SRC: running build/kernel.sh to make it (and the x86 kernel)"
	bash "$ROOT/build/kernel.sh" >&2
fi
[ -f "$SRC/.xsstub-patched" ] || die "no patched source tree $SRC"
VERSION=$(cat "$KCACHE/src.version")
KEY=$({
	cat "$FRAGMENT" "${PATCHES[@]}" "$0" "$ROOT/build/kernel-config.sh"
	echo "$VERSION"
	aarch64-linux-gnu-gcc --version | head -1
} | sha256sum | cut -c1-16)
DONE=$KCACHE/kernel-arm64-$KEY
if [ -z "${KERNEL_FORCE:-}" ] && [ -s "$DONE/Image" ]; then
	say "cached: $DONE/Image"
	echo "$DONE/Image"
	exit 0
fi
OBJ=$KCACHE/build-arm64-$PHASH
say "configuring (tinyconfig + $(basename "$FRAGMENT")) in $OBJ"
. "$ROOT/build/kernel-config.sh"
kconfig_make "$SRC" "$OBJ" "$FRAGMENT" "${MK[@]}"
say "config verified ($(grep -c '=y$' "$OBJ/.config") options =y); building Image with -j$JOBS (log $OBJ/build.log)"
TB=$SECONDS
make -C "$SRC" O="$OBJ" "${MK[@]}" -j"$JOBS" Image >"$OBJ/build.log" 2>&1 || {
	echo "----- last 40 lines of $OBJ/build.log -----" >&2
	tail -40 "$OBJ/build.log" >&2
	die "kernel build failed"
}
say "built in $((SECONDS - TB)) s"
rm -rf "$DONE.tmp" && mkdir -p "$DONE.tmp"
cp "$OBJ/arch/arm64/boot/Image" "$OBJ/.config" "$DONE.tmp/"
rm -rf "$DONE" && mv "$DONE.tmp" "$DONE"
ls -dt "$KCACHE"/kernel-arm64-* 2>/dev/null | tail -n +4 | xargs -r rm -rf
say "Image $(stat -c %s "$DONE/Image") bytes: $DONE/Image"
echo "$DONE/Image"
