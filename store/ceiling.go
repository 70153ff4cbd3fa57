package store

import (
	"math"
	"syscall"
	"time"

	"github.com/xsstub/xenstored/wire"
)

// The store-wide memory ceiling (issue 13, "the stub's memory under
// attack"). Per-domain quotas bound each guest, but enough guests, or one
// with raised quotas, can still push the process past its memory and kill
// every domain's xenstore. So the engine keeps a running estimate of what
// it holds and, once the estimate would pass Config.MemoryCeiling, refuses
// unprivileged changes with ENOMEM. The control domain and socket clients
// keep working: they are the ones who can clean up.
//
// The estimate counts what grows with guests' actions: node records (the
// accounting of the memory quota) as the node table may hold them (its
// chunks hold at most 4/3 of the live records, plus young chunks spared
// from compaction, plus the index), connections, watches, open
// transactions' copies and queued output. The overheads are deliberately
// generous: a false ENOMEM near the ceiling is better than an
// out-of-memory death.
const (
	ceilNodeOverhead  = 16                            // index slots per node
	ceilTableSlack    = (youngChunks + 2) * chunkSize // young, current and survivors' chunks
	ceilConnOverhead  = 8 << 10                       // engine and transport state, ring buffers
	ceilWatchOverhead = 512                           // the watch, its index entries, path, token
	ceilTxnOverhead   = 1 << 10                       // a transaction's maps
	ceilEntryOverhead = 96                            // one transaction entry besides its node copy
	ceilLogInterval   = 10 * time.Second
)

// CeilingFor is the store's memory ceiling for a process memory limit in
// bytes (GOMEMLIMIT; the stub's init sets it to 3/4 of the domain's
// memory): half of it, leaving the rest to the Go runtime, the collector's
// headroom and what the estimate misses. 0 (no ceiling) for no limit.
func CeilingFor(limit int64) int64 {
	if limit <= 0 || limit == math.MaxInt64 {
		return 0
	}
	return limit / 2
}

// memEstimate is the engine's estimate of the memory it holds.
func (e *Engine) memEstimate() int64 {
	return e.memTotal*4/3 + int64(e.nodes.len())*ceilNodeOverhead + ceilTableSlack +
		int64(len(e.conns))*ceilConnOverhead + int64(e.watchCount)*ceilWatchOverhead +
		e.txBytes + e.outBytes
}

// checkCeiling refuses an unprivileged change that would take the estimate
// past the ceiling by add bytes (ENOMEM), logging at most every 10 s.
func (e *Engine) checkCeiling(c *Conn, add int) error {
	if e.cfg.MemoryCeiling <= 0 || !c.unprivileged() {
		return nil
	}
	est := e.memEstimate() + int64(add)
	if est <= e.cfg.MemoryCeiling {
		return nil
	}
	e.ceilRefused++
	if now := e.now(); e.ceilLogged.IsZero() || now.Sub(e.ceilLogged) >= ceilLogInterval {
		e.log.Warn("store memory ceiling reached: refusing unprivileged changes",
			"domid", c.domid, "estimate", est, "ceiling", e.cfg.MemoryCeiling,
			"refused", e.ceilRefused, "refused_since_last_log", e.ceilRefused-e.ceilRefusedLogged)
		e.ceilLogged, e.ceilRefusedLogged = now, e.ceilRefused
	}
	return syscall.ENOMEM
}

// ceilingCost is what a request adds to the estimate, for the request
// types the ceiling refuses (unprivileged changes); ok is false for others.
func ceilingCost(m *wire.Msg) (add int, ok bool) {
	switch m.Type {
	case wire.Write, wire.Mkdir, wire.SetPerms:
		// A node's record (header, permissions, path, value) as the
		// table may hold it, and its index slot.
		return (len(m.Payload)+64)*4/3 + ceilNodeOverhead, true
	case wire.Watch:
		return ceilWatchOverhead + len(m.Payload), true
	case wire.TransactionStart:
		return ceilTxnOverhead, true
	}
	return 0, false
}
