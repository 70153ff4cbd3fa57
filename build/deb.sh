#!/usr/bin/env bash
# Build the binary package xsstub_VERSION_ARCH.deb (make deb, make
# deb-arm64) with dpkg-deb from what make build, make kernel and make image
# produced; see packaging/README.md for the layout and why there is no
# debian/ directory.
#
# Environment:
#   DEB_ARCH      amd64 (default) or arm64: the daemon, the wrapper and the
#                 dom0less xenstore domain's kernel and image, no launcher
#                 (Xen on Arm builds that domain from the device tree)
#   DEB_BIN       built programs (default bin/: xenstored, and on amd64
#                 xenstore-stubdom-launch)
#   DEB_IMAGES    stub kernel(s) and image (default images/, images/arm64/)
#   DEB_OUT       output directory (default dist/)
#   DEB_VERSION   package version (default: VERSION + git count and commit)
#   DEB_MAINTAINER  Maintainer field
#   DEB_COMPRESS  dpkg-deb -Z (default xz), DEB_COMPRESS_LEVEL -z (default 6; the tests: gzip, 1)
# Prints the path of the package on its last line.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
PKG=xsstub
ARCH=${DEB_ARCH:-amd64}
BIN=${DEB_BIN:-$ROOT/bin}
case $ARCH in
amd64) IMAGES=${DEB_IMAGES:-$ROOT/images} ;;
arm64) IMAGES=${DEB_IMAGES:-$ROOT/images/arm64} ;;
*)
	echo "== deb: ERROR: DEB_ARCH=$ARCH: amd64 or arm64" >&2
	exit 1
	;;
esac
OUT=${DEB_OUT:-$ROOT/dist}
MAINTAINER=${DEB_MAINTAINER:-xsstub developers <xsstub@example.org>}
COMPRESS=${DEB_COMPRESS:-xz}
LEVEL=${DEB_COMPRESS_LEVEL:-6}
P=$ROOT/packaging

say() { printf '== deb: %s\n' "$*" >&2; }
die() { printf '== deb: ERROR: %s\n' "$*" >&2; exit 1; }

for t in dpkg-deb dpkg-shlibdeps dpkg-divert; do
	command -v $t >/dev/null || die "$t missing (apt-get install dpkg-dev; build/test-deps.sh)"
done
# What goes in besides the daemon and the scripts, per architecture.
if [ "$ARCH" = amd64 ]; then
	NEED=("$BIN/xenstored" "$BIN/xenstore-stubdom-launch" "$IMAGES/xenstore-stubdom.kernel"
		"$IMAGES/xenstore-stubdom-pv.kernel" "$IMAGES/xenstore-stubdom.cpio.gz")
	HOW="make build kernel image"
	ELF=X86-64
else
	NEED=("$BIN/xenstored" "$IMAGES/xenstore-stubdom.kernel" "$IMAGES/xenstore-stubdom.cpio.gz")
	HOW="make deb-arm64: GOARCH=arm64 build, kernel-arm64, image-arm64"
	ELF=AArch64
fi
for f in "${NEED[@]}"; do
	[ -f "$f" ] || die "$f missing ($HOW)"
done
if command -v readelf >/dev/null; then
	readelf -h "$BIN/xenstored" | grep -q "Machine:.*$ELF" || die "$BIN/xenstored is not an $ARCH program"
fi

# --- version: VERSION, plus the commit count and hash in a git checkout
base=$(tr -d ' \n' <"$ROOT/VERSION")
if [ -n "${DEB_VERSION:-}" ]; then
	VERSION=$DEB_VERSION
elif git -C "$ROOT" rev-parse --git-dir >/dev/null 2>&1; then
	VERSION=$base+git$(git -C "$ROOT" rev-list --count HEAD).g$(git -C "$ROOT" rev-parse --short=7 HEAD)
	git -C "$ROOT" diff --quiet HEAD -- 2>/dev/null || VERSION=$VERSION.dirty
else
	VERSION=$base
fi
# Timestamps: the commit's (reproducible), else now.
EPOCH=${SOURCE_DATE_EPOCH:-$(git -C "$ROOT" log -1 --format=%ct 2>/dev/null || date +%s)}
export SOURCE_DATE_EPOCH=$EPOCH

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
D=$WORK/debian/$PKG # dpkg-shlibdeps wants the tree under debian/<package>
mkdir -p "$D/DEBIAN"

