# Sourced by the dom0 inits that start a stub (pvh-dom0-init.sh,
# dom0-init.sh; copied to /e2e/stubinfo.sh): what the stub says about its
# memory and its boot. Needs T (a timed command) and pass/fail from the init.

# boot_timeline FILE: the stub's boot milestones in guest uptime, from its
# console: init, xenstored's start, its first answer; and the Go limit.
boot_timeline() {
	tr -d '\r' <"$1" | awk '
		/xsinit: uptime [0-9.]+s: init/ { sub(/s:.*/, "", $3); init = $3 }
		/xsinit: uptime [0-9.]+s: xenstored/ { sub(/s:.*/, "", $3); xs = $3 }
		/xsinit: GOMEMLIMIT=/ { split($2, a, /[=]/); lim = a[2] }
		/first request answered/ { for (i = 1; i <= NF; i++) if ($i ~ /^uptime=/) { v = $i; sub(/uptime=/, "", v); sub(/s$/, "", v); first = v } }
		END { printf "kernel=0s init=%ss xenstored=%ss first-reply=%ss gomemlimit=%s\n", init, xs, first, lim }'
}

# stub_memory_and_boot CONSOLE: prints the stub's size (xl list), where its
# memory goes from inside (CONTROL memreport's system line: the domain's
# /proc/meminfo) and its boot timeline; the meminfo line is a check.
stub_memory_and_boot() {
	echo "@@E2E INFO stub-memory $(T xl list 2>/dev/null | awk '$1 == "Xenstore" {print "Mem=" $3 "MiB"}') (xl list)"
	mr=$(T xenstore-control memreport 2>&1)
	echo "$mr"
	sysl=$(echo "$mr" | grep '^system (kB):')
	if [ -n "$sysl" ]; then pass stub-meminfo "${sysl#system (kB): }"; else fail stub-meminfo "no system line in memreport: $(echo "$mr" | tail -2)"; fi
	echo "@@E2E INFO stub-meminfo kB: ${sysl#system (kB): }"
	echo "@@E2E INFO stub-boot-timeline $(boot_timeline "$1")"
}
