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
#   XSSTUB_CACHE   cache outside the tree (default /var/cache/xsstub)
#   E2E_STUB_MEM   stub memory in MiB (default 64)
#   E2E_STUB_PARAM extra words for the stub's kernel command line
#   E2E_DOMU       1 (default) to create/destroy a domU, 0 to skip
#   E2E_TIMEOUT    seconds per boot (default 300)
#   E2E_LOG        serial log (default images/e2e-pv.log)
#   E2E_NOBUILD=1  skip `make kernel image`
#   E2E_PREPARE_ONLY=1  stop after steps 1-3 (packages, dom0 base, kernel and
#                  image); build/e2e/pvh.sh uses this for the PVH boot
#   E2E_PREPARED=FILE  with E2E_PREPARE_ONLY: write BASE=, PKGROOT=, KVER= there
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
HERE=$ROOT/build/e2e
CACHE=${XSSTUB_CACHE:-/var/cache/xsstub}/e2e
STUB_MEM=${E2E_STUB_MEM:-64}
STUB_PARAM="xen_privcmd.unrestricted=1 sysctl.vm.overcommit_memory=1 console=hvc0 loglevel=5 ${E2E_STUB_PARAM:-}"
DOMU=${E2E_DOMU:-1}
TIMEOUT=${E2E_TIMEOUT:-300}
LOG=${E2E_LOG:-$ROOT/images/e2e-pv.log}
KERNEL=$ROOT/images/xenstore-stubdom.kernel
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

DEBS=$CACHE/debs
PKGROOT=$CACHE/root
KPKG=linux-image-$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {sub("linux-image-", "", $2); print $2; exit}')
[ "$KPKG" != linux-image- ] || die "cannot resolve linux-image-amd64"
PKGS=(xen-hypervisor-4.17-amd64 xen-utils-4.17 xen-utils-common busybox-static "$KPKG")
mkdir -p "$DEBS" "$PKGROOT"
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
KVER=$(ls "$PKGROOT/lib/modules" | sort -V | tail -1)
XENGZ=$(ls "$PKGROOT"/boot/xen-4.17*.gz | head -1)
[ -f "$PKGROOT/boot/vmlinuz-$KVER" ] && [ -f "$XENGZ" ] || die "unpacked packages incomplete in $PKGROOT"

# --- 2. dom0's initramfs base (cached; keyed on the packages and this directory's tools)
KEY=$({
	ls "$DEBS"
	cat "$HERE/xstool.c" "$0"
	dpkg-query -W libxen-dev xenstore-utils
} | sha256sum | cut -c1-16)
BASE=$CACHE/dom0-$KEY.cpio.gz
if [ ! -f "$BASE" ]; then
	say "building dom0 initramfs base $BASE"
	W=$(mktemp -d)
	trap 'rm -rf "$W"' EXIT
	D=$W/root
	mkdir -p $D/{bin,sbin,proc,sys,dev,tmp,run,var/run,var/lib/xen,var/log/xen,etc/xen/scripts,guest,lib64,modules,usr/bin,usr/lib/xen-4.17/bin}
	cp "$PKGROOT/bin/busybox" $D/bin/busybox
	for m in xen-privcmd xenfs xen-evtchn xen-gntdev xen-gntalloc; do
		f=$(find "$PKGROOT/lib/modules/$KVER" -name "$m.ko*" | head -1)
		[ -n "$f" ] || die "module $m not in $KPKG"
		cp "$f" $D/modules/
	done
	# Debian's kernel modules may be xz-compressed; busybox insmod cannot
	# always read those: store them plain.
	for f in $D/modules/*.ko.xz; do if [ -e "$f" ]; then xz -d "$f"; fi; done
	gcc -O2 -Wall -o $W/xstool "$HERE/xstool.c" -lxenctrl -lxengnttab
	XB=$PKGROOT/usr/lib/xen-4.17/bin
	bins=($XB/xl $XB/init-xenstore-domain $XB/xenconsoled $XB/xen-init-dom0 $XB/xenstore-control
		$XB/libxl-save-helper /usr/bin/xenstore $W/xstool)
	for b in "${bins[@]}"; do
		dst=$D/usr/lib/xen-4.17/bin/$(basename "$b")
		[ "$b" = /usr/bin/xenstore ] && dst=$D/usr/bin/xenstore
		cp -L "$b" "$dst"
		# Libraries from the host (Debian's libxen* runtime packages).
		for l in $(LD_LIBRARY_PATH= ldd "$b" | awk '/=>/ {print $3} /ld-linux/ {print $1}'); do
			[ -f "$l" ] || continue
			mkdir -p "$D/$(dirname "$l")"
			cp -Ln "$l" "$D/$l"
		done
	done
	for n in ls read write list rm watch exists chmod; do ln -s xenstore $D/usr/bin/xenstore-$n; done
	cp /lib64/ld-linux-x86-64.so.2 $D/lib64/
	# glibc dlopens libgcc_s for pthread_cancel (xl aborts without it).
	cp -L /lib/x86_64-linux-gnu/libgcc_s.so.1 $D/lib/x86_64-linux-gnu/
	cp "$PKGROOT/etc/xen/xl.conf" $D/etc/xen/ 2>/dev/null || : >$D/etc/xen/xl.conf
	# domU: Debian's kernel with a busybox initramfs that reports and waits.
	G=$W/guest
	mkdir -p $G/{bin,proc,sys,dev}
	cp "$PKGROOT/bin/busybox" $G/bin/busybox
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

# --- 3. our kernel and image
if [ -z "${E2E_NOBUILD:-}" ]; then
	say "make kernel image"
	make -s -C "$ROOT" kernel image
fi
[ -f "$KERNEL" ] && [ -f "$IMAGE" ] || die "no $KERNEL or $IMAGE"
touch "$BASE"
if [ -n "${E2E_PREPARE_ONLY:-}" ]; then
	say "prepared: dom0 base $BASE, Xen $CACHE/xen, kernel $PKGROOT/boot/vmlinuz-$KVER"
	# The caller (pvh.sh, launcher-pvh.sh) reads what to boot from here, not
	# from "the newest base in the cache", which may be another worktree's.
	[ -z "${E2E_PREPARED:-}" ] || printf 'BASE=%s\nPKGROOT=%s\nKVER=%s\n' "$BASE" "$PKGROOT" "$KVER" >"$E2E_PREPARED"
	exit 0
fi

# --- 4. the per-run part of dom0's initramfs: /init, the stub, settings.
# Linux unpacks concatenated gzip'd cpio archives in order.
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
mkdir -p $W/o/stub $W/o/e2e
cp "$HERE/dom0-init.sh" $W/o/init
chmod +x $W/o/init
cp "$KERNEL" $W/o/stub/kernel
cp "$IMAGE" $W/o/stub/image.cpio.gz
cat >$W/o/e2e/config <<EOF
STUB_MEM=$STUB_MEM
STUB_PARAM="$STUB_PARAM"
DOMU=$DOMU
EOF
(cd $W/o && find . | cpio -o -H newc --quiet | gzip -1) >$W/overlay.cpio.gz
cat "$BASE" $W/overlay.cpio.gz >$W/dom0.cpio.gz

# --- 5. boot and verdict (build/e2e/boot.sh)
. "$(dirname "$0")/boot.sh"
boot_and_judge -svm "PV only; stub memory ${STUB_MEM} MiB, param '$STUB_PARAM'"