inst() { # mode src dst
	install -D -m "$1" "$2" "$D$3"
}
inst 755 "$BIN/xenstored" /usr/sbin/xsstub-xenstored
inst 755 "$P/xenstored-wrapper" /usr/libexec/xsstub/xenstored
inst 755 "$P/xsstub-switch" /usr/sbin/xsstub-switch
inst 644 "$IMAGES/xenstore-stubdom.kernel" /usr/lib/xsstub/xenstore-stubdom.kernel
inst 644 "$IMAGES/xenstore-stubdom.cpio.gz" /usr/lib/xsstub/xenstore-stubdom.cpio.gz
if [ "$ARCH" = amd64 ]; then
	inst 755 "$BIN/xenstore-stubdom-launch" /usr/sbin/xenstore-stubdom-launch
	inst 644 "$IMAGES/xenstore-stubdom-pv.kernel" /usr/lib/xsstub/xenstore-stubdom-pv.kernel
	inst 644 "$P/xsstub.default" /etc/default/xsstub
else # no launcher: the dom0 daemon is the default
	install -d "$D/etc/default"
	sed 's|^XSSTUB_MODE=stub$|# arm64: no stub launcher (Xen on Arm builds the xenstore domain from the\
# device tree: README.Debian), so the daemon runs in dom0 by default.\
XSSTUB_MODE=dom0|' "$P/xsstub.default" >"$D/etc/default/xsstub"
	grep -q '^XSSTUB_MODE=dom0$' "$D/etc/default/xsstub" || die "XSSTUB_MODE=dom0 not set in arm64's /etc/default/xsstub"
	chmod 644 "$D/etc/default/xsstub"
fi

# The diverted paths become links to the wrapper (relative: same /usr).
mapfile -t DIVERSIONS < <(grep '^/' "$P/diversions")
for f in "${DIVERSIONS[@]}"; do
	mkdir -p "$D$(dirname "$f")"
	ln -s "$(realpath -m --relative-to="$(dirname "$f")" /usr/libexec/xsstub/xenstored)" "$D$f"
done

