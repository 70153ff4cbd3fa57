# Sourced (bash) by build/e2e/arm-daemon.sh and build/e2e/arm-dom0less.sh:
# the host side both Arm boots start from.
#
# arm_host CMD:PKG...: installs, with the host's apt, each package whose
#   command is missing (qemu-system-aarch64:qemu-system-arm ...); then
#   fetches Debian 12's arm64 packages (build/e2e/fetch-arm64.sh, a private
#   apt configuration) and sets PKGROOT (the unpacked root) and KVER (its
#   newest kernel). Uses HERE, say, die.
arm_host() {
	local need=() t
	export DEBIAN_FRONTEND=noninteractive
	for t in "$@"; do command -v "${t%%:*}" >/dev/null || need+=("${t#*:}"); done
	if ((${#need[@]})); then
		say "installing ${need[*]}"
		apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null 2>&1 || {
			apt-get update -q >/dev/null
			apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null
		}
	fi
	say "Debian 12 arm64 packages: build/e2e/fetch-arm64.sh"
	PKGROOT=$(bash "$HERE/fetch-arm64.sh" | tail -1)
	[ -d "$PKGROOT" ] || die "no arm64 root"
	KVER=$(ls "$PKGROOT/lib/modules" | sort -V | tail -1)
}
