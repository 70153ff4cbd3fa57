#!/usr/bin/env bash
# Dom0less on Xen 4.22 for arm64 (make e2e-arm-dom0less): no dom0. Xen,
# cross-built from ../shared/xen-src (build/xen422-arm64.sh), builds three
# domains from the device tree at boot in qemu-system-aarch64 (TCG):
#   domid 1  our xenstore domain: capabilities = <0x4> (DOMAIN_CAPS_XENSTORE),
#            xen,enhanced = "no-xenstore" (Xen's hypervisor node, so Linux
#            finds Xen, but no store page: it is the store); our small arm64
#            kernel (build/kernel-arm64.sh) or Debian's with its Xen modules
#            (E2E_STUB_KERNEL), /init = dom0less-stub-init.sh (busybox),
#            which runs our arm64 xenstored with --stubdom and no --event;
#   domid 2, 3  xen,enhanced = "enabled" domUs (Xen allocates their store
#            page and an event channel unbound for the xenstore domain, and
#            sets the ring to XENSTORE_RECONNECT); Debian's kernel, busybox,
#            xsprobe; /init = dom0less-domu-init.sh as writer and reader;
#            the writer is the control domain (capabilities = <0x1>) and
#            live-updates the store through its ring (the new daemon, our
#            arm64 xenstored, is in its initramfs).
# Every domain has a vpl011 console, which Xen prints on its own serial
# console as "(dN) ..." lines.
#
# Boot: QEMU loads Xen as -kernel; `-device loader` puts the kernel and two
# initramfs images in memory; the device tree is QEMU's own (dumpdtb) with
# /chosen/domU* nodes added by this script (dtc), passed back with -dtb.
#
# Checks (from the serial log): Xen 4.22 booted dom0less, the stub found
# itself and the control domain (2) and introduced domains 2 and 3, both
# domUs' xenbus came up in their homes, the writer set a DOMID_ANY read
# permission, the reader read the node, was refused the writer's other node
# and a control-only request; the writer live-updated the store, is still
# the control domain after it (the new daemon found the roles again), the
# reader still reads, and the writer saw @releaseDomain/<reader> fire when
# the reader powered off; the stub's xenstored is alive at the end. Prints the boot timeline (host seconds and
# Xen's timestamps) and the stub's memory.
#
# Environment:
#   E2E_TIMEOUT    seconds for the boot (default 600)
#   E2E_LOG        serial log (default images/e2e-arm-dom0less.log)
#   E2E_NOBUILD=1  use bin/arm64/xenstored as it is
#   E2E_SMP        emulated CPUs (default 1)
#   E2E_STUB_INIT=image|go|busybox  the stub's initramfs: make image-arm64's
#                  images/arm64/xenstore-stubdom.cpio.gz, the one users get
#                  (default: our xenstored is /init, package stubdom/boot,
#                  PID 1, no shell; needs the small kernel; built unless
#                  E2E_NOBUILD=1 and it exists), go (the same made here from
#                  bin/arm64/xenstored), or busybox running xenstored and
#                  printing its memory every 10 s
#   E2E_MEM_STUB, E2E_MEM_DOMU   MiB per domain (default 64 for the small
#                  stub kernel, 256 for Debian's; domUs 256)
#   E2E_LOGLEVEL   the guests' kernel loglevel (default 5)
#   E2E_STUB_KERNEL=small|debian  the stub's kernel: our own small one
#                  (default; build/kernel-arm64.sh, kernel/stubdom-arm64.config:
#                  the Xen devices built in, no modules, no network; ~7 min
#                  cold, cached), or Debian's arm64 kernel with its Xen modules
#   E2E_VERBOSE=1  xenstored --verbose in the stub, its trace on the console
#   E2E_XEN_KEYS=K E2E_XEN_KEYS_AT=S  type Xen debug keys K (e.g. "e": event
#                  channels) on its console S seconds into the boot (default 60)
#   XSSTUB_CACHE   cache outside the tree (default /var/cache/xsstub)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
HERE=$ROOT/build/e2e
TIMEOUT=${E2E_TIMEOUT:-600}
LOG=${E2E_LOG:-$ROOT/images/e2e-arm-dom0less.log}
SMP=${E2E_SMP:-1}
MEM_DOMU=${E2E_MEM_DOMU:-256}
LOGLEVEL=${E2E_LOGLEVEL:-5}
T0=$(date +%s.%N)
since() { awk -v a="$T0" -v b="$(date +%s.%N)" 'BEGIN{printf "%6.1f", b-a}'; }
say() { printf '== e2e-arm-dom0less [%ss]: %s\n' "$(since)" "$*"; }
die() { printf '== e2e-arm-dom0less [%ss]: FAIL: %s\n' "$(since)" "$*" >&2; exit 1; }

