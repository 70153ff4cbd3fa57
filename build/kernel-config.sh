# Sourced (bash) by build/kernel.sh and build/kernel-arm64.sh: the stub
# kernel's configuration, made and checked the same way for x86 and arm64.
# Both scripts hash this file into their cache keys (it decides the
# .config), beside themselves.
#
# kconfig_make SRC OBJ FRAGMENT [MAKEVAR...]: `make tinyconfig` in OBJ, the
#   fragment merged on top (merge_config.sh -m), `make olddefconfig`; then
#   every fragment line is checked against the final .config: a
#   CONFIG_X=v line must be there as is, a "# CONFIG_X is not set" line
#   must have no CONFIG_X=. A line Kconfig dropped or changed (a missing
#   dependency, usually) is printed and the build stops (die).
kconfig_make() {
	local src=$1 obj=$2 frag=$3 line sym got bad=()
	shift 3
	mkdir -p "$obj"
	make -s -C "$src" O="$obj" "$@" tinyconfig >/dev/null
	"$src/scripts/kconfig/merge_config.sh" -m -O "$obj" "$obj/.config" "$frag" >"$obj/merge.log" 2>&1 ||
		{ cat "$obj/merge.log" >&2; die "merge_config.sh failed"; }
	make -s -C "$src" O="$obj" "$@" olddefconfig >/dev/null
	while IFS= read -r line; do
		case $line in
		CONFIG_*=*)
			sym=${line%%=*}
			got=$(grep -E "^($sym=|# $sym is not set\$)" "$obj/.config" || true)
			[ "$got" = "$line" ] || bad+=("$line (got: ${got:-absent})")
			;;
		"# CONFIG_"*" is not set")
			sym=${line#\# }
			sym=${sym%% *}
			got=$(grep -E "^$sym=" "$obj/.config" || true)
			[ -z "$got" ] || bad+=("$line (got: $got)")
			;;
		esac
	done <"$frag"
	if ((${#bad[@]})); then
		printf '== fragment line not in the final .config: %s\n' "${bad[@]}" >&2
		die "${#bad[@]} line(s) of $(basename "$frag") dropped or changed by Kconfig (missing dependency?)"
	fi
}
