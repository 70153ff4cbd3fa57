package store

import (
	"fmt"
	"strings"
	"syscall"
)

// Quota identifies one per-domain limit. Names and defaults follow C
// xenstored, plus maxoutstanding and maxwatchevents, which bound queued
// output on every connection (dom0 included).
type Quota int

// The quotas.
const (
	QNodes Quota = iota
	QWatches
	QTransactions
	QNodeSize
	QNodePerms
	QPathMax
	QTransactionNodes
	QMemory
	QMaxOutstanding
	QMaxWatchEvents
	numQuotas
)

var quotaInfo = [numQuotas]struct {
	name, descr string
	hard, soft  int // defaults; 0 = not supported (cannot be set)
}{
	QNodes:            {"nodes", "Nodes per domain", 1000, 0},
	QWatches:          {"watches", "Watches per domain", 128, 0},
	QTransactions:     {"transactions", "Active transactions per domain", 10, 0},
	QNodeSize:         {"node-size", "Max. size of a node", 2048, 0},
	QNodePerms:        {"node-permissions", "Max. number of permissions per node", 5, 0},
	QPathMax:          {"path-max", "Max. length of a node path", 2048, 0},
	QTransactionNodes: {"transaction-nodes", "Max. number of accessed nodes per transaction", 1024, 0},
	QMemory:           {"memory", "Total Xenstore memory per domain", 2*1024*1024 + 512*1024, 2 * 1024 * 1024},
	QMaxOutstanding:   {"maxoutstanding", "Max. replies not yet read, per connection", 1024, 0},
	QMaxWatchEvents:   {"maxwatchevents", "Max. queued events per watch", 1024, 0},
}

func (q Quota) String() string { return quotaInfo[q].name }

// Quotas holds hard and soft values; 0 means the check is disabled.
type Quotas struct {
	Hard [numQuotas]int
	Soft [numQuotas]int
}

// DefaultQuotas are C xenstored's defaults plus the bounded-queue ones.
func DefaultQuotas() Quotas {
	var q Quotas
	for i, info := range quotaInfo {
		q.Hard[i] = info.hard
		q.Soft[i] = info.soft
	}
	return q
}

// QuotaByName resolves a quota name; a "soft-" prefix selects the soft
// value, as in GET_QUOTA/SET_QUOTA.
func QuotaByName(name string) (q Quota, soft bool, ok bool) {
	if n, found := strings.CutPrefix(name, "soft-"); found {
		name, soft = n, true
	}
	for i, info := range quotaInfo {
		if info.name == name {
			if soft && info.soft == 0 {
				return 0, false, false
			}
			return Quota(i), soft, true
		}
	}
	return 0, false, false
}

// MaxQuota is the largest quota value: C xenstored keeps quotas in ints
// (and a live update carries them in 32 bits).
const MaxQuota = 1<<31 - 1

// ParseQuota is the one rule for a quota value a client sets, by CONTROL
// quota set or SET_QUOTA: read as C's atoi reads it, from 1 to MaxQuota.
// C would wrap a larger value (2^32+1 becomes 1); it is refused here.
func ParseQuota(s string) (int, error) {
	v, _, digits := strtol(s, 10)
	if !digits || v < 1 || v > MaxQuota {
		return 0, fmt.Errorf("quota value %q not between 1 and %d: %w", s, MaxQuota, syscall.EINVAL)
	}
	return int(v), nil
}

// Set changes one value by name ("soft-" prefix allowed); v is from 0
// (no limit) to MaxQuota.
func (qs *Quotas) Set(name string, v int, soft bool) error {
	q, s, ok := QuotaByName(name)
	if !ok || (soft && s) {
		return fmt.Errorf("unknown quota %q: %w", name, syscall.EINVAL)
	}
	if v < 0 || v > MaxQuota {
		return fmt.Errorf("quota %s: %d not between 0 and %d: %w", name, v, MaxQuota, syscall.EINVAL)
	}
	if soft || s {
		if quotaInfo[q].soft == 0 {
			return fmt.Errorf("quota %q has no soft value: %w", name, syscall.EINVAL)
		}
		qs.Soft[q] = v
	} else {
		qs.Hard[q] = v
	}
	return nil
}

// QuotaNames lists the supported quota names in table order, each soft
// one (prefixed) after its hard one, as GET_QUOTA with no argument does.
func QuotaNames() []string {
	var n []string
	for _, info := range quotaInfo {
		n = append(n, info.name)
		if info.soft != 0 {
			n = append(n, "soft-"+info.name)
		}
	}
	return n
}

// quotaTable renders values as C xenstored's CONTROL quota does.
func quotaTable(vals *[numQuotas]int, soft bool) string {
	var b strings.Builder
	b.WriteString("Quota settings:\n")
	for i, info := range quotaInfo {
		if soft && info.soft == 0 {
			continue
		}
		fmt.Fprintf(&b, "%-17s: %8d %s\n", info.name, vals[i], info.descr)
	}
	return b.String()
}