# --- 1. host tools, Debian's arm64 packages, Xen 4.22 for arm64
. "$HERE/arm-host.sh"
arm_host qemu-system-aarch64:qemu-system-arm dtc:device-tree-compiler cpio:cpio
KERNEL=$PKGROOT/boot/vmlinuz-$KVER
[ -f "$KERNEL" ] || die "no arm64 kernel in $PKGROOT"
STUBK=${E2E_STUB_KERNEL:-small}
MEM_STUB=${E2E_MEM_STUB:-$([ "$STUBK" = small ] && echo 64 || echo 256)}
case $STUBK in
debian) SKERNEL=$KERNEL ;;
small)
	say "our small arm64 stub kernel: build/kernel-arm64.sh"
	SKERNEL=$(bash "$ROOT/build/kernel-arm64.sh" | tail -1)
	[ -s "$SKERNEL" ] || die "no small arm64 kernel"
	;;
*) die "E2E_STUB_KERNEL=$STUBK: debian or small" ;;
esac
say "Xen 4.22 for arm64: build/xen422-arm64.sh"
XEN=$(bash "$ROOT/build/xen422-arm64.sh" | tail -1)
[ -f "$XEN" ] || die "no Xen 4.22 arm64 image"

# --- 2. our xenstored and xsprobe for arm64
W=$(mktemp -d)
QPID=
cleanup() {
	[ -n "$QPID" ] && kill "$QPID" 2>/dev/null
	rm -rf "$W"
}
trap cleanup EXIT
XSD=$ROOT/bin/arm64/xenstored
if [ -z "${E2E_NOBUILD:-}" ] || [ ! -x "$XSD" ]; then
	say "make build-arm64 (bin/arm64/xenstored); xsprobe for arm64"
	make -s -C "$ROOT" build-arm64
fi
(cd "$ROOT" && GOARCH=arm64 CGO_ENABLED=0 go build -trimpath -ldflags='-s -w -buildid=' -o "$W/xsprobe" ./build/e2e/xsprobe)
file "$XSD" | grep -q 'ARM aarch64' || die "$XSD is not an arm64 binary"

# --- 3. the two initramfs images
mkimg() { # DIR OUT
	(cd "$1" && find . | cpio -o -H newc --quiet | gzip -1) >"$2"
}
STUBINIT=${E2E_STUB_INIT:-image}
S=$W/stub
STUBCPIO=$W/stub.cpio.gz
mkdir -p $S/bin $S/modules
case $STUBINIT in
busybox)
	cp "$PKGROOT/bin/busybox" $S/bin/busybox
	cp "$XSD" $S/bin/xenstored
	cp "$HERE/dom0less-stub-init.sh" $S/init
	;;
go | image) # our xenstored is /init and stays PID 1; /bin/xenstored is itself
	[ "$STUBK" = small ] || die "E2E_STUB_INIT=$STUBINIT needs the small stub kernel (no modules to load)"
	cp "$XSD" $S/init
	ln -s ../init $S/bin/xenstored
	;;
