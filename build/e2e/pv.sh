#!/usr/bin/env bash
# End-to-end test under real Xen (make e2e-pv): Debian's Xen 4.17 boots under
# QEMU (TCG) with a CPU without SVM, so Xen is PV-only and Xen's own
# init-xenstore-domain builds our stub domain as a PV guest. dom0 (Debian's
# kernel + a busybox initramfs with Xen's tools) starts the stub from
# images/xenstore-stubdom.kernel + images/xenstore-stubdom.cpio.gz and checks
# xenstore from dom0 (build/e2e/dom0-init.sh), then creates and destroys a PV
# domU.
#
# Environment:
#   E2E_XEN        4.17 (default: Debian 12's Xen, tools, kernel 6.1, from the
#                  host's apt) or 4.20 (Debian 13's Xen, tools, kernel 6.12 and
#                  glibc, fetched by build/e2e/fetch-trixie.sh with a private
#                  apt configuration; dom0's root is then trixie's files only)
#                  or 4.22 (Xen and its toolstack built from source by
#                  build/xen422.sh; Debian 12's kernel, busybox, glibc)
#   XSSTUB_CACHE   cache outside the tree (default /var/cache/xsstub)
#   E2E_HOST       pv (default: a CPU without SVM, so Xen is PV-only) or hvm
#                  (HVM+HAP: Xen's tool then tries the kernel as PVH first, so
#                  the stub is the PV-only kernel, images/xenstore-stubdom-pv.kernel,
#                  which Xen >= 4.18's tool builds as PV; 4.17's has no fallback)
#   E2E_STUB_MEM   stub memory in MiB (default 64)
#   E2E_STUB_PARAM extra words for the stub's kernel command line
#   E2E_DOMU       1 (default) to create/destroy a domU, 0 to skip
#   E2E_TIMEOUT    seconds per boot (default 300)
#   E2E_LOG        serial log (default images/e2e-pv.log)
#   E2E_NOBUILD=1  skip `make kernel image`
#   E2E_PREPARE_ONLY=1  stop after steps 1-3 (packages, dom0 base, kernel and
#                  image); build/e2e/pvh.sh uses this for the PVH boot
#   E2E_PREPARED=FILE  with E2E_PREPARE_ONLY: write BASE=, PKGROOT=, KVER= there
#   E2E_NOSTUB=1   with E2E_PREPARE_ONLY: no stub kernel or image (daemon.sh)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
HERE=$ROOT/build/e2e
XENV=${E2E_XEN:-4.17}
case $XENV in
4.17) CACHE=${XSSTUB_CACHE:-/var/cache/xsstub}/e2e ;;
4.20) CACHE=${XSSTUB_CACHE:-/var/cache/xsstub}/trixie/e2e ;;
4.22) CACHE=${XSSTUB_CACHE:-/var/cache/xsstub}/xen-4.22/e2e ;;
*) echo "E2E_XEN=$XENV: want 4.17, 4.20 or 4.22" >&2; exit 2 ;;
esac
STUB_MEM=${E2E_STUB_MEM:-64}
STUB_PARAM="xen_privcmd.unrestricted=1 sysctl.vm.overcommit_memory=1 console=hvc0 loglevel=5 ${E2E_STUB_PARAM:-}"
DOMU=${E2E_DOMU:-1}
TIMEOUT=${E2E_TIMEOUT:-300}
HOST=${E2E_HOST:-pv}
case $HOST in
pv) KERNEL=$ROOT/images/xenstore-stubdom.kernel CPU=-svm HOSTDESC="PV only" ;;
hvm) KERNEL=$ROOT/images/xenstore-stubdom-pv.kernel CPU=+svm,+npt HOSTDESC="HVM+HAP, PV-only stub kernel" ;;
*) echo "E2E_HOST=$HOST: want pv or hvm" >&2; exit 2 ;;
esac
LOG=${E2E_LOG:-$ROOT/images/e2e-pv$([ "$HOST" = pv ] || echo "-$HOST")$([ "$XENV" = 4.17 ] || echo "-$XENV").log}
IMAGE=$ROOT/images/xenstore-stubdom.cpio.gz
T0=$(date +%s.%N)

