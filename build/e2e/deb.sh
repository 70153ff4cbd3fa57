#!/usr/bin/env bash
# End-to-end test of the Debian package through Debian's own start-up (make
# e2e-deb, issue 14, "E2E through the stock path"): Xen 4.17 under QEMU (TCG)
# with HVM+HAP (-cpu qemu64,+svm,+npt); dom0's root holds Debian's packages
# unpacked (dpkg, tar, dash, libc-bin, util-linux, sysvinit-utils,
# xen-utils-common, xen-utils-4.17, xenstore-utils; recorded in dpkg's
# database as unpacked) and the package `make deb` built. dom0's /init
# (build/e2e/deb-dom0-init.sh) starts nothing of the product by hand: it runs
# `dpkg -i` of the package, then Debian's unmodified `/etc/init.d/xen start`,
# which (through the package's diversions) runs our wrapper, whose launcher
# builds our stub as PVH. Then it checks the stub serves dom0's tools and a
# PV domU, xenconsoled took the stub's console over, and `dpkg -r` gives
# Debian's xenstored back.
#
# Packages, dom0's initramfs base and Xen come from build/e2e/pv.sh
# (E2E_PREPARE_ONLY=1 E2E_NOSTUB=1: the stub's kernel and image are inside
# the package); this script adds a per-run overlay.
#
# With E2E_DEB_MODE=switch (make e2e-deb-switch), PV only: Debian's C
# xenstored serves before the package is installed, and the boot switches it
# to ours with the package's xsstub-switch and back with dpkg -r
# (build/e2e/deb-switch-steps.sh).
#
# Environment:
#   E2E_DEB_MODE   stub (default) or switch
#   E2E_XEN        4.17 (default) or 4.20 (see pv.sh)
#   E2E_TIMEOUT    seconds for the boot (default 480)
#   E2E_LOG        serial log (default images/e2e-deb[-4.20].log)
#   E2E_DEB        the package to install (default: what `make deb` builds)
#   E2E_NOBUILD=1  skip `make deb` (then the newest dist/xsstub_*_amd64.deb)
#   XSSTUB_CACHE   cache outside the tree (default /var/cache/xsstub)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
HERE=$ROOT/build/e2e
XENV=${E2E_XEN:-4.17}
TIMEOUT=${E2E_TIMEOUT:-480}
DEBMODE=${E2E_DEB_MODE:-stub}
case $DEBMODE in stub | switch) ;; *) echo "E2E_DEB_MODE=$DEBMODE: want stub or switch" >&2; exit 2 ;; esac
LOG=${E2E_LOG:-$ROOT/images/e2e-deb$([ $DEBMODE = stub ] || echo -switch)$([ "$XENV" = 4.17 ] || echo "-$XENV").log}
T0=$(date +%s.%N)
since() { awk -v a="$T0" -v b="$(date +%s.%N)" 'BEGIN{printf "%6.1f", b-a}'; }
say() { printf '== e2e-deb [%ss]: %s\n' "$(since)" "$*"; }
die() { printf '== e2e-deb [%ss]: FAIL: %s\n' "$(since)" "$*" >&2; exit 1; }

# --- 1. packages, dom0 base, Xen (shared with pv.sh; the stub is in the .deb)
say "preparing (build/e2e/pv.sh, E2E_PREPARE_ONLY=1 E2E_NOSTUB=1, Xen $XENV)"
PREP=$(mktemp)
E2E_XEN=$XENV E2E_PREPARE_ONLY=1 E2E_NOSTUB=1 E2E_PREPARED=$PREP bash "$HERE/pv.sh" || die "preparation failed"
. "$PREP"
rm -f "$PREP"
[ -n "${BASE:-}" ] && [ -f "$BASE" ] && [ -f "$CACHE/xen" ] || die "no dom0 base or Xen in $CACHE after preparation"
command -v qemu-system-x86_64 >/dev/null || die "qemu-system-x86_64 not installed"
qemu-system-x86_64 -cpu help 2>/dev/null | grep -qw qemu64 || die "qemu-system-x86_64 has no qemu64 CPU model"

# --- 2. the package (make deb) and the raw wire client
if [ -n "${E2E_DEB:-}" ]; then
	DEB=$E2E_DEB