*) die "E2E_STUB_INIT=$STUBINIT: image, go or busybox" ;;
esac
# Debian's kernel has the Xen devices as modules; the small one built in.
[ "$STUBK" = debian ] && for m in xen-privcmd xen-evtchn xen-gntdev; do
	f=$(find "$PKGROOT/lib/modules/$KVER" -name "$m.ko*" | head -1)
	[ -n "$f" ] || die "module $m not in the arm64 kernel"
	case "$f" in *.xz) xz -dc "$f" >$S/modules/$m.ko ;; *) cp "$f" $S/modules/$m.ko ;; esac
done
chmod +x $S/init
if [ "$STUBINIT" = image ]; then # the package's image (build/image.sh), as built
	STUBCPIO=$ROOT/images/arm64/xenstore-stubdom.cpio.gz
	if [ -z "${E2E_NOBUILD:-}" ] || [ ! -s "$STUBCPIO" ]; then
		say "make image-arm64 ($STUBCPIO)"
		make -s -C "$ROOT" image-arm64 >/dev/null
	fi
else
	mkimg $S "$STUBCPIO"
fi
U=$W/domu
mkdir -p $U/bin
cp "$PKGROOT/bin/busybox" $U/bin/busybox
cp "$W/xsprobe" $U/bin/xsprobe
cp "$XSD" $U/bin/xenstored-new # the daemon the writer live-updates the store to
cp "$HERE/dom0less-domu-init.sh" $U/init
chmod +x $U/init
mkimg $U "$W/domu.cpio.gz"
say "images: stub $(du -k "$STUBCPIO" | cut -f1) KiB (/init: $STUBINIT, $(ls $S/modules | wc -l) modules), domU $(du -k "$W/domu.cpio.gz" | cut -f1) KiB; domU kernel $KVER $(du -k "$KERNEL" | cut -f1) KiB, stub kernel ($STUBK) $(du -k "$SKERNEL" | cut -f1) KiB"

# --- 4. load addresses and the device tree
# RAM starts at 0x40000000; QEMU puts Xen at 0x40200000 and the device
# tree at 0x48000000 (RAM + 128 MiB): the modules go from 0x50000000 up,
# 2 MiB aligned. One kernel image serves the three domains (Xen takes a
# module named twice once).
MB=$((1 << 20))
align() { echo $((($1 + 2 * MB - 1) & ~(2 * MB - 1))); }
KADDR=$((0x50000000))
KSIZE=$(stat -c %s "$KERNEL")
SKADDR=$KADDR SKSIZE=$KSIZE
if [ "$SKERNEL" != "$KERNEL" ]; then
	SKADDR=$(align $((KADDR + KSIZE)))
	SKSIZE=$(stat -c %s "$SKERNEL")
fi
SADDR=$(align $((SKADDR + SKSIZE)))
SSIZE=$(stat -c %s "$STUBCPIO")
UADDR=$(align $((SADDR + SSIZE)))
USIZE=$(stat -c %s "$W/domu.cpio.gz")
hex() { printf '0x%x' "$1"; }
cells() { printf '<0x0 0x%x 0x0 0x%x>' "$1" "$2"; } # address, size: 2 cells each
QEMU_MACHINE=(-machine virt,virtualization=on,gic-version=3 -cpu cortex-a57 -smp "$SMP" -m 1536)
# xsm=dummy: Xen on Arm defaults to XSM SILO, which lets a domain share
# grants and event channels only with a control domain (4.22's silo.c asks
# is_control_domain, not is_xenstore_domain): under it the xenstore domain
# cannot map a domU's ring (GNTST error, seen as gntdev's mmap EINVAL) nor
# bind its event channel. The dummy policy is x86's default.
XEN_CMDLINE="console=dtuart xsm=dummy loglvl=all guest_loglvl=all noreboot console_timestamps=boot"
qemu-system-aarch64 "${QEMU_MACHINE[@]/virtualization=on,gic-version=3/virtualization=on,gic-version=3,dumpdtb=$W/virt.dtb}" \
	-display none -monitor none -serial none -kernel "$XEN" -append "$XEN_CMDLINE" >/dev/null 2>&1 || true
