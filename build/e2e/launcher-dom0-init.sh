#!/bin/busybox sh
# dom0's /init for build/e2e/launcher-pvh.sh: starts the stub domain with
# xenstore-stubdom-launch (our launcher) and checks xenstore from dom0.
#   @@E2E MARK/PASS/FAIL/DONE lines for the host script; [stub] console lines.
. /e2e/dom0-lib.sh # the preamble and helpers every dom0 /init shares
STUB_MEM=64
STUB_PARAM=
LFLAGS=
DOMU=1
. /e2e/config
CONS=/var/log/xen/xenstore-domain-console.log
finish_hook() {
	[ -f $CONS ] && sed 's/^/[stub] /' $CONS
	[ -f /var/log/xen/guest-Xenstore.log ] && sed 's/^/[stub-xc] /' /var/log/xen/guest-Xenstore.log
}
mark DOM0-UP
xen_modules

# --- error paths that need no stub
xenstore-stubdom-launch --memory 8 >/tmp/e.log 2>&1
rc=$?
if [ $rc = 2 ] && grep -q -- '--kernel missing' /tmp/e.log; then pass usage-error; else fail usage-error "rc=$rc $(head -1 /tmp/e.log)"; fi
if [ -z "$LFLAGS" ]; then
	xenstore-stubdom-launch --kernel /stub/image.cpio.gz --memory 64 >/tmp/e.log 2>&1
	rc=$?
	if [ $rc = 1 ] && grep -q 'no PVH entry note' /tmp/e.log; then pass no-pvh-note-error; else fail no-pvh-note-error "rc=$rc $(cat /tmp/e.log | head -3)"; fi
fi

mark LAUNCH-START
T0=$(up)
timeout 200 xenstore-stubdom-launch $LFLAGS --kernel /stub/kernel --ramdisk /stub/image.cpio.gz \
	--memory $STUB_MEM --param "$STUB_PARAM" --timeout 180s >/tmp/launch.out 2>/tmp/launch.log
rc=$?
T1=$(up)
mark LAUNCH-END
grep -v -E 'xc: detail|xencall|domainbuilder' /tmp/launch.log | tail -30
xstool doms
if [ $rc = 0 ]; then
	pass launcher "rc=$rc serving_after=$(dt $T1 $T0)s domid=$(cat /tmp/launch.out)"
else
	fail launcher "rc=$rc after $(dt $T1 $T0)s"
	sleep 3
	finish
fi
STUBID=$(cat /tmp/launch.out)
if [ "$(cat /var/run/xen/xenstored.pid)" = "domid:$STUBID" ]; then pass pid-file; else fail pid-file "'$(cat /var/run/xen/xenstored.pid)'"; fi
# Alive: exists, not shut down, not dying (xstool alive).
if l=$(xstool alive $STUBID) && echo "$l" | grep -q "^dom=$STUBID xenstore=1 hvm=$([ -z "$LFLAGS" ] && echo 1 || echo 0) "; then pass domain-type "$l"; else fail domain-type "$l"; fi

out=$(T xenstore-ls / 2>&1)
rc=$?
echo "$out" | head -40
if [ $rc = 0 ] && echo "$out" | grep -q '^tool'; then pass xenstore-ls; else fail xenstore-ls "rc=$rc"; fi
T xenstore-write /e2e/x y
v=$(T xenstore-read /e2e/x 2>&1)
if [ "$v" = y ]; then pass write-read; else fail write-read "read='$v'"; fi
v=$(T xenstore-read /tool/xenstored/domid)
if [ "$v" = "$STUBID" ]; then pass tool-xenstored-domid; else fail tool-xenstored-domid "'$v'"; fi
v=$(T xenstore-read /local/domain/$STUBID/name)
if [ "$v" = Xenstore ]; then pass stub-name; else fail stub-name "'$v'"; fi

# A second launch must refuse.
xenstore-stubdom-launch --kernel /stub/kernel --memory 64 $LFLAGS >/tmp/e.log 2>&1
rc=$?
if [ $rc = 1 ] && grep -q 'already running' /tmp/e.log; then pass second-launch-refused "$(head -1 /tmp/e.log)"; else fail second-launch-refused "rc=$rc $(head -2 /tmp/e.log)"; fi

T xen-init-dom0
# Which Xen runs: `xl info`'s xen_version line, as is, into the serial log.
T xl info >/tmp/xlinfo 2>&1
grep '^xen_version' /tmp/xlinfo || echo "xen_version: (xl info failed: $(tail -1 /tmp/xlinfo))"
out=$(T xl list 2>&1)
echo "$out"
if echo "$out" | grep -q '^Xenstore '; then pass xl-list "$(echo "$out" | grep '^Xenstore ' | tr -s ' ')"; else fail xl-list; fi

# xenconsoled takes the stub's console over; the drain stops.
xenconsoled --pid-file=/run/xen/xenconsoled.pid --log=guest --log-dir=/var/log/xen
sleep 4
if grep -q 'bound the console' $CONS; then pass console-handover "$(tail -1 $CONS)"; else fail console-handover "$(tail -2 $CONS)"; fi

if [ "$DOMU" = 1 ]; then
	mark CREATE-START
	T0=$(up)
	timeout 150 xl create /etc/xen/domu.cfg >/tmp/xl.log 2>&1
	rc=$?
	ID=$(xl domid domu 2>/dev/null)
	if [ $rc = 0 ] && [ -n "$ID" ] && xstool alive $ID >/dev/null; then pass xl-create "domid=$ID took=$(dt $(up) $T0)s"; else fail xl-create "rc=$rc $(tail -3 /tmp/xl.log)"; fi
	i=0
	while [ $i -lt 90 ] && ! grep -q DOMU-DONE /var/log/xen/guest-domu.log 2>/dev/null; do sleep 1; i=$((i + 1)); done
	if grep -q DOMU-DONE /var/log/xen/guest-domu.log 2>/dev/null; then pass domu-userspace "after ${i}s"; else fail domu-userspace; fi
	timeout 60 xl destroy domu
	rc=$?
	sleep 3
	if [ $rc = 0 ] && ! T xenstore-list /local/domain | grep -qx "$ID"; then pass xl-destroy-released; else fail xl-destroy-released "rc=$rc $(T xenstore-list /local/domain | tr '\n' ' ')"; fi
fi
xl list
xstool doms
if l=$(xstool alive $STUBID); then pass stub-alive-at-end "$l"; else fail stub-alive-at-end "$l"; fi
mark ALL-DONE
finish
