#!/usr/bin/env bash
# Build the stub domain's initramfs (make image):
#   /init           ./stubdom/xenstored: one Go program that boots the domain
#                   (package stubdom/boot) and goes on as xenstored, PID 1
#   /bin/xenstored  a symbolic link to /init
# with u-root's builder (a go.mod tool: `go tool u-root`) in its -nocmd mode,
# then gzip -9 -n. Output: images/xenstore-stubdom.cpio.gz. The builds use
# -trimpath and zeroed build ids and u-root zeroes timestamps, so the same
# sources give the same image.
#
# Environment:
#   XENSTORED_PKG  package to build as /init (default ./stubdom/xenstored)
#   XENSTORED_BIN  use this prebuilt binary instead of building XENSTORED_PKG
#   IMAGE_OUT      output file (default images/xenstore-stubdom.cpio.gz;
#                  images/arm64/xenstore-stubdom.cpio.gz for arm64)
#   IMAGE_ARCH     amd64 (default) or arm64: the xenstore domain Xen on Arm
#                  builds from the device tree (dom0less; make image-arm64)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
GO=${GO:-go}
XENSTORED_PKG=${XENSTORED_PKG:-./stubdom/xenstored}
ARCH=${IMAGE_ARCH:-amd64}
case $ARCH in
amd64) OUT=${IMAGE_OUT:-$ROOT/images/xenstore-stubdom.cpio.gz} ;;
arm64) OUT=${IMAGE_OUT:-$ROOT/images/arm64/xenstore-stubdom.cpio.gz} ;;
*)
	echo "== image: ERROR: IMAGE_ARCH=$ARCH: amd64 or arm64" >&2
	exit 1
	;;
esac
T0=$(date +%s%N)

say() { printf '== image: %s\n' "$*"; }
die() { printf '== image: ERROR: %s\n' "$*" >&2; exit 1; }

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

# Static, reproducible binaries: the initramfs has no libc.
gobuild() { # out pkg
	CGO_ENABLED=0 GOOS=linux GOARCH=$ARCH "$GO" build -trimpath -ldflags='-s -w -buildid=' -o "$1" "$2"
}
static() { # file (checked where binutils is installed): static, and for ARCH
	command -v readelf >/dev/null || return 0
	! readelf -l "$1" 2>/dev/null | grep -q 'Requesting program interpreter' || die "$1 is dynamically linked"
	local want=X86-64
	[ "$ARCH" = arm64 ] && want=AArch64
	readelf -h "$1" | grep -q "Machine:.*$want" || die "$1 is not an $ARCH program"
}

if [ -n "${XENSTORED_BIN:-}" ]; then
	say "using prebuilt xenstored $XENSTORED_BIN"
	[ -f "$XENSTORED_BIN" ] || die "XENSTORED_BIN=$XENSTORED_BIN: no such file"
	cp "$XENSTORED_BIN" "$WORK/xenstored"
else
	[ -d "$XENSTORED_PKG" ] || die "no package $XENSTORED_PKG (set XENSTORED_PKG, or XENSTORED_BIN to a prebuilt binary)"
	say "building /init from $XENSTORED_PKG for $ARCH"
	gobuild "$WORK/xenstored" "$XENSTORED_PKG"
fi
static "$WORK/xenstored"
ln -s /init "$WORK/xenstored-link"

say "assembling initramfs with go tool u-root"
if ! "$GO" tool u-root -nocmd -initcmd= -uinitcmd= -defaultsh= \
	-files "$WORK/xenstored:init" -files "$WORK/xenstored-link:bin/xenstored" \
	-o "$WORK/image.cpio" >"$WORK/u-root.log" 2>&1; then
	cat "$WORK/u-root.log" >&2
	die "u-root failed"
fi

# The kernel must find /init, xenstored.path's default /bin/xenstored; the Go
# runtime needs /dev/null before init mounts devtmpfs if the console is
# missing. (Checked where cpio is installed; build/imagecheck's test checks
# the same with u-root's cpio reader.)
entries=?
if command -v cpio >/dev/null; then
	list=$(cpio -it --quiet <"$WORK/image.cpio")
	for f in init bin/xenstored dev/console dev/null; do
		grep -qx "$f" <<<"$list" || die "image lacks /$f"
	done
	entries=$(wc -l <<<"$list")
fi

mkdir -p "$(dirname "$OUT")"
gzip -9 -n -c "$WORK/image.cpio" >"$OUT.tmp"
mv "$OUT.tmp" "$OUT"

size() { stat -c %s "$1"; }
say "/init (xenstored) $(size "$WORK/xenstored") bytes"
say "$(basename "$OUT"): $(size "$OUT") bytes gzipped, $(size "$WORK/image.cpio") bytes uncompressed, $entries entries"
ms=$((($(date +%s%N) - T0) / 1000000))
say "done in $((ms / 1000)).$(printf '%03d' $((ms % 1000)))s: $OUT"
