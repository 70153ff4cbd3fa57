# Sourced by build/e2e/deb-dom0-init.sh (under dash) when /e2e/config says
# DEB_MODE=switch (make e2e-deb-switch): the operator's path of
# packaging/README.md, "Switching a running dom0 daemon". Debian's C
# xenstored serves (started by Debian's /etc/init.d/xen) with a PV domU
# before xsstub is installed; dpkg -i diverts C's binary while it runs;
# xsstub-switch to-ours; dpkg -r hands the store back to C through the
# package's prerm (xsstub-switch to-c) and postrm gives C its name back.
# Same pid throughout; the caller's finish ends the boot.
C=$XB/xenstored
OURS=/usr/sbin/xsstub-xenstored
dpid() { cat /run/xenstore.pid 2>/dev/null; }
dexe() { readlink /proc/$(dpid)/exe 2>/dev/null; }
# serves WHAT: dom0's socket and kernel ring answer, the pid is unchanged
# and runs $2.
serves() {
	v=$(T xenstore-read /e2e/sock 2>&1)
	v2=$(XENSTORED_PATH=/dev/xen/xenbus T xenstore-read /e2e/sock 2>&1)
	if [ "$(dpid)" = "$PID" ] && [ "$(dexe)" = "$2" ] && [ "$v" = y ] && [ "$v2" = y ]; then
		pass serves-$1 "pid $PID runs $(dexe); socket and kernel ring read '$v'"
	else
		fail serves-$1 "pid file '$(dpid)' (was $PID) runs '$(dexe)' (want $2); socket '$v' ring '$v2'"
	fi
}

step "s1: Debian's /etc/init.d/xen start with C xenstored (XENSTORED=$C), xsstub not installed"
grep -E '^XENSTORED=' /etc/default/xen
timeout 120 /etc/init.d/xen start >/tmp/initd.log 2>&1
rc=$?
sed 's/^/[init.d] /' /tmp/initd.log
PID=$(dpid)
if [ $rc = 0 ] && [ -n "$PID" ] && [ "$(dexe)" = $C ]; then
	pass initd-start-c "rc=0; pid $PID runs $(dexe)"
else
	fail initd-start-c "rc=$rc pid '$PID' exe '$(dexe)'"
	return 0
fi
T xenstore-write /e2e/sock y
(xenstore-watch @releaseDomain 2>&1 | while IFS= read -r l; do echo "$l" >>/tmp/watch.log; done) &
sleep 1
timeout 150 xl create /etc/xen/domud.cfg >/tmp/xl.log 2>&1
rc=$?
ID=$(xl domid domud 2>/dev/null)
i=0
while [ $i -lt 120 ] && ! dcons $DOMUCONS | grep -q '^GUEST name='; do sleep 1; i=$((i + 1)); done
l=$(dcons $DOMUCONS | grep '^GUEST name=' | tail -1)
if [ $rc = 0 ] && [ "$l" = "GUEST name=domud domid=$ID" ]; then pass domu-on-c "'$l'"; else fail domu-on-c "rc=$rc '$l'"; fi

step "s2: dpkg -i while C serves: C's binary diverted under it"
timeout 300 /usr/bin/dpkg -i --force-depends $DEBFILE >/tmp/dpkg-i.log 2>&1
rc=$?
sed 's/^/[dpkg] /' /tmp/dpkg-i.log
if [ $rc = 0 ] && [ "$(divs)" = 4 ] && [ "$(dexe)" = $C.distrib ]; then
	pass dpkg-install-c-running "rc=0, 4 diversions; the running C is now $(dexe)"
else
	fail dpkg-install-c-running "rc=$rc, $(divs) diversions, exe '$(dexe)'"
fi
out=$(T xsstub-switch status 2>&1)
echo "$out"
if echo "$out" | grep -q "runs $C.distrib (c)"; then pass switch-status-c "$out"; else fail switch-status-c "'$out'"; fi

step "s3: xsstub-switch to-ours"
out=$(timeout 120 xsstub-switch to-ours 2>&1)
rc=$?
echo "$out" | sed 's/^/[xsstub-switch] /'
if [ $rc = 0 ]; then pass switch-to-ours "$(echo "$out" | grep 'done:')"; else fail switch-to-ours "exit $rc"; fi
serves ours $OURS
T xenstore-control connections 2>&1 | head -4

step "s4: dpkg -r xsstub: prerm hands the store back to C (xsstub-switch to-c), postrm gives C its name back"
timeout 120 /usr/bin/dpkg -r xsstub >/tmp/dpkg-r.log 2>&1
rc=$?
sed 's/^/[dpkg] /' /tmp/dpkg-r.log
if [ $rc = 0 ] && grep -q 'xsstub-switch: done: pid' /tmp/dpkg-r.log && [ "$(divs)" = 0 ] && debian_daemons_back; then
	pass dpkg-remove-to-c "rc=0; prerm switched; no diversion left; Debian's daemons under their names"
else
	fail dpkg-remove-to-c "rc=$rc $(divs) diversions; $(grep xsstub-switch /tmp/dpkg-r.log | tail -2 | tr '\n' ' ')"
fi
serves c-after-remove $C

step "s5: xl destroy on C: @releaseDomain; dom0's socket watcher lived through both switches"
rel0=$(grep -c '^@releaseDomain' /tmp/watch.log)
timeout 60 xl destroy domud
rc=$?
i=0
while [ $i -lt 15 ] && [ "$(grep -c '^@releaseDomain' /tmp/watch.log)" -le "$rel0" ]; do sleep 1; i=$((i + 1)); done
rel1=$(grep -c '^@releaseDomain' /tmp/watch.log)
if [ $rc = 0 ] && [ "$rel1" -gt "$rel0" ] && [ "$(pidof xenstore-watch | wc -w)" = 1 ]; then
	pass destroy-on-c "@releaseDomain fired $((rel1 - rel0))x to the watcher set before the switches"
else
	fail destroy-on-c "rc=$rc @releaseDomain $rel0 -> $rel1; xenstore-watch: $(pidof xenstore-watch)"
fi
