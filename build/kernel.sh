#!/usr/bin/env bash
# Build the xenstore stub domain's Linux kernel (make kernel).
#
# Debian's linux-source-6.1 with kernel/patches/*.patch applied (in name
# order), `make tinyconfig` + kernel/stubdom.config, then
# `make olddefconfig`. Every line of the fragment is checked against the final
# .config. The result, a stripped vmlinux with Xen's PVH entry note, goes to
# images/xenstore-stubdom.kernel (and the bzImage to
# images/xenstore-stubdom.bzImage).
#
# Source, objects and finished kernels live in a cache outside the git tree
# (XSSTUB_CACHE, default /var/cache/xsstub) so fresh clones reuse them. A
# kernel is rebuilt only when the key changes: a hash of the fragment, the
# patches, this script, the source package's version and the compiler's
# version.
#
# Environment: XSSTUB_CACHE, JOBS (default nproc), KERNEL_FORCE=1 (ignore
# the finished-kernel cache), KERNEL_OUT (default images/xenstore-stubdom.kernel).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
FRAGMENT=$ROOT/kernel/stubdom.config
PATCHES=("$ROOT"/kernel/patches/*.patch)
PKG=linux-source-6.1
CACHE=${XSSTUB_CACHE:-/var/cache/xsstub}
KCACHE=$CACHE/linux-6.1
SRC=$KCACHE/$PKG
OUT=${KERNEL_OUT:-$ROOT/images/xenstore-stubdom.kernel}
BZOUT=$(dirname "$OUT")/xenstore-stubdom.bzImage
JOBS=${JOBS:-$(nproc)}
T0=$(date +%s)

say() { printf '== kernel: %s\n' "$*"; }
die() { printf '== kernel: ERROR: %s\n' "$*" >&2; exit 1; }

# --- 1. packages (installed only when missing)
need=()
dpkg-query -W -f='${Status}\n' "$PKG" 2>/dev/null | grep -q 'ok installed' || need+=("$PKG")
for p in build-essential bc bison flex libelf-dev libssl-dev cpio xz-utils binutils patch; do
	dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q 'ok installed' || need+=("$p")
done
if ((${#need[@]})); then
	say "installing ${need[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get install -y -q "${need[@]}" >/dev/null 2>&1 || {
		apt-get update -q >/dev/null
		apt-get install -y -q "${need[@]}" >/dev/null
	}
fi
VERSION=$(dpkg-query -W -f='${Version}' "$PKG")
TARBALL=/usr/src/$PKG.tar.xz
[ -f "$TARBALL" ] || die "$TARBALL missing (package $PKG $VERSION)"

# --- 2. source: unpacked pristine once per package version ($SRC, as older
# checkouts of this script expect it), then a patched tree per patch set:
# a hard-link copy whose patched files patch(1) replaces, never edits in
# place, so the pristine tree stays pristine. Objects live per patch set too.
mkdir -p "$KCACHE"
if [ "$(cat "$KCACHE/src.version" 2>/dev/null)" != "$VERSION" ] || [ ! -f "$SRC/Makefile" ]; then
	say "unpacking $PKG $VERSION into $SRC"
	rm -rf "$SRC" "$KCACHE/src.version" "$KCACHE"/src-* "$KCACHE"/build-*
	tar -xJf "$TARBALL" -C "$KCACHE"
	echo "$VERSION" >"$KCACHE/src.version"
fi
PHASH=$(cat "${PATCHES[@]}" | sha256sum | cut -c1-12)
PSRC=$KCACHE/src-$PHASH
OBJ=$KCACHE/build-$PHASH
if [ ! -f "$PSRC/.xsstub-patched" ]; then
	say "patched tree $PSRC"
	rm -rf "$PSRC" "$OBJ"
	cp -al "$SRC" "$PSRC"
	for p in "${PATCHES[@]}"; do
		say "applying $(basename "$p")"
		patch -p1 --forward --quiet -d "$PSRC" <"$p" || die "patch $p does not apply to $PKG $VERSION"
	done
	touch "$PSRC/.xsstub-patched"
fi
touch "$PSRC" "$KCACHE/src.version"
# Keep the two newest patched trees and their objects.
ls -dt "$KCACHE"/src-* 2>/dev/null | tail -n +3 | while read -r d; do rm -rf "$d" "$KCACHE/build-${d##*/src-}"; done
SRC=$PSRC
KVER=$(make -s -C "$SRC" kernelversion)

