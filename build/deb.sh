#!/usr/bin/env bash
# Build the binary package xsstub_VERSION_amd64.deb (make deb) with
# dpkg-deb from what make build, make kernel and make image produced; see
# packaging/README.md for the layout and why there is no debian/ directory.
#
# Environment:
#   DEB_BIN       built programs (default bin/: xenstored, xenstore-stubdom-launch)
#   DEB_IMAGES    stub kernel(s) and image (default images/)
#   DEB_OUT       output directory (default dist/)
#   DEB_VERSION   package version (default: VERSION + git count and commit)
#   DEB_MAINTAINER  Maintainer field
#   DEB_COMPRESS  dpkg-deb -Z (default xz), DEB_COMPRESS_LEVEL -z (default 6; the tests: gzip, 1)
# Prints the path of the package on its last line.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
PKG=xsstub
BIN=${DEB_BIN:-$ROOT/bin}
IMAGES=${DEB_IMAGES:-$ROOT/images}
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
for f in "$BIN/xenstored" "$BIN/xenstore-stubdom-launch" "$IMAGES/xenstore-stubdom.kernel" \
	"$IMAGES/xenstore-stubdom-pv.kernel" "$IMAGES/xenstore-stubdom.cpio.gz"; do
	[ -f "$f" ] || die "$f missing (make build kernel image)"
done

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
inst 755 "$BIN/xenstore-stubdom-launch" /usr/sbin/xenstore-stubdom-launch
inst 755 "$P/xenstored-wrapper" /usr/libexec/xsstub/xenstored
inst 755 "$P/xsstub-switch" /usr/sbin/xsstub-switch
inst 644 "$IMAGES/xenstore-stubdom.kernel" /usr/lib/xsstub/xenstore-stubdom.kernel
inst 644 "$IMAGES/xenstore-stubdom-pv.kernel" /usr/lib/xsstub/xenstore-stubdom-pv.kernel
inst 644 "$IMAGES/xenstore-stubdom.cpio.gz" /usr/lib/xsstub/xenstore-stubdom.cpio.gz
inst 644 "$P/xsstub.default" /etc/default/xsstub

# The diverted paths become links to the wrapper (relative: same /usr).
mapfile -t DIVERSIONS < <(grep '^/' "$P/diversions")
for f in "${DIVERSIONS[@]}"; do
	mkdir -p "$D$(dirname "$f")"
	ln -s "$(realpath -m --relative-to="$(dirname "$f")" /usr/libexec/xsstub/xenstored)" "$D$f"
done

# Documentation and manual pages.
DOC=/usr/share/doc/$PKG
inst 644 "$P/copyright" "$DOC/copyright"
inst 644 "$P/lintian-overrides" /usr/share/lintian/overrides/$PKG
inst 644 "$P/README.Debian" "$DOC/README.Debian"
for f in README.md launcher/README.md kernel/README.md stubdom/boot/README.md; do
	name=$(basename "$f")
	[ "$f" = README.md ] || name=$(dirname "$f" | tr / -)-README.md
	install -D -m 644 "$ROOT/$f" "$D$DOC/$name"
done
inst 644 "$ROOT/images/xencommons" "$DOC/examples/xencommons"
inst 644 "$ROOT/kernel/stubdom.config" "$DOC/kernel-stubdom.config"
gzip -9n "$D$DOC/kernel-stubdom.config"
for f in "$D$DOC"/*.md; do gzip -9n "$f"; done
for m in "$P"/man/*.[0-9]; do
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
Architecture: amd64
CTL
SHLIBS=$(cd "$WORK" && dpkg-shlibdeps -O -e"debian/$PKG/usr/sbin/xenstore-stubdom-launch" \
	-e"debian/$PKG/usr/sbin/xsstub-xenstored" 2>"$WORK/shlibdeps.err" | sed -n 's/^shlibs:Depends=//p') ||
	{ cat "$WORK/shlibdeps.err" >&2; die "dpkg-shlibdeps failed"; }
grep -v 'is not dynamically linked\|no dependency information\|binaries to analyze' "$WORK/shlibdeps.err" >&2 || true
[ -n "$SHLIBS" ] || SHLIBS="libc6"
# The stub's kernel is built from Debian's linux-source (GPL: its source).
BUILT_USING=$(dpkg-query -W -f='linux (= ${Version})' linux-source-6.1 2>/dev/null || true)

(cd "$D" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | LC_ALL=C sort -z | xargs -0 md5sum >DEBIAN/md5sums)
SIZE=$(du -s -k --exclude=DEBIAN "$D" | cut -f1)
sed -e "s|@VERSION@|$VERSION|" -e "s|@MAINTAINER@|$MAINTAINER|" -e "s|@SIZE@|$SIZE|" \
	-e "s|@SHLIBS@|$SHLIBS|" -e "s|@BUILT_USING@|$BUILT_USING|" "$P/control.in" >"$D/DEBIAN/control"
[ -n "$BUILT_USING" ] || sed -i '/^Built-Using: *$/d' "$D/DEBIAN/control"
chmod 644 "$D/DEBIAN/control" "$D/DEBIAN/md5sums" "$D/DEBIAN/conffiles"

find "$D" -depth -exec touch -h -d "@$EPOCH" {} +
find "$D" -type d -exec chmod 755 {} +
mkdir -p "$OUT"
DEB=$OUT/${PKG}_${VERSION}_amd64.deb
dpkg-deb --root-owner-group -Z"$COMPRESS" -z"$LEVEL" --build "$D" "$DEB" >/dev/null
say "$(basename "$DEB"): $(stat -c %s "$DEB") bytes, installed $SIZE KiB; Depends: $(sed -n 's/^Depends: //p' "$D/DEBIAN/control")"
echo "$DEB"
