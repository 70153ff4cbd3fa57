# Sourced (bash) by build/e2e/pvh.sh and build/e2e/perf-c.sh: the PVH domU
# both boots create, and its ring measurements (issue 15).

# pvh_domu_image DIR EXTRA: the PVH domU into dom0's overlay DIR:
# /guest/pvh.cpio.gz (busybox, xsprobe, build/e2e/pvh-guest-init.sh as
# /init) and /etc/xen/domupvh.cfg (Debian's kernel from the base, 256 MiB,
# 1 vCPU; EXTRA: more words for its kernel command line).
#   uses: W (scratch; $W/xsprobe built), PKGROOT, HERE
pvh_domu_image() {
	local o=$1 extra=$2 g=$W/g
	mkdir -p $g/bin $g/proc $g/sys $g/dev $o/guest $o/etc/xen
	cp "$(ls "$PKGROOT/bin/busybox" "$PKGROOT/usr/bin/busybox" 2>/dev/null | head -1)" $g/bin/busybox
	cp "$W/xsprobe" $g/bin/xsprobe
	cp "$HERE/pvh-guest-init.sh" $g/init
	chmod +x $g/init
	(cd $g && find . | cpio -o -H newc --quiet | gzip -1) >$o/guest/pvh.cpio.gz
	cat >$o/etc/xen/domupvh.cfg <<EOF
name = "domupvh"
type = "pvh"
kernel = "/guest/vmlinuz"
ramdisk = "/guest/pvh.cpio.gz"
extra = "console=hvc0 loglevel=4 $extra"
memory = 256
vcpus = 1
on_poweroff = "destroy"
on_crash = "preserve"
EOF
}

# perf_results LOG [WHO]: the "KIND ops_per_s=R ops=N secs=S errors=0" lines of
# dom0's @@E2E PERF-RESULT[-WHO] lines in the serial log LOG (perf_step in
# build/e2e/dom0-lib.sh; a kind that failed has none).
perf_results() {
	tr -d '\r' <"$1" | sed -n "s/^@@E2E PERF-RESULT${2:+-$2} //p"
}

# perf_cpu LOG [WHO]: "KIND server_ms=X domu_ms=Y dom0_ms=Z" of dom0's
# @@E2E PERF-CPU[-WHO] lines (Xen's CPU time per operation).
perf_cpu() {
	tr -d '\r' <"$1" | sed -n "s/^@@E2E PERF-CPU${2:+-$2} \([^ ]* server_ms=[0-9.]* domu_ms=[0-9.]* dom0_ms=[0-9.]*\).*/\1/p"
}

# perf_calibration LOG [WHO]: "loop_s=B,A" of dom0's @@E2E PERF-CALIBRATE[-WHO] line.
perf_calibration() {
	tr -d '\r' <"$1" | sed -n "s/^@@E2E PERF-CALIBRATE${2:+-$2} \(loop_s=[0-9.,]*\).*/\1/p" | tail -1
}