# --- 3. cache key
KEY=$({
	cat "$FRAGMENT" "${PATCHES[@]}" "$0" "$ROOT/build/kernel-config.sh"
	echo "$VERSION"
	gcc --version | head -1
} | sha256sum | cut -c1-16)
DONE=$KCACHE/kernel-$KEY
mkdir -p "$(dirname "$OUT")"
if [ -z "${KERNEL_FORCE:-}" ] && [ -f "$DONE/vmlinux" ]; then
	say "up to date (key $KEY, Linux $KVER, $PKG $VERSION): $DONE"
	cp "$DONE/vmlinux" "$OUT"
	[ -f "$DONE/bzImage" ] && cp "$DONE/bzImage" "$BZOUT"
	ls -l "$OUT"
	exit 0
fi

# --- 4. configure: tinyconfig + fragment + olddefconfig, then verify
say "configuring Linux $KVER ($PKG $VERSION) in $OBJ, key $KEY"
. "$ROOT/build/kernel-config.sh"
kconfig_make "$SRC" "$OBJ" "$FRAGMENT"
say "config verified: $(grep -cE '^(CONFIG_|# CONFIG_)' "$FRAGMENT") fragment lines, $(grep -c '=y$' "$OBJ/.config") options =y"

# --- 5. build
say "building vmlinux bzImage with -j$JOBS (log: $OBJ/build.log)"
TB=$(date +%s)
if ! make -C "$SRC" O="$OBJ" -j"$JOBS" vmlinux bzImage >"$OBJ/build.log" 2>&1; then
	tail -40 "$OBJ/build.log" >&2
	die "kernel build failed (full log: $OBJ/build.log)"
fi
BUILD_S=$(($(date +%s) - TB))

# --- 6. check the Xen PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY = 18 = 0x12)
if ! readelf -W -n "$OBJ/vmlinux" | grep -E '^[[:space:]]*Xen[[:space:]]' | grep -qiE '0x00000012|PHYS32_ENTRY'; then
	readelf -W -n "$OBJ/vmlinux" >&2 || true
	die "vmlinux has no Xen PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY)"
fi
say "Xen PVH entry note present"

# --- 7. store in the cache and copy out
rm -rf "$DONE.tmp"
mkdir -p "$DONE.tmp"
strip -o "$DONE.tmp/vmlinux" "$OBJ/vmlinux"
cp "$OBJ/arch/x86/boot/bzImage" "$DONE.tmp/bzImage"
cp "$OBJ/.config" "$DONE.tmp/config"
rm -rf "$DONE"
mv "$DONE.tmp" "$DONE"
# Keep the three newest finished kernels (x86's: kernel-KEY, not kernel-arm64-KEY).
ls -dt "$KCACHE"/kernel-???????????????? 2>/dev/null | tail -n +4 | xargs -r rm -rf
cp "$DONE/vmlinux" "$OUT"
cp "$DONE/bzImage" "$BZOUT"

size() { stat -c %s "$1"; }
say "build time ${BUILD_S}s (total $(($(date +%s) - T0))s)"
say "vmlinux (unstripped) $(size "$OBJ/vmlinux") bytes"
say "$(basename "$OUT") (stripped vmlinux) $(size "$OUT") bytes, gzip -9 $(gzip -9 -c "$OUT" | wc -c) bytes"
say "$(basename "$BZOUT") $(size "$BZOUT") bytes"
