#!/usr/bin/env bash
# Fetch Debian 12's arm64 packages for the Xen-on-Arm boot (build/e2e/
# arm-daemon.sh) and the arm64 layout tests (xen/*/layout_test.go under
# GOARCH=arm64) without touching the host's apt configuration or dpkg
# architectures: a private apt configuration (its own sources.list, lists,
# cache and empty status under $XSSTUB_CACHE/arm64/apt, with
# APT::Architecture=arm64) downloads the packages into $XSSTUB_CACHE/arm64/debs
# and `dpkg -x` unpacks them into $XSSTUB_CACHE/arm64/root:
#   xen-hypervisor-4.17-arm64, xen-utils-4.17, xen-utils-common, libxen-dev
#   and linux-libc-dev (the headers the layout tests compile against),
#   busybox-static, dash and dpkg (Debian's /bin/sh and start-stop-daemon
#   for /etc/init.d/xen), the kernel linux-image-arm64 depends on (dom0 and domU),
#   and every library these need, following `apt-cache depends` (Depends
#   only) but not into the packages named in SKIP.
#
# Idempotent: with every package present it only checks. Prints the root.
#   ARM64_HEADERS_ONLY=1  only libxen-dev and linux-libc-dev (for the tests)
#   XSSTUB_CACHE          default /var/cache/xsstub
#   ARM64_MIRROR          default http://deb.debian.org/debian
set -euo pipefail
. "$(dirname "$0")/private-apt.sh"
papt_init fetch-arm64 "${XSSTUB_CACHE:-/var/cache/xsstub}/arm64" arm64 -o APT::Sandbox::User=root
MIRROR=${ARM64_MIRROR:-http://deb.debian.org/debian}
SECMIRROR=${ARM64_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
# The same suites as a Debian 12 host (security: the kernel's updates).
cat >"$A/sources.list" <<EOF
deb [arch=arm64 signed-by=$KEYRING] $MIRROR bookworm main
deb [arch=arm64 signed-by=$KEYRING] $MIRROR bookworm-updates main
deb [arch=arm64 signed-by=$KEYRING] $SECMIRROR bookworm-security main
EOF

KMETA=
if [ -n "${ARM64_HEADERS_ONLY:-}" ]; then
	ROOTS=(libxen-dev linux-libc-dev)
else
	ROOTS=(xen-hypervisor-4.17-arm64 xen-utils-4.17 xen-utils-common libxen-dev linux-libc-dev busybox-static libc6 libgcc-s1 dash dpkg)
	KMETA=linux-image-arm64
fi
SKIP=" python3 python3-minimal python3.11 python3.11-minimal udev ucf debconf cdebconf perl-base
 init-system-helpers systemd libsystemd0 libudev1 base-passwd tzdata media-types
 libc-dev-bin libc6-dev libcrypt-dev rpcsvc-proto libnsl-dev libtirpc-dev
 initramfs-tools linux-base kmod lsb-base sysvinit-utils "

papt_lists bookworm
# headers, the kernel, dash and dpkg (for start-stop-daemon, which links
# only libc): their dependencies are not needed here
papt_fetch "$KMETA" " libxen-dev linux-libc-dev dash dpkg " "${ARM64_HEADERS_ONLY:-}" "${ROOTS[@]}"
[ -f "$ROOTFS/usr/include/xen/sys/privcmd.h" ] || die "no arm64 libxen-dev headers in $ROOTFS"
if [ -z "${ARM64_HEADERS_ONLY:-}" ]; then
	ls "$ROOTFS"/boot/xen-4.17*arm64* >/dev/null 2>&1 || die "no Xen 4.17 arm64 in $ROOTFS/boot"
	[ -x "$ROOTFS/usr/lib/xen-4.17/bin/xl" ] || die "no xl 4.17 in $ROOTFS"
fi
say "arm64 root $ROOTFS ($(echo $PKGS | wc -w) packages)"
echo "$ROOTFS"
