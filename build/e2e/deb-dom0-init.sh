#!/bin/busybox sh
# dom0's /init in build/e2e/deb.sh (make e2e-deb): the stock path. This
# script starts nothing of the product itself: it prepares the root (mounts,
# Xen's modules, busybox only where Debian's unpacked packages have no
# program), installs the package with Debian's dpkg, runs Debian's
# unmodified /etc/init.d/xen start (xen-utils-common), checks what that
# started, and removes the package again with dpkg -r.
#   @@E2E MARK/PASS/FAIL/INFO/STEP/DONE lines for the host script;
#   [stub] / [stub-xc] the stub's console (launcher's drainer / xenconsoled),
#   [domu] the domU's console, [watch] dom0's watcher.
if [ -z "${E2E_DASH:-}" ]; then
	# Debian's programs first: busybox fills in only what no unpacked
	# package has (its sh, start-stop-daemon, dpkg, tar... applets must not
	# shadow them), and the rest of this script runs under dash: busybox's
	# sh runs its own applets before PATH (its dpkg applet is not dpkg).
	# Debian 13's packages install into /usr only (merged /usr; the base's
	# /bin and /sbin are directories): link /bin/X and /sbin/X to them, as
	# merged /usr's /bin -> usr/bin would (/bin/sh for #!/bin/sh).
	if /bin/busybox grep -q '^XENV=4.20' /e2e/config; then
		for d in bin sbin; do
			for f in /usr/$d/*; do
				[ -e /$d/${f##*/} ] || /bin/busybox ln -s $f /$d/${f##*/}
			done
		done
	fi
	for a in $(/bin/busybox --list); do
		for d in /usr/sbin /usr/bin /sbin /bin; do
			[ -e $d/$a ] && continue 2
		done
		/bin/busybox ln -s busybox /bin/$a
	done
	export E2E_DASH=1
	exec /bin/dash /init
fi
DOM0_BUSYBOX=0 # linked above, where no package has the program
DOM0_DEBIAN_RUN=1
. /e2e/dom0-lib.sh # the preamble and helpers every dom0 /init shares
# root's PATH on Debian, then Xen's tools (xl, xstool) for the checks; the
# loader's own library path (the package must work without one).
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:$(echo /usr/lib/xen-4.*/bin)
unset LD_LIBRARY_PATH
XENV=4.17
DEBFILE=
. /e2e/config

XB=/usr/lib/xen-$XENV/bin
CONS=/var/log/xen/xenstore-domain-console.log
XCCONS=/var/log/xen/guest-Xenstore.log
DOMUCONS=/var/log/xen/guest-domud.log
divs() { dpkg-divert --list | grep -c 'by xsstub$'; }
# Debian's own daemons under their names: regular ELF files, not links.
debian_daemons_back() {
	for f in $XB/oxenstored $XB/xenstored; do
		[ -f $f ] && [ ! -L $f ] && [ ! -e $f.distrib ] && head -c4 $f | grep -q ELF || return 1
	done
}
STUBID=
stub_alive() { [ -n "$STUBID" ] && xstool alive $STUBID | grep -q "^dom=$STUBID xenstore=1 .*state=alive"; }

mark DOM0-UP
follow $CONS "[stub]"
follow $XCCONS "[stub-xc]"
follow $DOMUCONS "[domu]"
# Xen's modules (Debian's script modprobes them; this root has no
# /lib/modules tree, so they are loaded here) and nothing else: the script
# mounts xenfs itself.
xen_modules nomount
echo "dom0 root: /init runs under $(readlink /proc/$$/exe); /bin/sh -> $(readlink /bin/sh); $(command -v start-stop-daemon); $(command -v dpkg): $(dpkg --version | head -1)"
dpkg-query -W -f '${Package} ${Version} ${Status}\n' | sed 's/^/dpkg-query: /'
# make e2e-deb-switch: the switch of a running C xenstored (build/e2e/deb-switch-steps.sh)
if [ "${DEB_MODE:-}" = switch ]; then
	. /e2e/deb-switch-steps.sh
	finish
fi
if pidof xenstored oxenstored xsstub-xenstored xenconsoled >/dev/null; then fail no-daemons-before "$(ps | grep -E 'xenstored|xenconsoled')"; fi

# --- 1. dpkg -i
step "1: dpkg -i $DEBFILE (Xen's packages are unpacked, not configured: --force-depends)"
mark DPKG-I-START
T0=$(up)
timeout 300 /usr/bin/dpkg -i --force-depends $DEBFILE >/tmp/dpkg-i.log 2>&1
rc=$?
T1=$(up)
mark DPKG-I-END
sed 's/^/[dpkg] /' /tmp/dpkg-i.log
st=$(dpkg-query -W -f '${Status} ${Version}' xsstub 2>&1)
if [ $rc = 0 ] && echo "$st" | grep -q '^install ok installed'; then
	pass dpkg-install "rc=0 in $(dt $T1 $T0)s: xsstub $st"
else
	fail dpkg-install "rc=$rc status '$st'"
	finish
fi
dpkg-divert --list | grep xsstub
n=$(divs)
bad=
for f in $XB/oxenstored $XB/xenstored; do
	[ "$(readlink -f $f)" = /usr/libexec/xsstub/xenstored ] || bad="$bad $f->$(readlink -f $f)"
	[ -f $f.distrib ] && [ ! -L $f.distrib ] || bad="$bad $f.distrib-missing"
done
if [ "$n" = 4 ] && [ -z "$bad" ]; then
	pass diversions "4 by xsstub; $XB/{oxenstored,xenstored} -> /usr/libexec/xsstub/xenstored, Debian's at *.distrib"
else
	fail diversions "$n diversions;$bad"
fi
grep -E '^XSSTUB_(MODE|MEMORY|DOMAIN_TYPE)=' /etc/default/xsstub
grep -E '^#?XENSTORED=' /etc/default/xen

# --- 2. Debian's /etc/init.d/xen start, as shipped
step "2: /etc/init.d/xen start (xen-utils-common's script, unmodified; XENSTORED unset)"
mark INITD-START
T0=$(up)
timeout 240 /etc/init.d/xen start >/tmp/initd.log 2>&1
rc=$?
T1=$(up)
mark INITD-END
# The launcher's domain-builder chatter stays out of the serial log.
grep -v -E 'xc: detail|xencall|domainbuilder' /tmp/initd.log | sed 's/^/[init.d] /'
pidf=$(cat /run/xenstore.pid 2>/dev/null)
STUBID=${pidf#domid:}
echo "pid file /run/xenstore.pid: '$pidf'; processes: $(ps -o pid,args | grep -E 'xenstore|xenconsoled' | grep -v grep | tr -s ' ' | tr '\n' ';')"
if [ $rc = 0 ] && grep -q 'xsstub: starting the xenstore stub domain' /tmp/initd.log && [ "$pidf" = "domid:$STUBID" ] && [ -n "$STUBID" ]; then
	pass initd-start "rc=0 after $(dt $T1 $T0)s; the script ran our wrapper, which started the stub: $(grep -o 'xsstub: xenstore stub domain.*' /tmp/initd.log | head -1)"
else
	fail initd-start "rc=$rc after $(dt $T1 $T0)s; pid file '$pidf'"
	xl dmesg 2>&1 | tail -20
	finish
fi
if l=$(xstool alive $STUBID) && echo "$l" | grep -q "^dom=$STUBID xenstore=1 hvm=1 .*state=alive"; then
	pass stub-is-pvh "$l"
else
	fail stub-is-pvh "$l"
fi
p=$(pidof oxenstored xenstored xsstub-xenstored)
if [ -z "$p" ]; then pass no-dom0-xenstored "no xenstore daemon process in dom0"; else fail no-dom0-xenstored "pids $p"; fi
n=$(pidof xenconsoled | wc -w)
if [ "$n" = 1 ]; then pass initd-xenconsoled "the script went on to start xenconsoled (pid $(pidof xenconsoled))"; else fail initd-xenconsoled "$n xenconsoled processes"; fi
xen_version

# --- 3. dom0's tools, served by the stub
step "3: dom0's tools: xenstore-ls/read/write, xenstore-control connections, /tool/xenstored/domid, xl list"
out=$(T xenstore-ls / 2>&1)
rc=$?
echo "$out" | head -30
if [ $rc = 0 ] && echo "$out" | grep -q '^tool' && echo "$out" | grep -q '^local'; then pass xenstore-ls "$(echo "$out" | wc -l) lines"; else fail xenstore-ls "rc=$rc"; fi
v=$(T xenstore-read /local/domain/0/name 2>&1)
if [ "$v" = Domain-0 ]; then pass xen-init-dom0 "/local/domain/0/name = $v (the script's xen-init-dom0)"; else fail xen-init-dom0 "'$v'"; fi
T xenstore-write /e2e/x y
rc=$?
v=$(T xenstore-read /e2e/x 2>&1)
if [ $rc = 0 ] && [ "$v" = y ]; then pass write-read; else fail write-read "write rc=$rc read='$v'"; fi
out=$(T xenstore-control connections 2>&1)
rc=$?
echo "$out" | head -10
if [ $rc = 0 ] && echo "$out" | grep -q 'domid 0 priv true'; then pass xenstore-control-connections "$(echo "$out" | grep 'domid 0 ' | cut -c1-80)"; else fail xenstore-control-connections "rc=$rc '$out'"; fi
v=$(T xenstore-read /tool/xenstored/domid 2>&1)
if [ "$v" = "$STUBID" ] && stub_alive; then
	pass tool-xenstored-domid "dom$v is the domain Xen flags as xenstore domain, alive: $(xstool alive $v)"
else
	fail tool-xenstored-domid "'$v' (pid file says $STUBID): $(xstool alive ${v:-0})"
fi
out=$(T xl list 2>&1)
echo "$out"
if echo "$out" | grep -q "^Xenstore  *$STUBID " && xl_state_ok Xenstore; then
	pass xl-list "$(echo "$out" | grep '^Xenstore ' | tr -s ' ')"
else
	fail xl-list "$(echo "$out" | head -4 | tr '\n' ';')"
fi

# --- 4. a PV domU: created and destroyed through the stub
step "4: xl create of a PV domU (its kernel's xenbus talks to the stub), xl destroy, @releaseDomain"
(xenstore-watch @releaseDomain 2>&1 | while IFS= read -r l; do
	echo "[watch] $l t=$(up)"
	echo "$l" >>/tmp/watch.log
done) &
sleep 2
mark CREATE-START
T0=$(up)
timeout 200 xl create /etc/xen/domud.cfg >/tmp/xl.log 2>&1
rc=$?
T1=$(up)
mark CREATE-END
tail -3 /tmp/xl.log
ID=$(xl domid domud 2>/dev/null)
if [ $rc = 0 ] && [ -n "$ID" ] && l=$(xstool alive $ID); then
	pass xl-create "domid=$ID took=$(dt $T1 $T0)s $l"
else
	fail xl-create "rc=$rc domid='$ID' after $(dt $T1 $T0)s"
	tail -20 /tmp/xl.log
fi
i=0
while [ $i -lt 150 ] && ! dcons $DOMUCONS | grep -q '^DOMU-DONE'; do sleep 1; i=$((i + 1)); done
l=$(dcons $DOMUCONS | grep '^GUEST name=' | tail -1)
if [ -n "$ID" ] && [ "$l" = "GUEST name=domud domid=$ID" ]; then
	pass guest-xenbus-reads-name "'$l' ($(dt $(up) $T1)s after create returned)"
else
	fail guest-xenbus-reads-name "'$l'"
	dcons $DOMUCONS | tail -20
fi
v=$(T xenstore-read /local/domain/$ID/data/hello 2>&1)
c=$(T xenstore-control connections 2>&1 | grep "domid $ID ")
if [ "$v" = from-the-guest ] && [ -n "$c" ]; then pass guest-write-seen-by-dom0 "/local/domain/$ID/data/hello; the stub's connection: $(echo "$c" | cut -c1-60)"; else fail guest-write-seen-by-dom0 "'$v'; connections: $c"; fi
rel0=$(grep -c '^@releaseDomain' /tmp/watch.log)
mark DESTROY-START
T0=$(up)
timeout 60 xl destroy domud
rc=$?
T1=$(up)
mark DESTROY-END
i=0
while [ $i -lt 20 ] && [ "$(grep -c '^@releaseDomain' /tmp/watch.log)" -le "$rel0" ]; do sleep 1; i=$((i + 1)); done
rel1=$(grep -c '^@releaseDomain' /tmp/watch.log)
sleep 1
l=$(T xenstore-list /local/domain | tr '\n' ' ')
if [ $rc = 0 ] && [ "$rel1" -gt "$rel0" ] && [ -n "$ID" ] && ! echo " $l " | grep -q " $ID "; then
	pass xl-destroy-releaseDomain "took=$(dt $T1 $T0)s; @releaseDomain fired $((rel1 - rel0))x; /local/domain: $l"
else
	fail xl-destroy-releaseDomain "rc=$rc @releaseDomain $rel0 -> $rel1; /local/domain: $l"
fi

# --- 5. xenconsoled has the stub's console
step "5: xenconsoled took the stub's console over from the launcher's drainer"
l=$(dcons $CONS | grep 'bound the console' | tail -1)
pids=$(ps -o pid,args | grep 'xenstore-stubdom-launch' | grep -v grep | awk '{print $1}' | tr '\n' ' ')
echo "console log: $(wc -l <$CONS 2>/dev/null) lines; xenconsoled's guest-Xenstore.log: $(ls -la $XCCONS 2>&1)"
if [ -n "$l" ] && [ -z "$pids" ]; then
	pass console-xenconsoled "$l; no drainer left"
else
	fail console-xenconsoled "drain line '$l'; launcher processes '$pids'"
	dcons $CONS | tail -5
fi
n=$(dcons $CONS | grep -ci panic)
e=$(dcons $CONS | grep -c 'level=ERROR')
if [ "$n" = 0 ] && [ "$e" = 0 ] && dcons $CONS | grep -q xenstored; then
	pass stub-console-clean "$(dcons $CONS | wc -l) lines, no panic, no level=ERROR"
else
	fail stub-console-clean "panic lines $n, level=ERROR lines $e"
fi

# --- 6. dpkg -r: Debian's xenstored back; the running stub serves on
step "6: dpkg -r xsstub: diversions removed, Debian's oxenstored/xenstored back; the stub keeps serving until reboot"
mark DPKG-R-START
T0=$(up)
timeout 120 /usr/bin/dpkg -r xsstub >/tmp/dpkg-r.log 2>&1
rc=$?
T1=$(up)
mark DPKG-R-END
sed 's/^/[dpkg] /' /tmp/dpkg-r.log
st=$(dpkg-query -W -f '${Status}' xsstub 2>&1)
if [ $rc = 0 ] && echo "$st" | grep -q 'deinstall ok config-files'; then pass dpkg-remove "rc=0 in $(dt $T1 $T0)s: $st"; else fail dpkg-remove "rc=$rc status '$st'"; fi
n=$(divs)
if [ "$n" = 0 ] && debian_daemons_back && [ ! -e /usr/libexec/xsstub/xenstored ]; then
	pass debian-xenstored-back "0 diversions; $XB/oxenstored, $XB/xenstored are Debian's ELF files again; conffile /etc/default/xsstub $([ -f /etc/default/xsstub ] && echo kept || echo GONE)"
else
	fail debian-xenstored-back "$n diversions; $(ls -la $XB/oxenstored* $XB/xenstored* 2>&1 | tr -s ' ' | tr '\n' ';')"
fi
v=$(T xenstore-read /e2e/x 2>&1)
T xenstore-write /e2e/after-remove yes
v2=$(T xenstore-read /e2e/after-remove 2>&1)
if [ "$v" = y ] && [ "$v2" = yes ] && stub_alive; then
	pass serving-after-remove "dom$STUBID still answers reads and writes: $(xstool alive $STUBID)"
else
	fail serving-after-remove "read '$v' '$v2'; $(xstool alive ${STUBID:-0})"
fi
xl list
mark ALL-DONE
finish
