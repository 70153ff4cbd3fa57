# Sourced by pv.sh and pvh.sh: boot Xen in QEMU with dom0's initramfs,
# follow the @@E2E lines dom0 prints on the serial console, and judge them.
#
# boot_and_judge CPU DESCRIPTION
#   uses: TIMEOUT LOG CACHE PKGROOT KVER W, say, die; optional after_boot
#   (called once the boot is over, before the verdict is printed); optional
#   boot_qemu (runs QEMU in the foreground, serial log into $LOG, within
#   $TIMEOUT), which replaces the x86 machine below (CPU is then unused).
#   sets: HOSTMARKS (file: "<host seconds> <@@E2E line>" per line seen).
#
# One emulated CPU (E2E_SMP, default 1): with `-smp 2 dom0_max_vcpus=2` PVH
# guests died under TCG on a fresh machine (QEMU 7.2, Xen 4.17.7, Debian
# 6.1.192; ../shared/facts.md from the repository root, "The PVH end-to-end run on a fresh
# machine"): our stub triple-faulted 0.1 s after xenstored started in 1 of 3
# boots, Debian's PVH domU triple-faulted or oopsed in kernel entry
# (ENTRY_TRAMPOLINE stack guard page) in 4 of 5; thread=single and QEMU 10
# did not cure it. With `-smp 1` and `dom0_max_vcpus=1` 5 of 5 PVH boots
# passed (3 idle, 2 beside two busy loops), and faster (90-98 s vs ~145 s).
# build/e2e/README.md has the 10-run record with this setting.
E2E_SMP=${E2E_SMP:-1}
boot_and_judge() {
	local cpu=$1 what=$2
	local xen_cmdline="console=com1 com1=115200,8n1 dom0_mem=768M,max:768M dom0_max_vcpus=$E2E_SMP loglvl=all guest_loglvl=all noreboot console_timestamps=boot"
	local dom0_cmdline="console=hvc0 earlyprintk=xen loglevel=5"
	mkdir -p "$(dirname "$LOG")"
	: >"$LOG"
	TB=$(date +%s.%N)
	if declare -F boot_qemu >/dev/null; then
		# the caller's own machine (arm-daemon.sh: qemu-system-aarch64)
		say "booting $what; log $LOG"
		boot_qemu </dev/null 2>"$W/qemu.err" &
	else
		say "booting Xen (qemu64,$cpu, -smp $E2E_SMP), $what; log $LOG"
		timeout "$TIMEOUT" qemu-system-x86_64 -machine q35 -accel tcg,thread=multi -cpu "qemu64,$cpu" -m 1536 -smp $E2E_SMP \
			-display none -monitor none -serial "file:$LOG" -no-reboot \
			-kernel "$CACHE/xen" -append "$xen_cmdline" \
			-initrd "$PKGROOT/boot/vmlinuz-$KVER $dom0_cmdline,$W/dom0.cpio.gz" </dev/null 2>"$W/qemu.err" &
	fi
	local qpid=$! rc=0
	seen=0
	HOSTMARKS=$W/hostmarks
	: >"$HOSTMARKS"
	while kill -0 $qpid 2>/dev/null; do
		sleep 1
		boot_progress
		if grep -aq '^@@E2E DONE' "$LOG"; then
			sleep 3
			kill $qpid 2>/dev/null || true
		fi
	done
	wait $qpid || rc=$?
	boot_progress
	say "qemu exited rc=$rc after $(host)s"
	[ -s "$W/qemu.err" ] && { echo "qemu stderr:"; cat "$W/qemu.err"; }

	local C done_line npass nfail ok=1
	C=$(tr -d '\r' <"$LOG")
	done_line=$(grep -a '^@@E2E DONE' <<<"$C" || true)
	npass=$(grep -ac '^@@E2E PASS' <<<"$C" || true)
	nfail=$(grep -ac '^@@E2E FAIL' <<<"$C" || true)
	if [ -z "$done_line" ]; then
		ok=0
		if ! grep -aq 'Xen version' <<<"$C"; then
			say "Xen never printed its banner: QEMU could not boot it (rc=$rc; see qemu stderr above)"
		elif ! grep -aq '^@@E2E MARK DOM0-UP' <<<"$C"; then
			say "dom0 never reached /init (rc=$rc)"
		else
			say "no DONE line: boot timed out (${TIMEOUT}s) or crashed (rc=$rc)"
		fi
	fi
	((nfail == 0)) || ok=0
	((npass > 0)) || ok=0
	if declare -F after_boot >/dev/null; then after_boot; fi
	# Which Xen ran (dom0 prints `xl info`'s xen_version line).
	say "$(grep -a -m1 '^xen_version' <<<"$C" || echo 'xen_version: not printed (dom0 never ran xl info)')"
	say "boot took $(host)s host time (QEMU start to exit)"
	if ((ok == 0)); then
		echo "----- last 100 lines of the Xen/dom0 serial log (without the stub's console) -----"
		grep -av '^\[stub' <<<"$C" | tail -100
		echo "----- last 100 lines of the stub's console -----"
		grep -a '^\[stub' <<<"$C" | tail -100
		echo "-----"
		grep -a '^@@E2E \(PASS\|FAIL\)' <<<"$C" || true
		die "$npass passed, $nfail failed (log $LOG)"
	fi
	grep -a '^@@E2E \(PASS\|FAIL\)' <<<"$C"
	say "passed: $npass checks (log $LOG)"
}

# host prints the host seconds since the boot started.
host() { awk -v a="$TB" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}'; }

# boot_progress prints the serial log's new @@E2E (and landmark) lines.
boot_progress() {
	local lines n
	lines=$(tr -d '\r' <"$LOG" | grep -a -E '^@@E2E|\(XEN\) Std\. Loglevel|Linux version' || true)
	n=$(printf '%s' "$lines" | grep -c . || true)
	if ((n > seen)); then
		printf '%s\n' "$lines" | tail -n +$((seen + 1)) | while IFS= read -r l; do
			printf '   [host %6ss] %s\n' "$(host)" "$l"
			printf '%s %s\n' "$(host)" "$l" >>"$HOSTMARKS"
		done
		seen=$n
	fi
}
