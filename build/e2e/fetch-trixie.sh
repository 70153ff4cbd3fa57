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
CACHE=${XSSTUB_CACHE:-/var/cache/xsstub}/trixie
MIRROR=${TRIXIE_MIRROR:-http://deb.debian.org/debian}
A=$CACHE/apt
DEBS=$CACHE/debs
ROOTFS=$CACHE/root
say() { printf '== fetch-trixie: %s\n' "$*" >&2; }
die() { printf '== fetch-trixie: FAIL: %s\n' "$*" >&2; exit 1; }

mkdir -p "$A/lists/partial" "$A/cache/archives/partial" "$DEBS" "$ROOTFS"
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
[ -f "$KEYRING" ] || die "$KEYRING missing (package debian-archive-keyring)"
echo "deb [signed-by=$KEYRING] $MIRROR trixie main" >"$A/sources.list"
# Everything apt reads or writes is under $A; the host's status file is
# replaced by an empty one so nothing counts as installed.
: >"$A/status"
APT=(-o "Dir::Etc::sourcelist=$A/sources.list" -o Dir::Etc::sourceparts=-
	-o "Dir::State::Lists=$A/lists" -o "Dir::Cache=$A/cache" -o "Dir::State::status=$A/status"
	-o Dir::Etc::preferences=/dev/null -o Dir::Etc::preferencesparts=-
	-o APT::Architecture=amd64 -o APT::Architectures=amd64 -o Debug::NoLocking=1)

ROOTS=(xen-hypervisor-4.20-amd64 xen-utils-4.20 xen-utils-common libxen-dev busybox-static libc6 libgcc-s1)
SKIP=" python3 python3-minimal python3.13 python3.13-minimal udev ucf debconf cdebconf perl-base
 init-system-helpers systemd libsystemd0 libudev1 base-passwd tzdata media-types
 libc-dev-bin libc6-dev linux-libc-dev libcrypt-dev rpcsvc-proto libnsl-dev libtirpc-dev
 initramfs-tools linux-base kmod "

# Lists: fetched once, refreshed when older than 7 days or a download fails.
lists_ok() { ls "$A"/lists/*_dists_trixie_InRelease >/dev/null 2>&1 && [ -z "$(find "$A/lists" -maxdepth 1 -name '*InRelease' -mtime +7)" ]; }
update() {
	say "apt-get update (private configuration, trixie)"
	apt-get "${APT[@]}" -q update >"$A/update.log" 2>&1 || { cat "$A/update.log" >&2; die "apt-get update failed"; }
}
lists_ok || update

resolve() {
	local kpkg
	kpkg=$(apt-cache "${APT[@]}" depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
	[ -n "$kpkg" ] || die "cannot resolve trixie's linux-image-amd64"
	local queue=("${ROOTS[@]}" "$kpkg") seen=" " p d
	while ((${#queue[@]})); do
		p=${queue[0]}
		queue=("${queue[@]:1}")
		case "$seen" in *" $p "*) continue ;; esac
		seen="$seen$p "
		echo "$p"
		# the kernel's own dependencies are initramfs tooling: not followed
		[ "$p" = "$kpkg" ] && continue
		for d in $(apt-cache "${APT[@]}" depends --no-recommends --no-suggests --no-conflicts \
			--no-breaks --no-replaces --no-enhances "$p" 2>/dev/null |
			awk '/^ *(Pre)?Depends:/ {n=$2; if (n !~ /^</) print n}'); do
			case "$SKIP" in *" $d "*) continue ;; esac
			queue+=("$d")
		done
	done
}
# The resolution (one apt-cache call per package, ~30 s) is kept until the
# lists or this script's contents change (a fresh clone's mtime says nothing).
SELF=$(sha256sum "$0" | cut -c1-16)
if [ -s "$CACHE/packages" ] && [ "$(cat "$CACHE/packages.key" 2>/dev/null)" = "$SELF" ] &&
	[ -z "$(find "$A/lists" -maxdepth 1 -name '*InRelease' -newer "$CACHE/packages")" ]; then
	PKGS=$(cat "$CACHE/packages")
else
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
echo "$PKGS" >"$CACHE/packages"
echo "$SELF" >"$CACHE/packages.key"
for d in "$DEBS"/*.deb; do
	s=$ROOTFS/.$(basename "$d").done
	[ -f "$s" ] || { dpkg -x "$d" "$ROOTFS" && touch "$s"; }
done
ls "$ROOTFS"/boot/xen-4.20*.gz >/dev/null 2>&1 || die "no Xen 4.20 in $ROOTFS/boot"
[ -x "$ROOTFS/usr/lib/xen-4.20/bin/xl" ] || die "no xl 4.20 in $ROOTFS"
say "trixie root $ROOTFS ($(echo $PKGS | wc -w) packages)"
echo "$ROOTFS"
