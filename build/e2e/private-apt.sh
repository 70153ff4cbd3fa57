# Sourced (bash) by build/e2e/fetch-trixie.sh and build/e2e/fetch-arm64.sh:
# Debian packages fetched with a private apt configuration and unpacked
# with `dpkg -x`, never through the host's apt sources, status or dpkg
# architectures. Everything apt reads or writes is under $CACHE/apt: its
# own sources.list, lists, cache, and an empty status file (so nothing
# counts as installed); the packages go to $CACHE/debs, the unpacked tree
# to $CACHE/root.
#
# papt_init NAME CACHE ARCH [-o OPTION]...: sets CACHE, A, DEBS, ROOTFS,
#   APT (apt-get/apt-cache options; the extra ones appended), say, die;
#   the caller then writes $A/sources.list (signed by $KEYRING).
# papt_lists SUITE: the lists, fetched once and again when older than 7
#   days (or when a download fails).
# papt_fetch KERNEL-META NOFOLLOW KEYEXTRA ROOT...: resolves ROOT... and,
#   unless KERNEL-META is empty, the kernel package it depends on, following
#   Depends (apt-cache depends; PreDepends too, first alternative) except
#   into the packages in $SKIP (" a b c "), and not from the packages in
#   NOFOLLOW (" a b ", nor from the kernel: initramfs tooling); downloads
#   what $DEBS lacks, unpacks every .deb into $ROOTFS once. Sets PKGS. The
#   resolution (one apt-cache call per package, ~30 s) is kept in
#   $CACHE/packages-KEY until the lists change; KEY hashes the calling
#   script, this file and KEYEXTRA.

papt_init() {
	PAPT_NAME=$1 CACHE=$2
	local arch=$3
	shift 3
	A=$CACHE/apt
	DEBS=$CACHE/debs
	ROOTFS=$CACHE/root
	mkdir -p "$A/lists/partial" "$A/cache/archives/partial" "$DEBS" "$ROOTFS"
	KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
	[ -f "$KEYRING" ] || die "$KEYRING missing (package debian-archive-keyring)"
	: >"$A/status"
	APT=(-o "Dir::Etc::sourcelist=$A/sources.list" -o Dir::Etc::sourceparts=-
		-o "Dir::State::Lists=$A/lists" -o "Dir::Cache=$A/cache" -o "Dir::State::status=$A/status"
		-o Dir::Etc::preferences=/dev/null -o Dir::Etc::preferencesparts=-
		-o APT::Architecture="$arch" -o APT::Architectures="$arch" -o Debug::NoLocking=1 "$@")
}
say() { printf '== %s: %s\n' "$PAPT_NAME" "$*" >&2; }
die() { printf '== %s: FAIL: %s\n' "$PAPT_NAME" "$*" >&2; exit 1; }

papt_update() {
	say "apt-get update (private configuration, $PAPT_SUITE)"
	apt-get "${APT[@]}" -q update >"$A/update.log" 2>&1 || { cat "$A/update.log" >&2; die "apt-get update failed"; }
}

papt_lists() {
	PAPT_SUITE=$1
	ls "$A"/lists/*_dists_"$1"_InRelease >/dev/null 2>&1 &&
		[ -z "$(find "$A/lists" -maxdepth 1 -name '*InRelease' -mtime +7)" ] || papt_update
}

# papt_resolve KERNEL-META NOFOLLOW ROOT...: the package names, one a line.
papt_resolve() {
	local meta=$1 nofollow=$2 kpkg= p d seen=" "
	shift 2
	local queue=("$@")
	if [ -n "$meta" ]; then
		kpkg=$(apt-cache "${APT[@]}" depends "$meta" 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
		[ -n "$kpkg" ] || die "cannot resolve $meta"
		queue+=("$kpkg")
	fi
	while ((${#queue[@]})); do
		p=${queue[0]}
		queue=("${queue[@]:1}")
		case "$seen" in *" $p "*) continue ;; esac
		seen="$seen$p "
		echo "$p"
		[ "$p" = "$kpkg" ] && continue
		case "$nofollow" in *" $p "*) continue ;; esac
		for d in $(apt-cache "${APT[@]}" depends --no-recommends --no-suggests --no-conflicts \
			--no-breaks --no-replaces --no-enhances "$p" 2>/dev/null |
			awk '/^ *(Pre)?Depends:/ {n=$2; if (n !~ /^</) print n}'); do
			case "$SKIP" in *" $d "*) continue ;; esac
			queue+=("$d")
		done
	done
}

papt_fetch() {
	local meta=$1 nofollow=$2 key p d s missing=()
	key=$({ cat "$0" "${BASH_SOURCE[0]}"; echo "$3"; } | sha256sum | cut -c1-16)
	shift 3
	if [ -s "$CACHE/packages-$key" ] && [ -z "$(find "$A/lists" -maxdepth 1 -name '*InRelease' -newer "$CACHE/packages-$key")" ]; then
		PKGS=$(cat "$CACHE/packages-$key")
	else
		say "resolving dependencies (apt-cache, $PAPT_SUITE)"
		PKGS=$(papt_resolve "$meta" "$nofollow" "$@" | sort -u)
	fi
	for p in $PKGS; do ls "$DEBS/${p}_"*.deb >/dev/null 2>&1 || missing+=("$p"); done
	if ((${#missing[@]})); then
		say "downloading ${#missing[@]} packages: ${missing[*]}"
		(cd "$DEBS" && apt-get "${APT[@]}" -q download "${missing[@]}" >"$A/download.log" 2>&1) || {
			papt_update
			(cd "$DEBS" && apt-get "${APT[@]}" -q download "${missing[@]}" >"$A/download.log" 2>&1) ||
				{ cat "$A/download.log" >&2; die "apt-get download failed"; }
		}
	fi
	echo "$PKGS" >"$CACHE/packages-$key"
	for d in "$DEBS"/*.deb; do
		s=$ROOTFS/.$(basename "$d").done
		[ -f "$s" ] || { dpkg -x "$d" "$ROOTFS" && touch "$s"; }
	done
}
