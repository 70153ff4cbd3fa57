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
CACHE=${XSSTUB_CACHE:-/var/cache/xsstub}/arm64
MIRROR=${ARM64_MIRROR:-http://deb.debian.org/debian}
SECMIRROR=${ARM64_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
A=$CACHE/apt
DEBS=$CACHE/debs
ROOTFS=$CACHE/root
say() { printf '== fetch-arm64: %s\n' "$*" >&2; }
die() { printf '== fetch-arm64: FAIL: %s\n' "$*" >&2; exit 1; }

mkdir -p "$A/lists/partial" "$A/cache/archives/partial" "$DEBS" "$ROOTFS"
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
[ -f "$KEYRING" ] || die "$KEYRING missing (package debian-archive-keyring)"
# The same suites as a Debian 12 host (security: the kernel's updates).
cat >"$A/sources.list" <<EOF
deb [arch=arm64 signed-by=$KEYRING] $MIRROR bookworm main
deb [arch=arm64 signed-by=$KEYRING] $MIRROR bookworm-updates main
deb [arch=arm64 signed-by=$KEYRING] $SECMIRROR bookworm-security main
EOF
# Everything apt reads or writes is under $A; the status file is empty so
# nothing counts as installed.
: >"$A/status"
APT=(-o "Dir::Etc::sourcelist=$A/sources.list" -o Dir::Etc::sourceparts=-
	-o "Dir::State::Lists=$A/lists" -o "Dir::Cache=$A/cache" -o "Dir::State::status=$A/status"
	-o Dir::Etc::preferences=/dev/null -o Dir::Etc::preferencesparts=-
	-o APT::Architecture=arm64 -o APT::Architectures=arm64 -o Debug::NoLocking=1
	-o APT::Sandbox::User=root)

if [ -n "${ARM64_HEADERS_ONLY:-}" ]; then
	ROOTS=(libxen-dev linux-libc-dev)
else
	ROOTS=(xen-hypervisor-4.17-arm64 xen-utils-4.17 xen-utils-common libxen-dev linux-libc-dev busybox-static libc6 libgcc-s1 dash dpkg)
fi
SKIP=" python3 python3-minimal python3.11 python3.11-minimal udev ucf debconf cdebconf perl-base
 init-system-helpers systemd libsystemd0 libudev1 base-passwd tzdata media-types
 libc-dev-bin libc6-dev libcrypt-dev rpcsvc-proto libnsl-dev libtirpc-dev
 initramfs-tools linux-base kmod lsb-base sysvinit-utils "

lists_ok() { ls "$A"/lists/*_dists_bookworm_InRelease >/dev/null 2>&1 && [ -z "$(find "$A/lists" -maxdepth 1 -name '*InRelease' -mtime +7)" ]; }
update() {
	say "apt-get update (private configuration, bookworm arm64)"
	apt-get "${APT[@]}" -q update >"$A/update.log" 2>&1 || { cat "$A/update.log" >&2; die "apt-get update failed"; }
}
lists_ok || update

resolve() {
	local queue=("${ROOTS[@]}") seen=" " p d kpkg=
	if [ -z "${ARM64_HEADERS_ONLY:-}" ]; then
		kpkg=$(apt-cache "${APT[@]}" depends linux-image-arm64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
		[ -n "$kpkg" ] || die "cannot resolve linux-image-arm64"
		queue+=("$kpkg")
	fi
	while ((${#queue[@]})); do
		p=${queue[0]}
		queue=("${queue[@]:1}")
		case "$seen" in *" $p "*) continue ;; esac
		seen="$seen$p "
		echo "$p"
		# headers, the kernel, dash and dpkg (for start-stop-daemon, which
		# links only libc): their dependencies are not needed here
		case "$p" in "$kpkg" | libxen-dev | linux-libc-dev | dash | dpkg) continue ;; esac
		for d in $(apt-cache "${APT[@]}" depends --no-recommends --no-suggests --no-conflicts \
			--no-breaks --no-replaces --no-enhances "$p" 2>/dev/null |
			awk '/^ *(Pre)?Depends:/ {n=$2; if (n !~ /^</) print n}'); do
			case "$SKIP" in *" $d "*) continue ;; esac
			queue+=("$d")
		done
	done
}
# The resolution is kept until the lists or this script change.
SELF=$({ sha256sum <"$0"; echo "${ARM64_HEADERS_ONLY:-}"; } | sha256sum | cut -c1-16)
if [ -s "$CACHE/packages-$SELF" ] && [ -z "$(find "$A/lists" -maxdepth 1 -name '*InRelease' -newer "$CACHE/packages-$SELF")" ]; then
	PKGS=$(cat "$CACHE/packages-$SELF")
else
	say "resolving dependencies (apt-cache, arm64)"
	PKGS=$(resolve | sort -u)
fi
missing=()
for p in $PKGS; do ls "$DEBS/${p}_"*.deb >/dev/null 2>&1 || missing+=("$p"); done
if ((${#missing[@]})); then
	say "downloading ${#missing[@]} packages: ${missing[*]}"
	(cd "$DEBS" && apt-get "${APT[@]}" -q download "${missing[@]}" >"$A/download.log" 2>&1) || {
		update
		(cd "$DEBS" && apt-get "${APT[@]}" -q download "${missing[@]}" >"$A/download.log" 2>&1) ||
			{ cat "$A/download.log" >&2; die "apt-get download failed"; }
	}
fi
echo "$PKGS" >"$CACHE/packages-$SELF"
for d in "$DEBS"/*.deb; do
	s=$ROOTFS/.$(basename "$d").done
	[ -f "$s" ] || { dpkg -x "$d" "$ROOTFS" && touch "$s"; }
done
[ -f "$ROOTFS/usr/include/xen/sys/privcmd.h" ] || die "no arm64 libxen-dev headers in $ROOTFS"
if [ -z "${ARM64_HEADERS_ONLY:-}" ]; then
	ls "$ROOTFS"/boot/xen-4.17*arm64* >/dev/null 2>&1 || die "no Xen 4.17 arm64 in $ROOTFS/boot"
	[ -x "$ROOTFS/usr/lib/xen-4.17/bin/xl" ] || die "no xl 4.17 in $ROOTFS"
fi
say "arm64 root $ROOTFS ($(echo $PKGS | wc -w) packages)"
echo "$ROOTFS"
