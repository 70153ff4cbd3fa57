#!/usr/bin/env bash
# Fetch Debian 13 (trixie) Xen 4.20 for the e2e boots (E2E_XEN=4.20) without
# touching the host's apt sources: a private apt configuration (its own
# sources.list, lists and cache under $XSSTUB_CACHE/trixie/apt) downloads
# the packages into $XSSTUB_CACHE/trixie/debs and `dpkg -x` unpacks them into
# $XSSTUB_CACHE/trixie/root:
#   xen-hypervisor-4.20-amd64, xen-utils-4.20, xen-utils-common, libxen-dev
#   (headers for build/e2e/xstool.c), busybox-static, the kernel that
#   trixie's linux-image-amd64 depends on (dom0 and domU), and every library
#   these need, following `apt-cache depends` (Depends only, first
#   alternative) but not into the packages named in SKIP (interpreters and
#   system services a busybox dom0 does not run). trixie's glibc comes with
#   them: dom0's root for 4.20 is built from trixie's files only (its own
#   ld.so), as the host's glibc (2.36) is older than trixie's binaries want.
#
# Idempotent: with every package present it only checks. Prints the root.
#   XSSTUB_CACHE   default /var/cache/xsstub
#   TRIXIE_MIRROR  default http://deb.debian.org/debian
set -euo pipefail
. "$(dirname "$0")/private-apt.sh"
papt_init fetch-trixie "${XSSTUB_CACHE:-/var/cache/xsstub}/trixie" amd64
MIRROR=${TRIXIE_MIRROR:-http://deb.debian.org/debian}
echo "deb [signed-by=$KEYRING] $MIRROR trixie main" >"$A/sources.list"

ROOTS=(xen-hypervisor-4.20-amd64 xen-utils-4.20 xen-utils-common libxen-dev busybox-static libc6 libgcc-s1)
SKIP=" python3 python3-minimal python3.13 python3.13-minimal udev ucf debconf cdebconf perl-base
 init-system-helpers systemd libsystemd0 libudev1 base-passwd tzdata media-types
 libc-dev-bin libc6-dev linux-libc-dev libcrypt-dev rpcsvc-proto libnsl-dev libtirpc-dev
 initramfs-tools linux-base kmod "

papt_lists trixie
# every dependency followed but the kernel's (initramfs tooling)
papt_fetch linux-image-amd64 " " "" "${ROOTS[@]}"
ls "$ROOTFS"/boot/xen-4.20*.gz >/dev/null 2>&1 || die "no Xen 4.20 in $ROOTFS/boot"
[ -x "$ROOTFS/usr/lib/xen-4.20/bin/xl" ] || die "no xl 4.20 in $ROOTFS"
say "trixie root $ROOTFS ($(echo $PKGS | wc -w) packages)"
echo "$ROOTFS"
