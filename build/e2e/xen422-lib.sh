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
