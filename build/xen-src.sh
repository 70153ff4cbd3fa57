# Sourced (bash) by build/xen422.sh and build/xen422-arm64.sh, the two
# cached builds from Xen 4.22.0's tarball: the tarball found and checked,
# missing build packages installed, the source unpacked, and build steps
# run each with its own log. The cache key and what is kept stay with each
# script (this file is not part of any key: it changes no build's output).
#
# xen_src_init NAME CACHE: sets ROOT, SRCDIR, TARBALL (XEN_TARBALL or
#   ../shared/xen-src/xen-4.22.0.tar.xz), C (the cache directory), T0, say
#   and die (messages "== NAME [Ns]: ..." on stderr); checks the tarball
#   against SHA256SUMS (unless XEN_TARBALL names another) and sets SUM.
# xen_src_deps PKG...: apt-get installs the packages dpkg lacks.
# xen_src_unpack SUBDIR NOTE: a fresh $C/build (B) with the tarball
#   unpacked; S is the tree's SUBDIR ("" or "/xen").
# step NAME CMD...: runs CMD in $S, output in $B/NAME.log; on failure the
#   log's last 40 lines and the step's name, then exit 1.

xen_src_init() {
	XS_NAME=$1
	ROOT=$(cd "$(dirname "$0")/.." && pwd)
	SRCDIR=$(cd "$ROOT/.." && pwd)/shared/xen-src
	TARBALL=${XEN_TARBALL:-$SRCDIR/xen-4.22.0.tar.xz}
	C=$2
	T0=$SECONDS
	[ -f "$TARBALL" ] || die "no Xen source tarball at $TARBALL (set XEN_TARBALL)"
	SUM=$(sha256sum "$TARBALL" | cut -d' ' -f1)
	if [ -z "${XEN_TARBALL:-}" ]; then
		local want
		want=$(awk '$2 == "xen-4.22.0.tar.xz" {print $1}' "$SRCDIR/SHA256SUMS")
		[ "$SUM" = "$want" ] || die "$TARBALL: sha256 $SUM, SHA256SUMS says $want"
	fi
}
say() { printf '== %s [%ss]: %s\n' "$XS_NAME" "$((SECONDS - T0))" "$*" >&2; }
die() { printf '== %s [%ss]: FAIL: %s\n' "$XS_NAME" "$((SECONDS - T0))" "$*" >&2; exit 1; }

xen_src_deps() {
	local miss=() p
	for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || miss+=("$p"); done
	((${#miss[@]})) || return 0
	say "installing ${miss[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get install -y -qq --no-install-recommends "${miss[@]}" >/dev/null 2>&1 || {
		apt-get update -qq && apt-get install -y -qq --no-install-recommends "${miss[@]}" >/dev/null
	}
}

xen_src_unpack() {
	B=$C/build
	rm -rf "$B" && mkdir -p "$B"
	say "unpacking $(basename "$TARBALL") (sha256 ${SUM:0:16}…)$2"
	tar -xJf "$TARBALL" -C "$B"
	S=$B/xen-4.22.0$1
}

step() {
	local name=$1 t=$SECONDS
	shift
	say "$name"
	(cd "$S" && "$@") >"$B/$name.log" 2>&1 || {
		echo "----- last 40 lines of $B/$name.log -----" >&2
		tail -40 "$B/$name.log" >&2
		die "step $name failed (log $B/$name.log)"
	}
	say "$name done in $((SECONDS - t)) s"
}