[ -s "$W/virt.dtb" ] || die "QEMU did not dump its device tree"
dtc -q -I dtb -O dts "$W/virt.dtb" >"$W/virt.dts"
domnode() { # NAME MEM_MIB EXTRA_PROPS BOOTARGS RAMDISK_ADDR RAMDISK_SIZE KERNEL_ADDR KERNEL_SIZE
	cat <<EOF
		$1 {
			compatible = "xen,domain";
			#address-cells = <0x2>;
			#size-cells = <0x2>;
			memory = <0x0 $(hex $(($2 * 1024)))>;
			cpus = <0x1>;
			vpl011;
$3
			module@$(printf '%x' $7) {
				compatible = "multiboot,kernel", "multiboot,module";
				reg = $(cells $7 $8);
				bootargs = "$4";
			};
			module@$(printf '%x' $5) {
				compatible = "multiboot,ramdisk", "multiboot,module";
				reg = $(cells $5 $6);
			};
		};
EOF
}
# The Go init takes xenstored's options from xenstored.NAME on the kernel
# command line (stubdom/boot/initcfg); no socket without a network.
STUBARGS=
[ "$STUBINIT" != busybox ] && [ "${E2E_VERBOSE:-0}" = 1 ] && STUBARGS=" xenstored.verbose"
{
	domnode domU-xenstore "$MEM_STUB" $'\t\t\tcapabilities = <0x4>;\n\t\t\txen,enhanced = "no-xenstore";' \
		"console=ttyAMA0 loglevel=$LOGLEVEL xen_privcmd.unrestricted=1 e2e.verbose=${E2E_VERBOSE:-0}$STUBARGS" $SADDR $SSIZE $SKADDR $SKSIZE
	domnode domU-writer "$MEM_DOMU" $'\t\t\tcapabilities = <0x1>;\n\t\t\txen,enhanced = "enabled";' \
		"console=ttyAMA0 loglevel=$LOGLEVEL e2e.role=writer e2e.peer=3" $UADDR $USIZE $KADDR $KSIZE
	domnode domU-reader "$MEM_DOMU" $'\t\t\txen,enhanced = "enabled";' \
		"console=ttyAMA0 loglevel=$LOGLEVEL e2e.role=reader e2e.peer=2" $UADDR $USIZE $KADDR $KSIZE
} >"$W/domains.dtsi"
# Into /chosen, with its cell sizes for the domain nodes' parent.
# Xen reads its command line from xen,xen-bootargs (QEMU's -append only
# sets bootargs, which Xen 4.22 ignored here: its log levels stayed default).
awk -v inc="$W/domains.dtsi" -v cmdline="$XEN_CMDLINE" '
	/^\tchosen \{/ {
		print; print "\t\t#address-cells = <0x2>;"; print "\t\t#size-cells = <0x2>;"
		print "\t\txen,xen-bootargs = \"" cmdline "\";"; inchosen = 1; next
	}
	inchosen && /^\t\};/ { while ((getline l < inc) > 0) print l; inchosen = 0 }
	{ print }' "$W/virt.dts" >"$W/dom0less.dts"
grep -q 'domU-reader' "$W/dom0less.dts" || die "the domain nodes did not go into /chosen"
dtc -q -I dts -O dtb -o "$W/dom0less.dtb" "$W/dom0less.dts" || die "dtc refused the edited tree ($W/dom0less.dts)"
say "device tree: QEMU's own plus /chosen/domU-xenstore (caps 0x4), domU-writer (caps 0x1: control), domU-reader (xen,enhanced)"