# Documentation and manual pages.
DOC=/usr/share/doc/$PKG
inst 644 "$P/copyright" "$DOC/copyright"
if [ "$ARCH" = amd64 ]; then
	inst 644 "$P/lintian-overrides" /usr/share/lintian/overrides/$PKG # the ELF kernels
	inst 644 "$P/README.Debian" "$DOC/README.Debian"
	DOCS=(README.md launcher/README.md kernel/README.md stubdom/boot/README.md)
	KCONFIG=stubdom.config
	MANS=("$P"/man/*.[0-9])
else
	inst 644 "$P/README.Debian.arm64" "$DOC/README.Debian"
	DOCS=(README.md kernel/README.md stubdom/boot/README.md)
	KCONFIG=stubdom-arm64.config
	MANS=()
	for m in "$P"/man/*.[0-9]; do
		[ "$(basename "$m")" = xenstore-stubdom-launch.8 ] || MANS+=("$m")
	done
fi
for f in "${DOCS[@]}"; do
	name=$(basename "$f")
	[ "$f" = README.md ] || name=$(dirname "$f" | tr / -)-README.md
	install -D -m 644 "$ROOT/$f" "$D$DOC/$name"
done
[ "$ARCH" = amd64 ] && inst 644 "$ROOT/images/xencommons" "$DOC/examples/xencommons"
inst 644 "$ROOT/kernel/$KCONFIG" "$DOC/kernel-${KCONFIG%.config}.config"
gzip -9n "$D$DOC/kernel-${KCONFIG%.config}.config"
for f in "$D$DOC"/*.md; do gzip -9n "$f"; done
for m in "${MANS[@]}"; do
	sec=${m##*.}
	install -D -m 644 "$m" "$D/usr/share/man/man$sec/$(basename "$m")"
	gzip -9n "$D/usr/share/man/man$sec/$(basename "$m")"
done
# A native package's changelog: one entry for this build.
{
	printf '%s (%s) unstable; urgency=medium\n\n' "$PKG" "$VERSION"
	# The commit's hash only: its subject, cut short, made lintian's
	# spelling check fail on whatever word the cut left (seen: "lon").
	printf '  * Built from %s.\n' "$(git -C "$ROOT" log -1 --format='commit %h' 2>/dev/null || echo "a source tree")"
	printf '\n -- %s  %s\n' "$MAINTAINER" "$(date -R -u -d "@$EPOCH")"
} | gzip -9n >"$D$DOC/changelog.gz"
chmod 644 "$D$DOC/changelog.gz"

# --- control files
DIVLIST=${DIVERSIONS[*]}
for s in preinst postinst prerm postrm; do
	sed "s|@DIVERSIONS@|$DIVLIST|" "$P/$s" >"$D/DEBIAN/$s"
	chmod 755 "$D/DEBIAN/$s"
done
echo /etc/default/xsstub >"$D/DEBIAN/conffiles"

cat >"$WORK/debian/control" <<CTL
Source: $PKG

Package: $PKG
Architecture: $ARCH
CTL
EXES=(-e"debian/$PKG/usr/sbin/xsstub-xenstored")
[ "$ARCH" = amd64 ] && EXES+=(-e"debian/$PKG/usr/sbin/xenstore-stubdom-launch")
if [ "$ARCH" = "$(dpkg --print-architecture)" ]; then
	SHLIBS=$(cd "$WORK" && dpkg-shlibdeps -O "${EXES[@]}" 2>"$WORK/shlibdeps.err" | sed -n 's/^shlibs:Depends=//p') ||
		{ cat "$WORK/shlibdeps.err" >&2; die "dpkg-shlibdeps failed"; }
	grep -v 'is not dynamically linked\|no dependency information\|binaries to analyze' "$WORK/shlibdeps.err" >&2 || true
else
	# Cross-built: dpkg-shlibdeps needs the target's libc6 installed, which
	# this host does not have (its dpkg architectures stay its own). The
	# daemon needs libc.so.6 alone; Debian's libc6 symbols file gives each
	# symbol the release of its GLIBC_x.y version, so the newest version
	# the binary references is what dpkg-shlibdeps would require.
	readelf -d "$D/usr/sbin/xsstub-xenstored" | grep NEEDED | grep -qv 'libc\.so\.6' &&
		die "the $ARCH daemon needs more than libc.so.6: $(readelf -d "$D/usr/sbin/xsstub-xenstored" | grep NEEDED)"
	glibc=$(readelf -V --wide "$D/usr/sbin/xsstub-xenstored" | grep -o 'GLIBC_[0-9.]*' | sed 's/GLIBC_//' | sort -uV | tail -1)
	SHLIBS=libc6${glibc:+ (>= $glibc)}
fi
[ -n "$SHLIBS" ] || SHLIBS="libc6"
# The stub's kernel is built from Debian's linux-source (GPL: its source).
BUILT_USING=$(dpkg-query -W -f='linux (= ${Version})' linux-source-6.1 2>/dev/null || true)

(cd "$D" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | LC_ALL=C sort -z | xargs -0 md5sum >DEBIAN/md5sums)
SIZE=$(du -s -k --exclude=DEBIAN "$D" | cut -f1)
sed -e "s|@VERSION@|$VERSION|" -e "s|@MAINTAINER@|$MAINTAINER|" -e "s|@SIZE@|$SIZE|" \
	-e "s|@SHLIBS@|$SHLIBS|" -e "s|@BUILT_USING@|$BUILT_USING|" -e "s|@ARCH@|$ARCH|" "$P/control.in" >"$D/DEBIAN/control"
cat "$P/description.$ARCH" >>"$D/DEBIAN/control"
[ -n "$BUILT_USING" ] || sed -i '/^Built-Using: *$/d' "$D/DEBIAN/control"
chmod 644 "$D/DEBIAN/control" "$D/DEBIAN/md5sums" "$D/DEBIAN/conffiles"

find "$D" -depth -exec touch -h -d "@$EPOCH" {} +
find "$D" -type d -exec chmod 755 {} +
mkdir -p "$OUT"
DEB=$OUT/${PKG}_${VERSION}_$ARCH.deb
dpkg-deb --root-owner-group -Z"$COMPRESS" -z"$LEVEL" --build "$D" "$DEB" >/dev/null
say "$(basename "$DEB"): $(stat -c %s "$DEB") bytes, installed $SIZE KiB; Depends: $(sed -n 's/^Depends: //p' "$D/DEBIAN/control")"
echo "$DEB"
