#!/usr/bin/env bash
# End-to-end test of the dom0-daemon mode on Xen on Arm (make e2e-arm): the
# arm64 build of OUR xenstored runs in dom0 the way Debian's /etc/init.d/xen
# runs whatever /etc/default/xen's XENSTORED names, as build/e2e/daemon.sh
# does on x86 — same dom0 /init (daemon-dom0-init.sh), same overlay
# (daemon-overlay.sh) — under Debian 12's xen-hypervisor-4.17-arm64,
# xen-utils-4.17 (arm64) and linux-image-arm64, in qemu-system-aarch64 (TCG,
# -machine virt,virtualization=on,gic-version=3). The domU is PVH (Arm has
# no PV/PVH split: xl's "pvh" is the only guest type there).
#
# Boot method: QEMU loads Xen as the -kernel (an arm64 Image, entered at
# EL2) and two `-device guest-loader`s put dom0's kernel (with its command
# line) and initramfs in memory and describe them in the device tree as
# Xen's multiboot,module nodes; no firmware or U-Boot is involved.
#
# Packages come from build/e2e/fetch-arm64.sh (a private apt configuration
# with APT::Architecture=arm64 under $XSSTUB_CACHE/arm64; the host's apt
# sources and dpkg architectures are left alone); dom0's initramfs base
# (busybox, the Xen modules, the Xen tools with the arm64 libraries they
# link, xstool cross-built, the domU's kernel) is cached beside them.
#
# Environment:
#   E2E_TIMEOUT    seconds for the boot (default 420)
#   E2E_LOG        serial log (default images/e2e-arm-daemon.log)
#   E2E_NOBUILD=1  use bin/arm64/xenstored as it is
#   XSSTUB_CACHE   cache outside the tree (default /var/cache/xsstub)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
HERE=$ROOT/build/e2e
XENV=4.17
TIMEOUT=${E2E_TIMEOUT:-420}
LOG=${E2E_LOG:-$ROOT/images/e2e-arm-daemon.log}
T0=$(date +%s.%N)
since() { awk -v a="$T0" -v b="$(date +%s.%N)" 'BEGIN{printf "%6.1f", b-a}'; }
say() { printf '== e2e-arm-daemon [%ss]: %s\n' "$(since)" "$*"; }
die() { printf '== e2e-arm-daemon [%ss]: FAIL: %s\n' "$(since)" "$*" >&2; exit 1; }

# --- 1. host tools and Debian's arm64 packages
. "$HERE/arm-host.sh"
arm_host qemu-system-aarch64:qemu-system-arm aarch64-linux-gnu-gcc:gcc-aarch64-linux-gnu cpio:cpio readelf:binutils
CACHE=$(dirname "$PKGROOT")
MODDIR=$PKGROOT/lib/modules
XEN=$PKGROOT/boot/xen-4.17-arm64
[ -f "$PKGROOT/boot/vmlinuz-$KVER" ] && [ -f "$XEN" ] || die "unpacked packages incomplete in $PKGROOT"
MA=aarch64-linux-gnu
LIBDIRS=("$PKGROOT/lib/$MA" "$PKGROOT/usr/lib/$MA")

