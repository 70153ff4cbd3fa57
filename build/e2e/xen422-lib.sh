# Sourced (busybox sh) by dom0's /init in every boot: Xen 4.22's toolstack
# features against the store that serves dom0 (ours, stub or dom0 daemon).
# The host scripts put it at /e2e/xen422-lib.sh. Needs pass, fail, T and
# xsprobe in PATH; every function is a no-op unless the hypervisor is 4.22.
#
#   xen422_domu_cfg CFG   add xenstore_quota= and xenstore_feature_mask= to
#                         a domU's xl config (before xl create)
#   xen422_checks ID      xl info -x; xl xenstore-quota-get/-set, global and
#                         for domain ID; ID's quota and features as its
#                         config set them
XEN422_NODES=1500   # the domU's nodes quota, from its config
XEN422_MASK=0x1     # the domU's xenstore_feature_mask (reconnection only)
is_xen422() {
	[ "$(cat /sys/hypervisor/version/major 2>/dev/null).$(cat /sys/hypervisor/version/minor 2>/dev/null)" = 4.22 ]
}
xen422_domu_cfg() {
	is_xen422 || return 0
	{
		echo "xenstore_quota = [ \"nodes=$XEN422_NODES\" ]"
		echo "xenstore_feature_mask = $XEN422_MASK"
	} >>"$1"
}
# quota_of NAME FILE: the value xl xenstore-quota-get printed for NAME.
quota_of() { awk -v n="$1" '$1 == n {print $2}' "$2"; }
xen422_checks() {
	is_xen422 || return 0
	id=$1
	# xl info -x: GET_FEATURE with an empty payload, the server's features.
	xf=$(T xl info -x 2>&1 | sed -n 's/^xenstore_features *: *//p')
	sf=$(T xsprobe getfeature 2>&1)
	if [ -n "$xf" ] && [ "$xf" = "$(printf '0x%08x' "$sf" 2>/dev/null)" ] && [ "$sf" != 0 ]; then
		pass xl-info-x "xenstore_features $xf (GET_FEATURE: $sf)"
	else
		fail xl-info-x "xl info -x: '$xf', GET_FEATURE: '$sf'"
	fi
	# Global quotas: read, change one, read back, restore.
	T xl xenstore-quota-get -g >/tmp/q-g 2>&1
	t0=$(quota_of transactions /tmp/q-g)
	if [ -n "$t0" ] && T xl xenstore-quota-set -g transactions=$((t0 + 3)) >/tmp/q-s 2>&1 &&
		T xl xenstore-quota-get -g >/tmp/q-g2 2>&1 && [ "$(quota_of transactions /tmp/q-g2)" = $((t0 + 3)) ] &&
		T xl xenstore-quota-set -g transactions=$t0 >>/tmp/q-s 2>&1; then
		pass xl-quota-global "transactions $t0 -> $((t0 + 3)) -> $t0 ($(wc -l </tmp/q-g) lines: $(awk 'NR > 2 {printf "%s=%s ", $1, $2}' /tmp/q-g))"
	else
		fail xl-quota-global "get: $(tr '\n' ' ' </tmp/q-g) set: $(tr '\n' ' ' </tmp/q-s 2>/dev/null) get after: $(tr '\n' ' ' </tmp/q-g2 2>/dev/null)"
	fi
	# The domU's own quota, from xenstore_quota= in its config; then set.
	T xl xenstore-quota-get $id >/tmp/q-d 2>&1
	n0=$(quota_of nodes /tmp/q-d)
	if [ "$n0" = $XEN422_NODES ]; then
		pass xl-cfg-xenstore-quota "dom$id nodes=$n0 from its config"
	else
		fail xl-cfg-xenstore-quota "dom$id: want nodes=$XEN422_NODES: $(tr '\n' ' ' </tmp/q-d)"
	fi
	T xl xenstore-quota-set $id nodes=$((XEN422_NODES + 100)) >/tmp/q-s 2>&1
	T xl xenstore-quota-get $id >/tmp/q-d2 2>&1
	n1=$(quota_of nodes /tmp/q-d2)
	p1=$(T xsprobe getquota $id nodes 2>&1)
	if [ "$n1" = $((XEN422_NODES + 100)) ] && [ "$p1" = "$n1" ]; then
		pass xl-quota-domain "dom$id nodes $n0 -> $n1 (GET_QUOTA: $p1)"
	else
		fail xl-quota-domain "dom$id after set nodes=$((XEN422_NODES + 100)): xl '$n1', GET_QUOTA '$p1', set said: $(tr '\n' ' ' </tmp/q-s)"
	fi
	# xenstore_feature_mask: the domain's features are the server's masked.
	df=$(T xsprobe getfeature $id 2>&1)
	if [ -n "$sf" ] && [ "$df" = $((sf & XEN422_MASK)) ]; then
		pass xl-cfg-feature-mask "dom$id features $df = server $sf & mask $XEN422_MASK"
	else
		fail xl-cfg-feature-mask "dom$id features '$df', server '$sf', mask $XEN422_MASK"
	fi
}
# xen422_after_update ID: after a live update, domain ID keeps the quota
# xen422_checks set and its masked features.
xen422_after_update() {
	is_xen422 || return 0
	id=$1
	n=$(T xsprobe getquota $id nodes 2>&1)
	df=$(T xsprobe getfeature $id 2>&1)
	sf=$(T xsprobe getfeature 2>&1)
	if [ "$n" = $((XEN422_NODES + 100)) ] && [ "$df" = $((sf & XEN422_MASK)) ]; then
		pass xen422-kept-across-update "dom$id nodes=$n features=$df (server $sf)"
	else
		fail xen422-kept-across-update "dom$id nodes='$n' (want $((XEN422_NODES + 100))) features='$df' server='$sf' mask $XEN422_MASK"
	fi
}
# xen422_domid_reuse CFG NAME: a domain (xl create CFG, named NAME) is
# given nodes, permissions and quota use in the store by dom0; `xl save -D`
# (keep the domid) destroys it, `xl restore` makes a NEW domain (Xen: a new
# unique id) with the SAME domid. The new one must inherit nothing: the
# node the old one owned outside its home is gone (C 4.22 deletes a dead
# domain's orphans), the permission naming it is removed, its quota use
# is only its own. libxl refuses a domid used within 60 s
# (LIBXL_DOMID_REUSE_TIMEOUT); its history file is removed as
# xen-init-dom0 does at boot.
xen422_domid_reuse() {
	is_xen422 || return 0
	cfg=$1 name=$2
	if ! timeout 150 xl -vvv create $cfg >/tmp/reuse.log 2>&1; then
		grep -v -E 'debug|detail' /tmp/reuse.log | tail -25
		fail domid-reuse-create "xl create $cfg: $(tail -3 /tmp/reuse.log | tr '\n' ' ')"
		return
	fi
	id=$(xl domid $name 2>/dev/null)
	v=$(timeout 130 xsprobe wait /local/domain/$id/data/hello 120 2>&1)
	T xenstore-write /e2e/reuse-perm p
	T xenstore-chmod /e2e/reuse-perm n0 r$id
	T xenstore-write /e2e/reuse-owned o
	T xenstore-chmod /e2e/reuse-owned n$id
	u0=$(T xenstore-control quota $id 2>&1 | awk '$1 == "nodes" {print $3}')
	p0=$(T xenstore-ls -p /e2e 2>&1 | grep -E 'reuse-(perm|owned)' | tr -s ' ' | tr '\n' ';')
	echo "dom$id ($name): guest wrote data/hello='$v'; nodes in use $u0; $p0"
	rel0=$(grep -c '^@releaseDomain' /tmp/watch.log 2>/dev/null)
	if ! timeout 300 xl save -D $name /tmp/reuse.save >>/tmp/reuse.log 2>&1; then
		fail domid-reuse-save "xl save -D: $(tail -3 /tmp/reuse.log | tr '\n' ' ')"
		return
	fi
	sleep 2
	p1=$(T xenstore-ls -p /e2e 2>&1 | grep -E 'reuse-(perm|owned)' | tr -s ' ' | tr '\n' ';')
	echo "after xl save -D (dom$id destroyed): $p1 @releaseDomain $rel0 -> $(grep -c '^@releaseDomain' /tmp/watch.log 2>/dev/null)"
	rm -f /var/run/xen/domid-history /run/xen/domid-history
	if ! timeout 300 xl restore /tmp/reuse.save >>/tmp/reuse.log 2>&1; then
		fail domid-reuse-restore "xl restore: $(tail -3 /tmp/reuse.log | tr '\n' ' ')"
		return
	fi
	rm -f /tmp/reuse.save
	id2=$(xl domid $name 2>/dev/null)
	u1=$(T xenstore-control quota $id2 2>&1 | awk '$1 == "nodes" {print $3}')
	p2=$(T xenstore-ls -p /e2e 2>&1 | grep -E 'reuse-(perm|owned)' | tr -s ' ' | tr '\n' ';')
	echo "restored: dom$id2; nodes in use $u1; $p2"
	if [ -n "$id" ] && [ "$id2" = "$id" ]; then
		pass domid-reused "xl save -D + xl restore: the new domain got domid $id2 again"
	else
		fail domid-reused "domid $id before, '$id2' after restore"
		return
	fi
	perm=$(T xenstore-ls -p /e2e 2>&1 | awk '$1 == "reuse-perm" {print}')
	if echo "$perm" | grep -q '(n0)' && ! T xenstore-read /e2e/reuse-owned >/dev/null 2>&1; then
		pass domid-reuse-no-inheritance "old dom$id's orphan /e2e/reuse-owned is gone, its read permission on /e2e/reuse-perm removed ('$perm'); the new dom$id2 uses $u1 nodes (old: $u0)"
	else
		fail domid-reuse-no-inheritance "reuse-perm '$perm'; reuse-owned $(T xenstore-read /e2e/reuse-owned 2>&1); nodes in use $u0 -> $u1"
	fi
	timeout 60 xl destroy $name >/dev/null 2>&1
}