elif [ -z "${E2E_NOBUILD:-}" ]; then
	say "make deb"
	DEB=$(make -s -C "$ROOT" deb | tail -1)
else
	DEB=$(ls -t "$ROOT"/dist/xsstub_*_amd64.deb 2>/dev/null | head -1)
fi
[ -n "$DEB" ] && [ -f "$DEB" ] || die "no package (make deb): '$DEB'"
say "package $(basename "$DEB") ($(stat -c %s "$DEB") bytes)"
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
CGO_ENABLED=0 go build -C "$ROOT" -trimpath -ldflags='-s -w -buildid=' -o "$W/xsprobe" ./build/e2e/xsprobe

# --- 3. Debian's packages for dom0's root, unpacked as dpkg would
# Xen's two packages come from pv.sh's download; the rest from the same
# release's apt (4.17: the host's, Debian 12).
if [ "$XENV" = 4.17 ]; then
	XDEBS=$CACHE/debs
	DDEBS=$CACHE/deb-boot
	mkdir -p "$DDEBS"
	EXTRA=(dpkg tar dash libc-bin util-linux sysvinit-utils xenstore-utils)
	missing=()
	for p in "${EXTRA[@]}"; do ls "$DDEBS/${p}_"*.deb >/dev/null 2>&1 || missing+=("$p"); done
	if ((${#missing[@]})); then
		say "downloading ${missing[*]}"
		(cd "$DDEBS" && { apt-get download "${missing[@]}" >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get download "${missing[@]}" >/dev/null; }; })
	fi
	PDEBS=()
	for p in "${EXTRA[@]}"; do PDEBS+=("$(ls "$DDEBS/${p}_"*.deb | head -1)"); done
	listlibs() { LD_LIBRARY_PATH= ldd "$1" 2>/dev/null | awk '/=> \// {print $3}'; }
else
	# Debian 13: with fetch-trixie.sh's private apt configuration (its lists,
	# an empty status file; the host's apt is not touched). dpkg, tar, dash,
	# libc-bin, sysvinit-utils and the libraries they need (Depends,
	# followed), util-linux for choom (its libraries are not followed: choom
	# needs only libc); what fetch-trixie.sh already has is taken from there.
	TC=${XSSTUB_CACHE:-/var/cache/xsstub}/trixie
	XDEBS=$TC/debs
	DDEBS=$CACHE/deb-boot
	TA=$TC/apt
	mkdir -p "$DDEBS"
	APT=(-o "Dir::Etc::sourcelist=$TA/sources.list" -o Dir::Etc::sourceparts=-
		-o "Dir::State::Lists=$TA/lists" -o "Dir::Cache=$TA/cache" -o "Dir::State::status=$TA/status"
		-o Dir::Etc::preferences=/dev/null -o Dir::Etc::preferencesparts=-
		-o APT::Architecture=amd64 -o APT::Architectures=amd64 -o Debug::NoLocking=1)
	if [ ! -s "$DDEBS/packages" ]; then
		queue=(dpkg tar dash libc-bin sysvinit-utils) seen=" " list=(util-linux)
		while ((${#queue[@]})); do
			p=${queue[0]}
			queue=("${queue[@]:1}")
			case "$seen" in *" $p "*) continue ;; esac
			seen="$seen$p "
			ls "$XDEBS/${p}_"*.deb >/dev/null 2>&1 || list+=("$p")
			for d in $(apt-cache "${APT[@]}" depends --no-recommends --no-suggests --no-conflicts \
				--no-breaks --no-replaces --no-enhances "$p" 2>/dev/null |
				awk '/^ *(Pre)?Depends:/ {n=$2; if (n !~ /^</) print n}'); do
				case " debianutils perl-base libc6 libgcc-s1 gcc-14-base " in *" $d "*) continue ;; esac
				queue+=("$d")
			done
		done
		printf '%s\n' "${list[@]}" | sort -u >"$DDEBS/packages"
	fi
	EXTRA=($(cat "$DDEBS/packages"))
	missing=()
	for p in "${EXTRA[@]}"; do ls "$DDEBS/${p}_"*.deb >/dev/null 2>&1 || missing+=("$p"); done
	if ((${#missing[@]})); then
		say "downloading (trixie) ${missing[*]}"
		(cd "$DDEBS" && apt-get "${APT[@]}" -q download "${missing[@]}" >/dev/null) || die "apt-get download failed"
	fi
	PDEBS=()
	for p in "${EXTRA[@]}"; do PDEBS+=("$(ls "$DDEBS/${p}_"*.deb | head -1)"); done
	PDEBS+=("$(ls "$XDEBS/xenstore-utils_"*.deb | head -1)")
	TLD=$PKGROOT/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2
	# Resolved in the staged root first, then in fetch-trixie.sh's; printed
	# as paths inside dom0's root.
	listlibs() {
		"$TLD" --library-path "$P/usr/lib/x86_64-linux-gnu:$PKGROOT/usr/lib/x86_64-linux-gnu" --list "$1" 2>/dev/null |
			awk '/=> \// {print $3}' | while read -r l; do
			case $l in "$P"/*) ;; "$PKGROOT"/*) echo "${l#"$PKGROOT"}" ;; esac
		done
	}
fi
for p in xen-utils-common "xen-utils-$XENV"; do PDEBS+=("$(ls "$XDEBS/${p}_"*.deb | head -1)"); done
P=$W/pk

# Cached (keyed on the packages and this script): the unpacked packages,
# their libraries, dpkg's database and /etc/default/xen.
KEY=$({
	echo "$XENV"
	for d in "${PDEBS[@]}"; do basename "$d"; done
	cat "$0"
} | sha256sum | cut -c1-16)
PKGS=$DDEBS/root-$KEY.cpio.gz
if [ ! -f "$PKGS" ]; then
	say "unpacking $(echo "${PDEBS[@]}" | wc -w) Debian packages for dom0's root into $PKGS"
	A=$P/var/lib/dpkg
	mkdir -p $A/info $A/updates $A/triggers $A/alternatives $A/parts $P/var/log $P/etc/default
	: >$A/status
	: >$A/available
	for d in "${PDEBS[@]}"; do
		[ -f "$d" ] || die "package missing: $d"
		pkg=$(dpkg-deb -f "$d" Package)
		# Documentation, manual pages and translations are left out, as
		# Debian's minimal images do (dpkg's path-exclude); dpkg's file
		# list still names them.
		dpkg-deb --fsys-tarfile "$d" | tar -x -C $P --wildcards --exclude='./usr/share/doc/*' \
			--exclude='./usr/share/man/*' --exclude='./usr/share/locale/*'
		# dpkg's record of an unpacked package: its control fields with
		# "install ok unpacked", its file list and md5sums (no maintainer
		# script ran: --force-depends is needed to depend on it).
		dpkg-deb -f "$d" | awk '{print} NR == 1 {print "Status: install ok unpacked"}' >>$A/status
		echo >>$A/status
		dpkg-deb --fsys-tarfile "$d" | tar -t | sed -e 's#^\./$#/.#' -e 's#^\.##' -e 's#/$##' >$A/info/$pkg.list
		dpkg-deb --ctrl-tarfile "$d" | tar -xO ./md5sums >$A/info/$pkg.md5sums 2>/dev/null || rm -f $A/info/$pkg.md5sums
	done
	# Debian 13 is merged /usr: /lib is usr/lib (the 4.20 base has no /lib).
	if [ "$XENV" != 4.17 ]; then
		if [ -d $P/lib ] && [ ! -L $P/lib ]; then
			cp -a $P/lib/. $P/usr/lib/
			rm -rf $P/lib
		fi
		ln -sfn usr/lib $P/lib
	fi
	# Their libraries (4.17: Debian 12's, from the host, like the base's).
	find $P -type f -perm -u+x -size +8k | while read -r f; do
		if head -c4 "$f" | grep -q ELF; then listlibs "$f" || :; fi
	done | sort -u | while read -r l; do
		[ -e "$P$l" ] || { mkdir -p "$P$(dirname "$l")" && cp -L "${LIBROOT:-}$l" "$P$l"; }
	done
	# What xen-utils-common's postinst (ucf) installs: Debian's default file
	# as shipped (XENSTORED unset: the script tries oxenstored, then
	# xenstored), plus one setting that is not about xenstore: xenconsoled
	# logs the guests' consoles (guest-NAME.log), which the checks read.
	{
		cat $P/usr/share/xen-utils-common/default.xen
		echo 'XENCONSOLED_ARGS="--log=guest --log-dir=/var/log/xen"'
	} >$P/etc/default/xen
	(cd $P && find . | cpio -o -H newc --quiet | gzip -1) >"$PKGS.tmp"
	mv "$PKGS.tmp" "$PKGS"
	find "$DDEBS" -maxdepth 1 -name 'root-*.cpio.gz' -mtime +2 -delete
fi
touch "$PKGS"

O=$W/o
mkdir -p $O/root $O/e2e $O/usr/local/bin $O/guest $O/etc/xen
cp "$DEB" $O/root/
cp "$HERE/deb-dom0-init.sh" $O/init
cp "$HERE/dom0-lib.sh" $O/e2e/
chmod +x $O/init
cp "$W/xsprobe" $O/usr/local/bin/
cat >$O/e2e/config <<CFG
XENV=$XENV
DEBFILE=/root/$(basename "$DEB")
DEB_MODE=$DEBMODE
CFG
if [ $DEBMODE = switch ]; then
	cp "$HERE/deb-switch-steps.sh" $O/e2e/
	# Debian's default file with C xenstored chosen, as an operator does.
	mkdir -p $O/etc/default
	{
		cat "$PKGROOT/usr/share/xen-utils-common/default.xen"
		echo "XENSTORED=/usr/lib/xen-$XENV/bin/xenstored"
		echo 'XENCONSOLED_ARGS="--log=guest --log-dir=/var/log/xen"'
	} >$O/etc/default/xen
fi
# A PV domU (Debian's kernel from the base) whose /init reads its name and
# domid through its kernel's xenbus, i.e. through the stub's ring for it.
G=$W/g
mkdir -p $G/bin $G/proc $G/sys $G/dev
cp "$(ls "$PKGROOT/bin/busybox" "$PKGROOT/usr/bin/busybox" 2>/dev/null | head -1)" $G/bin/busybox
cp "$W/xsprobe" $G/bin/xsprobe
cat >$G/init <<'EOF'
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev 2>/dev/null
echo "DOMU-UP uptime=$(cut -d' ' -f1 /proc/uptime) type=$(cat /sys/hypervisor/guest_type 2>&1)"
echo "GUEST name=$(xsprobe read name 2>&1) domid=$(xsprobe read domid 2>&1)"
echo "GUEST write $(xsprobe write data/hello from-the-guest 2>&1; echo rc=$?)"
echo "DOMU-DONE"
sleep 100000
EOF
chmod +x $G/init
(cd $G && find . | cpio -o -H newc --quiet | gzip -1) >$O/guest/xsprobe.cpio.gz
cat >$O/etc/xen/domud.cfg <<'EOF'
name = "domud"
type = "pv"
kernel = "/guest/vmlinuz"
ramdisk = "/guest/xsprobe.cpio.gz"
extra = "console=hvc0 loglevel=4"
memory = 128
vcpus = 1
on_poweroff = "destroy"
on_crash = "preserve"
EOF
(cd $O && find . | cpio -o -H newc --quiet | gzip -1) >$W/overlay.cpio.gz
say "dom0: base $(stat -c %s "$BASE") + Debian's packages $(stat -c %s "$PKGS") + the .deb and /init $(stat -c %s $W/overlay.cpio.gz) bytes gzip'd"
cat "$BASE" "$PKGS" $W/overlay.cpio.gz >$W/dom0.cpio.gz

# --- 4. boot and verdict (build/e2e/boot.sh)
. "$HERE/boot.sh"
after_boot() {
	local s
	s=$(awk '/@@E2E PASS initd-start / {print $1; exit}' "$HOSTMARKS")
	[ -n "$s" ] && say "host seconds from QEMU start to /etc/init.d/xen start returning with the stub serving: ~${s}s"
	return 0
}
if [ $DEBMODE = switch ]; then
	boot_and_judge -svm "Xen $XENV, PV only; Debian's C xenstored, dpkg -i $(basename "$DEB"), xsstub-switch to-ours, dpkg -r back to C"
else
	boot_and_judge +svm,+npt "Xen $XENV, HVM+HAP; dpkg -i $(basename "$DEB"), Debian's /etc/init.d/xen starts the stub"
fi