# --- 5. boot
mkdir -p "$(dirname "$LOG")"
: >"$LOG"
say "booting Xen 4.22 dom0less (qemu-system-aarch64 virt, GICv3, cortex-a57, -smp $SMP), stub kernel $STUBK, /init $STUBINIT; log $LOG"
TB=$(date +%s.%N)
host() { awk -v a="$TB" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}'; }
SKLOADER=()
[ "$SKERNEL" != "$KERNEL" ] && SKLOADER=(-device "loader,file=$SKERNEL,addr=$(hex $SKADDR),force-raw=on")
SERIAL=(-serial "file:$LOG")
if [ -n "${E2E_XEN_KEYS:-}" ]; then # a pipe, to type on Xen's console
	mkfifo "$W/serial.in" "$W/serial.out"
	SERIAL=(-chardev "pipe,id=s0,path=$W/serial" -serial chardev:s0)
	cat "$W/serial.out" >>"$LOG" &
	(
		exec 3>"$W/serial.in"
		sleep "${E2E_XEN_KEYS_AT:-60}"
		for d in 2 3 xen; do # CTRL-a thrice moves the input on: DOM2, DOM3, Xen
			printf '\001\001\001' >&3
			sleep 1
		done
		printf '%s' "$E2E_XEN_KEYS" >&3
		sleep 100000
	) &
fi
timeout "$TIMEOUT" qemu-system-aarch64 "${QEMU_MACHINE[@]}" -accel tcg,thread=multi \
	-display none -monitor none "${SERIAL[@]}" -no-reboot \
	-dtb "$W/dom0less.dtb" -kernel "$XEN" -append "$XEN_CMDLINE" \
	-device loader,file="$KERNEL",addr=$(hex $KADDR),force-raw=on \
	"${SKLOADER[@]}" \
	-device loader,file="$STUBCPIO",addr=$(hex $SADDR),force-raw=on \
	-device loader,file="$W/domu.cpio.gz",addr=$(hex $UADDR),force-raw=on \
	</dev/null 2>"$W/qemu.err" &
QPID=$!
# The timeline: landmarks as they appear, with host seconds.
MARKS='Xen version|live-update: |\*\*\* LOADING DOMU|Booting Linux|Linux version|@@E2E|dom0less: |xenstored serving|serving rings only|xenbus|Power down|domain_crash|panic|Panic'
seen=0 done_at=
: >"$W/timeline"
while kill -0 $QPID 2>/dev/null; do
	sleep 1
	lines=$(tr -d '\r' <"$LOG" | grep -a -E "$MARKS" | grep -av '@@E2E STUB-MEM' || true)
	n=$(printf '%s' "$lines" | grep -c . || true)
	if ((n > seen)); then
		printf '%s\n' "$lines" | tail -n +$((seen + 1)) | while IFS= read -r l; do
			printf '   [host %6ss] %s\n' "$(host)" "$l" | tee -a "$W/timeline" | cut -c1-200
		done
		seen=$n
	fi
	if [ -z "$done_at" ] && grep -aq '@@E2E DONE' "$LOG"; then
		done_at=$(host)
		sleep 12 # one more STUB-MEM line after the domUs are done
		kill $QPID 2>/dev/null || true
	fi
done
: >"$W/qemu.err.keep"
grep -v 'terminating on signal 15' "$W/qemu.err" >"$W/qemu.err.keep" || true
mv "$W/qemu.err.keep" "$W/qemu.err"
wait $QPID || true
QPID=
say "QEMU ran $(host)s host time"
[ -s "$W/qemu.err" ] && { echo "qemu stderr:"; cat "$W/qemu.err"; }