since() { awk -v a="$T0" -v b="$(date +%s.%N)" 'BEGIN{printf "%6.1f", b-a}'; }
say() { printf '== e2e [%ss]: %s\n' "$(since)" "$*"; }
die() { printf '== e2e [%ss]: FAIL: %s\n' "$(since)" "$*" >&2; exit 1; }

# --- 1. packages: host tools installed, guest payloads unpacked into the cache
export DEBIAN_FRONTEND=noninteractive
need=()
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
command -v gcc >/dev/null || need+=(gcc libc6-dev)
[ -e /usr/include/xenctrl.h ] || need+=(libxen-dev)
command -v xenstore-ls >/dev/null || need+=(xenstore-utils)
command -v cpio >/dev/null || need+=(cpio)
if ((${#need[@]})); then
	say "installing ${need[*]}"
	apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null 2>&1 || {
		apt-get update -q >/dev/null
		apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null
	}
fi

# Xen 4.22 (no distribution ships it): the hypervisor and the toolstack from
# build/xen422.sh (built from ../shared/xen-src, cached); dom0's kernel,
# busybox and xen-utils-common are Debian 12's, as for 4.17, whose package
# cache it shares. XR is the 4.22 install tree (its tools keep their
# upstream paths there; dom0 gets them in /usr/lib/xen-4.22/bin).
XR=
if [ "$XENV" = 4.22 ]; then
	say "Xen 4.22: build/xen422.sh"
	XR=$(bash "$ROOT/build/xen422.sh" | tail -1)
	[ -f "$XR/.key" ] || die "no Xen 4.22 build in $XR"
fi
if [ "$XENV" != 4.20 ]; then
D12=${XSSTUB_CACHE:-/var/cache/xsstub}/e2e
DEBS=$D12/debs
PKGROOT=$D12/root
KPKG=linux-image-$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {sub("linux-image-", "", $2); print $2; exit}')
[ "$KPKG" != linux-image- ] || die "cannot resolve linux-image-amd64"
PKGS=(xen-hypervisor-4.17-amd64 xen-utils-4.17 xen-utils-common busybox-static "$KPKG")
mkdir -p "$DEBS" "$PKGROOT" "$CACHE"
missing=()
for p in "${PKGS[@]}"; do
	ls "$DEBS/${p}_"*.deb >/dev/null 2>&1 || missing+=("$p")
done
if ((${#missing[@]})); then
	say "downloading ${missing[*]}"
	(cd "$DEBS" && { apt-get download "${missing[@]}" >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get download "${missing[@]}" >/dev/null; }; })
fi
# Unpack every .deb once (a stamp per file).
for d in "$DEBS"/*.deb; do
	s=$PKGROOT/.$(basename "$d").done
	[ -f "$s" ] || { dpkg -x "$d" "$PKGROOT" && touch "$s"; }
done
# The host's own glibc and Debian 12's libxen* runtime packages serve the
# 4.17 binaries: libraries come from the host (ldd). 4.22's own libraries
# come first from its install tree (and land in dom0's
# /usr/lib/x86_64-linux-gnu, where no 4.17 library is).
LIBROOT=
listlibs() { LD_LIBRARY_PATH=${XR:+$XR/usr/lib} ldd "$1" | awk '/=>/ {print $3} /ld-linux/ {print $1}'; }
MODDIR=$PKGROOT/lib/modules
else
# Debian 13: everything from trixie, glibc included, resolved by trixie's own
# ld.so inside the unpacked root (the host's glibc is too old to run them).
say "Xen $XENV: build/e2e/fetch-trixie.sh"
PKGROOT=$(bash "$HERE/fetch-trixie.sh" | tail -1)
DEBS=$(dirname "$PKGROOT")/debs
mkdir -p "$CACHE"
LIBROOT=$PKGROOT
TLD=$PKGROOT/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2
listlibs() { "$TLD" --library-path "$PKGROOT/usr/lib/x86_64-linux-gnu" --list "$1" | awk '/=>/ {print $3}'; }
MODDIR=$PKGROOT/usr/lib/modules
fi
KVER=$(ls "$MODDIR" | sort -V | tail -1)
XENGZ=$(ls "${XR:-$PKGROOT}"/boot/xen-$XENV*.gz | head -1)
[ -f "$PKGROOT/boot/vmlinuz-$KVER" ] && [ -f "$XENGZ" ] || die "unpacked packages incomplete in $PKGROOT"

# --- 2. dom0's initramfs base (cached; keyed on the packages and this directory's tools)
KEY=$({
	echo "$XENV"
	ls "$DEBS"
	[ -z "$XR" ] || cat "$XR/.key"
	cat "$HERE/xstool.c" "$0"
	[ "$XENV" != 4.17 ] || dpkg-query -W libxen-dev xenstore-utils
} | sha256sum | cut -c1-16)
BASE=$CACHE/dom0-$KEY.cpio.gz
if [ ! -f "$BASE" ]; then
	say "building dom0 initramfs base $BASE"
	W=$(mktemp -d)
	trap 'rm -rf "$W"' EXIT
	D=$W/root
	mkdir -p $D/{bin,sbin,proc,sys,dev,tmp,run,var/run,var/lib/xen,var/log/xen,etc/xen/scripts,guest,lib64,modules,usr/bin,usr/lib/xen-$XENV/bin}
	BUSYBOX=$PKGROOT/bin/busybox
	[ -f "$BUSYBOX" ] || BUSYBOX=$PKGROOT/usr/bin/busybox
	cp "$BUSYBOX" $D/bin/busybox
	for m in xen-privcmd xenfs xen-evtchn xen-gntdev xen-gntalloc; do
		f=$(find "$MODDIR/$KVER" -name "$m.ko*" | head -1)
		[ -n "$f" ] || die "module $m not in $KPKG"
		cp "$f" $D/modules/
	done
	# Debian's kernel modules may be xz-compressed; busybox insmod cannot
	# always read those: store them plain.
	for f in $D/modules/*.ko.xz; do if [ -e "$f" ]; then xz -d "$f"; fi; done
	XB=$PKGROOT/usr/lib/xen-$XENV/bin
	if [ "$XENV" = 4.17 ]; then
		gcc -O2 -Wall -o $W/xstool "$HERE/xstool.c" -lxenctrl -lxengnttab
		XSCLI=/usr/bin/xenstore
	elif [ "$XENV" = 4.22 ]; then
		# The build's tools, gathered under one directory as Debian lays
		# them out; C xenstored 4.22 comes too (for comparisons).
		XB=$W/xb
		mkdir -p $XB
		for f in usr/sbin/xl usr/sbin/xenconsoled usr/sbin/xenstored usr/lib/xen/bin/init-xenstore-domain \
			usr/lib/xen/bin/xen-init-dom0 usr/lib/xen/bin/libxl-save-helper usr/bin/xenstore-control; do
			[ -e "$XR/$f" ] || die "the Xen 4.22 build has no $f"
			ln -s "$XR/$f" $XB/
		done
		gcc -O2 -Wall -I"$XR/usr/include" -o $W/xstool "$HERE/xstool.c" \
			"$XR/usr/lib/libxenctrl.so" "$XR/usr/lib/libxengnttab.so" -Wl,-rpath-link,"$XR/usr/lib"
		XSCLI=$XR/usr/bin/xenstore
	else
		# Against trixie's headers and libraries (libxen-dev 4.20); the
		# host's libc is older than trixie's, so its symbol versions are
		# not checked at link time (trixie's glibc serves them at run time).
		TL=$PKGROOT/usr/lib/x86_64-linux-gnu
		gcc -O2 -Wall -I"$PKGROOT/usr/include" -o $W/xstool "$HERE/xstool.c" \
			"$TL/libxenctrl.so" "$TL/libxengnttab.so" -Wl,-rpath-link,"$TL" -Wl,--allow-shlib-undefined
		XSCLI=$PKGROOT/usr/bin/xenstore
	fi
	bins=($XB/xl $XB/init-xenstore-domain $XB/xenconsoled $XB/xen-init-dom0 $XB/xenstore-control
		$XB/libxl-save-helper $XSCLI $W/xstool)
	[ "$XENV" != 4.22 ] || bins+=($XB/xenstored)
	for b in "${bins[@]}"; do
		dst=$D/usr/lib/xen-$XENV/bin/$(basename "$b")
		[ "$b" = "$XSCLI" ] && dst=$D/usr/bin/xenstore
		cp -L "$b" "$dst"
		# Libraries: 4.17 from the host (Debian 12's libxen* runtime
		# packages), 4.20 from the trixie root (path inside it kept).
		for l in $(listlibs "$b"); do
			[ -f "$l" ] || continue
			rel=${l#"$LIBROOT"}
			# 4.22's own: where ld.so looks first in dom0
			[ -z "$XR" ] || [ "${l#"$XR"/}" = "$l" ] || rel=/usr/lib/x86_64-linux-gnu/$(basename "$l")
			mkdir -p "$D/$(dirname "$rel")"
			cp -Ln "$l" "$D/$rel"
		done
	done
	for n in ls read write list rm watch exists chmod; do ln -s xenstore $D/usr/bin/xenstore-$n; done
	# 4.22's tools were built for --prefix=/usr: they look for their
	# helpers (libxl-save-helper, init-xenstore-domain) in /usr/lib/xen/bin.
	[ "$XENV" != 4.22 ] || ln -s xen-4.22 $D/usr/lib/xen
	if [ "$XENV" != 4.20 ]; then
		cp /lib64/ld-linux-x86-64.so.2 $D/lib64/
		# glibc dlopens libgcc_s for pthread_cancel (xl aborts without it).
		cp -L /lib/x86_64-linux-gnu/libgcc_s.so.1 $D/lib/x86_64-linux-gnu/
	else
		cp -L "$TLD" $D/lib64/ld-linux-x86-64.so.2
		cp -L "$PKGROOT/usr/lib/x86_64-linux-gnu/libgcc_s.so.1" $D/usr/lib/x86_64-linux-gnu/
	fi
	cp "${XR:-$PKGROOT}/etc/xen/xl.conf" $D/etc/xen/ 2>/dev/null || : >$D/etc/xen/xl.conf
	# domU: Debian's kernel with a busybox initramfs that reports and waits.
	G=$W/guest
	mkdir -p $G/{bin,proc,sys,dev}
	cp "$BUSYBOX" $G/bin/busybox
	cat >$G/init <<'EOF'
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev 2>/dev/null
echo "DOMU-UP uptime=$(cut -d' ' -f1 /proc/uptime) type=$(cat /sys/hypervisor/guest_type 2>&1)"
echo "DOMU-DONE"
if grep -q e2e.selfoff /proc/cmdline; then sleep 2; echo "DOMU-POWEROFF"; poweroff -f; fi
sleep 100000
EOF
	chmod +x $G/init
	(cd $G && find . | cpio -o -H newc --quiet | gzip -9) >$D/guest/guest.cpio.gz
	cp "$PKGROOT/boot/vmlinuz-$KVER" $D/guest/vmlinuz
	cat >$D/etc/xen/domu.cfg <<'EOF'
name = "domu"
type = "pv"
kernel = "/guest/vmlinuz"
ramdisk = "/guest/guest.cpio.gz"
extra = "console=hvc0 loglevel=4"
memory = 128
vcpus = 1
on_poweroff = "destroy"
on_crash = "preserve"
EOF
	sed -e 's/^name = .*/name = "domuoff"/' -e 's/^extra = "/extra = "e2e.selfoff /' \
		$D/etc/xen/domu.cfg >$D/etc/xen/domuoff.cfg
	(cd $D && find . | cpio -o -H newc --quiet | gzip -1) >"$BASE.tmp"
	mv "$BASE.tmp" "$BASE"
	# Other worktrees' scripts key their own bases in this shared cache: drop
	# only bases unused for two days (a boot touches its base).
	find "$CACHE" -maxdepth 1 -name 'dom0-*.cpio.gz' -mtime +2 -delete
	rm -rf "$W"
	trap - EXIT
fi
[ -f "$CACHE/xen" ] && [ "$CACHE/xen" -nt "$XENGZ" ] || zcat "$XENGZ" >"$CACHE/xen"
touch "$BASE"

# --- 3. our kernel and image
if [ -n "${E2E_NOSTUB:-}" ]; then
	: # the dom0-daemon boot (daemon.sh) needs no stub kernel or image
elif [ -z "${E2E_NOBUILD:-}" ]; then
	say "make kernel image"
	make -s -C "$ROOT" kernel image
fi
if [ -z "${E2E_NOSTUB:-}" ]; then [ -f "$KERNEL" ] && [ -f "$IMAGE" ] || die "no $KERNEL or $IMAGE"; fi
if [ -n "${E2E_PREPARE_ONLY:-}" ]; then
	say "prepared: dom0 base $BASE, Xen $CACHE/xen, kernel $PKGROOT/boot/vmlinuz-$KVER"
	# The caller (pvh.sh, launcher-pvh.sh) reads what to boot from here, not
	# from "the newest base in the cache", which may be another worktree's.
	[ -z "${E2E_PREPARED:-}" ] || printf 'BASE=%s\nPKGROOT=%s\nKVER=%s\nCACHE=%s\nXENV=%s\nLIBROOT=%s\n' "$BASE" "$PKGROOT" "$KVER" "$CACHE" "$XENV" "$LIBROOT" >"$E2E_PREPARED"
	exit 0
fi

# --- 4. the per-run part of dom0's initramfs: /init, the stub, settings.
# Linux unpacks concatenated gzip'd cpio archives in order.
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
mkdir -p $W/o/stub $W/o/e2e
cp "$HERE/dom0-init.sh" $W/o/init
cp "$HERE/stubinfo.sh" $W/o/e2e/stubinfo.sh
cp "$HERE/dom0-lib.sh" "$HERE/xen422-lib.sh" $W/o/e2e/
mkdir -p $W/o/usr/bin
CGO_ENABLED=0 go build -C "$ROOT" -trimpath -ldflags='-s -w -buildid=' -o "$W/o/usr/bin/xsprobe" ./build/e2e/xsprobe
chmod +x $W/o/init
cp "$KERNEL" $W/o/stub/kernel
cp "$IMAGE" $W/o/stub/image.cpio.gz
LIVE_UPDATE=${E2E_LIVE_UPDATE:-$([ "$XENV" = 4.22 ] && echo 1 || echo 0)}
cat >$W/o/e2e/config <<EOF
STUB_MEM=$STUB_MEM
STUB_PARAM="$STUB_PARAM"
DOMU=$DOMU
XENV=$XENV
LIVE_UPDATE=$LIVE_UPDATE
EOF
if [ "$LIVE_UPDATE" = 1 ]; then
	# Step 4: the new xenstored (the image's /init) for the stub's live
	# update, and a domU whose /init holds a watch on data/lu with xsprobe.
	mkdir -p $W/img $W/g/bin $W/g/proc $W/g/sys $W/g/dev $W/o/etc/xen $W/o/guest
	gzip -dc "$IMAGE" | (cd $W/img && cpio -id --quiet init)
	cp $W/img/init $W/o/stub/xenstored-new
	cp "$(ls "$PKGROOT/bin/busybox" "$PKGROOT/usr/bin/busybox" 2>/dev/null | head -1)" $W/g/bin/busybox
	cp $W/o/usr/bin/xsprobe $W/g/bin/xsprobe
	cat >$W/g/init <<'EOF'
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev 2>/dev/null
echo "GUEST name=$(xsprobe read name 2>&1)"
xsprobe watch data/lu lu 3000
sleep 100000
EOF
	chmod +x $W/g/init
	(cd $W/g && find . | cpio -o -H newc --quiet | gzip -1) >$W/o/guest/lu.cpio.gz
	cat >$W/o/etc/xen/domulu.cfg <<'EOF'
name = "domulu"
type = "pv"
kernel = "/guest/vmlinuz"
ramdisk = "/guest/lu.cpio.gz"
extra = "console=hvc0 loglevel=4"
memory = 128
vcpus = 1
on_poweroff = "destroy"
on_crash = "preserve"
EOF
fi
(cd $W/o && find . | cpio -o -H newc --quiet | gzip -1) >$W/overlay.cpio.gz
cat "$BASE" $W/overlay.cpio.gz >$W/dom0.cpio.gz

# --- 5. boot and verdict (build/e2e/boot.sh)
. "$(dirname "$0")/boot.sh"
boot_and_judge $CPU "Xen $XENV, $HOSTDESC; stub $(basename "$KERNEL") ${STUB_MEM} MiB, param '$STUB_PARAM'"