# arm64 libraries a binary needs, by DT_NEEDED through the unpacked root
# (ldd cannot run arm64 binaries here).
needed() { readelf -d "$1" 2>/dev/null | awk '/\(NEEDED\)/ {gsub(/[][]/, "", $5); print $5}'; }
findlib() {
	local d
	for d in "${LIBDIRS[@]}"; do [ -e "$d/$1" ] && { echo "$d/$1"; return 0; }; done
	return 1
}
libclosure() {
	local todo=("$@") seen=" " f n l
	while ((${#todo[@]})); do
		f=${todo[0]}
		todo=("${todo[@]:1}")
		for n in $(needed "$f"); do
			case "$seen" in *" $n "*) continue ;; esac
			seen="$seen$n "
			l=$(findlib "$n") || die "$(basename "$f") needs $n, not in the arm64 root"
			echo "$l"
			todo+=("$l")
		done
	done
}

# --- 2. dom0's initramfs base (cached; keyed on the packages and these scripts)
KEY=$({
	ls "$CACHE/debs"
	cat "$HERE/xstool.c" "$0"
	aarch64-linux-gnu-gcc --version | head -1
} | sha256sum | cut -c1-16)
BASE=$CACHE/dom0-$KEY.cpio.gz
if [ ! -f "$BASE" ]; then
	say "building dom0 initramfs base $BASE"
	W=$(mktemp -d)
	trap 'rm -rf "$W"' EXIT
	D=$W/root
	mkdir -p $D/{bin,sbin,proc,sys,dev,tmp,run,var/lib/xen,var/log/xen,etc/xen/scripts,guest,lib,modules,usr/bin,usr/lib/xen-$XENV/bin}
	cp "$PKGROOT/bin/busybox" $D/bin/busybox
	for m in xen-privcmd xenfs xen-evtchn xen-gntdev xen-gntalloc; do
		f=$(find "$MODDIR/$KVER" -name "$m.ko*" | head -1)
		[ -n "$f" ] || die "module $m not in the arm64 kernel"
		cp "$f" $D/modules/
	done
	for f in $D/modules/*.ko.xz; do if [ -e "$f" ]; then xz -d "$f"; fi; done
	# xstool against the arm64 libxen-dev; the cross toolchain's glibc is
	# Debian 12's too.
	TL=$PKGROOT/usr/lib/$MA
	aarch64-linux-gnu-gcc -O2 -Wall -I"$PKGROOT/usr/include" -o $W/xstool "$HERE/xstool.c" \
		"$TL/libxenctrl.so" "$TL/libxengnttab.so" -Wl,-rpath-link,"$TL:$PKGROOT/lib/$MA"
	XB=$PKGROOT/usr/lib/xen-$XENV/bin
	bins=($XB/xl $XB/xenconsoled $XB/xen-init-dom0 $XB/xenstore-control $XB/libxl-save-helper $W/xstool)
	for b in "${bins[@]}"; do cp -L "$b" $D/usr/lib/xen-$XENV/bin/; done
	cp -L "$PKGROOT/usr/bin/xenstore" $D/usr/bin/xenstore
	for n in ls read write list rm watch exists chmod; do ln -s xenstore $D/usr/bin/xenstore-$n; done
	for l in $(libclosure "${bins[@]}" "$PKGROOT/usr/bin/xenstore" "$PKGROOT/sbin/start-stop-daemon" "$PKGROOT/bin/dash"); do
		rel=${l#"$PKGROOT"}
		mkdir -p "$D/$(dirname "$rel")"
		cp -Ln "$l" "$D/$rel"
	done
	# ld.so where the binaries' PT_INTERP names it; glibc dlopens libgcc_s
	# for pthread_cancel (xl aborts without it).
	cp -L "$PKGROOT/lib/$MA/ld-linux-aarch64.so.1" $D/lib/ld-linux-aarch64.so.1
	mkdir -p $D/lib/$MA
	cp -Ln "$(findlib libgcc_s.so.1)" $D/lib/$MA/ 2>/dev/null || true
	cp "$PKGROOT/etc/xen/xl.conf" $D/etc/xen/ 2>/dev/null || : >$D/etc/xen/xl.conf
	# the domU's kernel: Debian's arm64 Image, as for dom0
	cp "$PKGROOT/boot/vmlinuz-$KVER" $D/guest/vmlinuz
	(cd $D && find . | cpio -o -H newc --quiet | gzip -1) >"$BASE.tmp"
	mv "$BASE.tmp" "$BASE"
	find "$CACHE" -maxdepth 1 -name 'dom0-*.cpio.gz' -mtime +2 -delete
	rm -rf "$W"
	trap - EXIT
fi
touch "$BASE"

# --- 3. our daemon and xsprobe for arm64 (static Go, no cgo)
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
XSDARM=$ROOT/bin/arm64/xenstored
if [ -z "${E2E_NOBUILD:-}" ] || [ ! -x "$XSDARM" ]; then
	say "make build-arm64 (bin/arm64/xenstored); xsprobe for arm64"
	make -s -C "$ROOT" build-arm64
fi
(cd "$ROOT" && GOARCH=arm64 CGO_ENABLED=0 go build -trimpath -ldflags='-s -w -buildid=' -o "$W/xsprobe" ./build/e2e/xsprobe)
file "$XSDARM" | grep -q 'ARM aarch64' || die "$XSDARM is not an arm64 binary"

# --- 4. the per-run overlay (build/e2e/daemon-overlay.sh, as daemon.sh)
. "$HERE/daemon-overlay.sh"
INIT=daemon-dom0-init.sh XSD=/usr/sbin/xsstub-xenstored XSD_BIN=$XSDARM XSPROBE=$W/xsprobe SSD=$PKGROOT/sbin/start-stop-daemon DASH=$PKGROOT/bin/dash DOMU_TYPE=pvh daemon_overlay

# --- 5. boot and verdict (build/e2e/boot.sh with this machine)
# Load addresses in the virt machine's RAM (from 0x40000000): QEMU puts Xen
# (-kernel) at 0x40200000 and, with no -initrd, the device tree at
# 0x48000000 (RAM start + 128 MiB): a module placed across it is silently
# overwritten (Xen 4.17 then hit "Xen BUG at common/page_alloc.c:1429" at
# boot). So dom0's kernel (a 33 MB Image) goes at 0x50000000 and its
# initramfs right after it, 2 MiB aligned. Xen relocates itself to the top
# of RAM and gives dom0 its own memory.
E2E_SMP=${E2E_SMP:-1}
KADDR=$((0x50000000))
IADDR=$(((KADDR + $(stat -c %s "$PKGROOT/boot/vmlinuz-$KVER") + 0x3fffff) & ~0x1fffff))
boot_qemu() {
	timeout "$TIMEOUT" qemu-system-aarch64 -machine virt,virtualization=on,gic-version=3 -cpu cortex-a57 \
		-accel tcg,thread=multi -smp "$E2E_SMP" -m 1536 \
		-display none -monitor none -serial "file:$LOG" -no-reboot \
		-kernel "$XEN" \
		-append "console=dtuart dom0_mem=768M,max:768M dom0_max_vcpus=$E2E_SMP loglvl=all guest_loglvl=all noreboot console_timestamps=boot" \
		-device guest-loader,addr=$(printf '%#x' $KADDR),kernel="$PKGROOT/boot/vmlinuz-$KVER",bootargs="console=hvc0 earlycon=xenboot loglevel=5" \
		-device guest-loader,addr=$(printf '%#x' $IADDR),initrd="$W/dom0.cpio.gz"
}
. "$HERE/boot.sh"
boot_and_judge arm64 "Xen $XENV on arm64 (qemu-system-aarch64 virt, GICv3, cortex-a57, -smp $E2E_SMP, guest-loader); OUR xenstored in dom0 via Debian's /etc/init.d/xen"