# --- 6. checks and verdict
C=$(tr -d '\r' <"$LOG")
pass=0 fail=0
check() { # NAME OK DETAIL
	if [ "$2" = 1 ]; then
		echo "@@E2E PASS $1 $3"
		pass=$((pass + 1))
	else
		echo "@@E2E FAIL $1 $3"
		fail=$((fail + 1))
	fi
}
has() { grep -aq -E -- "$1" <<<"$C" && echo 1 || echo 0; }
check xen-4.22-dom0less "$(has 'Xen version 4\.22')" "$(grep -a -m1 -o 'Xen version [^ ]*' <<<"$C" || true)"
check stub-is-xenstore-domain "$(has 'dom0less: no control domain.s ring given.*store=1 priv=2')" "(control: the writer, by its capability)"
for d in 2 3; do
	check "stub-introduced-dom$d" "$(has "dom0less: introduced.*domid=$d ")" \
		"$(grep -a -m1 -o "dom0less: introduced.*domid=$d .*" <<<"$C" | cut -c1-120 || true)"
done
# The domUs' own checks, from their consoles ("(dN) @@E2E PASS ...").
for name in domu-xenbus-writer domu-xenbus-reader domu-home-writer domu-home-reader writer-sets-domid-any reader-reads-peer reader-refused-secret \
	reader-unprivileged control-live-update control-kept-after-update reader-reads-after-update control-sees-peer-release; do
	l=$(grep -a -m1 "@@E2E \(PASS\|FAIL\) $name" <<<"$C" || true)
	case "$l" in *"@@E2E PASS $name"*) ok=1 ;; *) ok=0 ;; esac
	check "$name" $ok "${l#*"$name"}"
done
# The new daemon took the state over and found the roles again.
check stub-live-updated "$([ "$(grep -ac 'live-update: serving the state handed over' <<<"$C")" = 1 ] &&
	[ "$(grep -ac 'dom0less: no control domain.s ring given.*store=1 priv=2' <<<"$C")" = 2 ] && echo 1 || echo 0)" \
	"$(grep -a -m1 -o 'live-update: serving the state handed over.*' <<<"$C" | cut -c1-100 || true)"
last_mem=$(grep -a '@@E2E STUB-MEM' <<<"$C" | tail -1 || true)
if [ "$STUBINIT" = busybox ]; then
	alive=$([ -n "$last_mem" ] && ! grep -q 'rss_kb=gone' <<<"$last_mem" && ! grep -aq 'FAIL stub-xenstored-alive' <<<"$C" && echo 1 || echo 0)
else # PID 1: its end would be the stub kernel's panic
	alive=$(grep -aq 'xenstored failed\|Attempted to kill init' <<<"$C" && echo 0 || echo 1)
fi
check stub-xenstored-alive-at-end "$alive" ""
check no-guest-crash "$(grep -aqiE 'Kernel panic|domain_crash|Oops' <<<"$C" && echo 0 || echo 1)" ""
# Debian's kernel in the stub warns once when gntdev's first ballooned page
# makes xen-balloon hot-add memory (vmemmap_populate); counted, not failed.
echo "@@E2E INFO kernel-warnings $(grep -ac 'WARNING: CPU' <<<"$C" || true) ($(grep -a -m1 -o 'WARNING: CPU.*' <<<"$C" | cut -c1-80 || true))"

echo "----- boot timeline (host seconds; Xen's [s] timestamps on its lines) -----"
grep -a -E 'Xen version|LOADING DOMU|Booting Linux|MARK|dom0less: |live-update: |PASS|FAIL|DONE|Power down' "$W/timeline" | cut -c1-200 || true
echo "----- the stub's memory (domain: ${MEM_STUB} MiB) -----"
grep -a '@@E2E STUB-MEM' <<<"$C" | sed -n '1p;$p' || true
grep -a -m1 'msg="first request answered"' <<<"$C" || true
grep -a -m1 -o 'msg="dom0less: serving".*' <<<"$C" || true
if ((fail > 0 || pass == 0)); then
	echo "----- last 100 lines of the serial log -----"
	tail -100 <<<"$C"
	die "$pass passed, $fail failed (log $LOG)"
fi
say "passed: $pass checks in $(awk -v a="$T0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.0f", b-a}') s (log $LOG)"
