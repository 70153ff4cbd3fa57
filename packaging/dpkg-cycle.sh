#!/bin/sh
# Install, check, remove and purge a built xsstub package with the real dpkg
# in a throwaway overlay of this host's / (a private mount namespace: the
# host's dpkg database and files are untouched). Needs root and overlayfs.
#
#   sh packaging/dpkg-cycle.sh dist/xsstub_*_amd64.deb [xen-utils-common.deb xen-utils-4.17.deb]
#
# Without Xen's packages it takes them from $XSSTUB_CACHE/debs (build/test-deps.sh).
set -eu
[ $# -ge 1 ] || { echo "usage: $0 XSSTUB.deb [XEN-DEBS...]" >&2; exit 2; }
deb=$(realpath "$1"); shift
pkgs=$(mktemp -d)
trap 'rm -rf "$pkgs"' EXIT
cp "$deb" "$pkgs/xsstub.deb"
if [ $# -eq 0 ]; then
	c=${XSSTUB_CACHE:-/var/cache/xsstub}/debs
	set -- "$c"/xen-utils-common_*.deb "$c"/xen-utils-4.17_*.deb
fi
mkdir "$pkgs/xen" && cp "$@" "$pkgs/xen/"

# Run inside the overlay's chroot.
cat >"$pkgs/check.sh" <<'IN'
set -eu
export DEBIAN_FRONTEND=noninteractive
fail() { echo "FAIL: $*"; exit 1; }
divs() { dpkg-divert --list | grep -c 'by xsstub$' || true; }
dpkg -i --force-depends /pkgs/xen/*.deb >/dev/null 2>&1 || true
[ -f /usr/lib/xen-4.17/bin/oxenstored ] || fail "xen-utils-4.17 not unpacked"
dpkg -i --force-depends /pkgs/xsstub.deb >/dev/null 2>&1 || fail "dpkg -i xsstub"
for f in /usr/lib/xen-4.17/bin/oxenstored /usr/lib/xen-4.17/bin/xenstored; do
	[ "$(readlink -f "$f")" = /usr/libexec/xsstub/xenstored ] || fail "$f is not our wrapper"
	[ -x "$f.distrib" ] || fail "$f.distrib missing"
done
[ "$(divs)" = 4 ] || fail "diversions: $(divs), want 4"
echo "PASS installed: Debian's xenstored and oxenstored diverted to *.distrib, the wrapper in their place"
dpkg -r xsstub >/dev/null 2>&1 || fail "dpkg -r"
for f in /usr/lib/xen-4.17/bin/oxenstored /usr/lib/xen-4.17/bin/xenstored; do
	[ -f "$f" ] && [ ! -L "$f" ] && [ ! -e "$f.distrib" ] || fail "$f not restored"
done
[ "$(divs)" = 0 ] || fail "diversions left"
[ ! -e /usr/lib/xen-4.20 ] || fail "/usr/lib/xen-4.20 left"
[ -f /etc/default/xsstub ] || fail "conffile gone at remove"
echo "PASS removed: Debian's oxenstored and xenstored restored, no diversion left, conffile kept"
dpkg -P xsstub >/dev/null 2>&1 || fail "dpkg -P"
[ ! -e /etc/default/xsstub ] || fail "conffile left after purge"
echo "PASS purged: /etc/default/xsstub gone"
IN
export pkgs
unshare -m --propagation private sh -eu -c '
B=$pkgs/ovl
mkdir -p $B && mount -t tmpfs tmpfs $B && mkdir -p $B/u $B/w $B/m
mount -t overlay overlay -o lowerdir=/,upperdir=$B/u,workdir=$B/w $B/m
mount -t proc proc $B/m/proc
mkdir -p $B/m/pkgs && mount --bind $pkgs $B/m/pkgs
chroot $B/m sh /pkgs/check.sh'
