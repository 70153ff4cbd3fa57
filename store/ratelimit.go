package store

import "time"

// Write rate limiting (XSA-206): each unprivileged domain earns write
// credit at Config.WriteRate per second up to Config.WriteBurst; every
// change it makes outside a transaction, and every commit, costs one. A
// domain in debt is not read until its credit is back, so a guest flooding
// writes cannot keep the toolstack's transactions failing with EAGAIN.
// The privileged domain is never limited. (C xenstored 4.17 does the same
// with its "wrl" credit scheme.)

// Defaults for the write rate limit.
const (
	DefaultWriteRate  = 200 // changes per second per domain
	DefaultWriteBurst = 10
)

type writeCredit struct {
	tokens  float64
	last    time.Time
	started bool
	timer   *time.Timer // pending wake-up of a domain in debt
}

func (e *Engine) now() time.Time {
	if e.cfg.Now != nil {
		return e.cfg.Now()
	}
	return time.Now()
}

// refill brings d's credit up to date.
func (e *Engine) refill(d *Domain) {
	now := e.now()
	w := &d.credit
	if !w.started {
		w.tokens, w.last, w.started = float64(e.cfg.WriteBurst), now, true
		return
	}
	w.tokens += now.Sub(w.last).Seconds() * float64(e.cfg.WriteRate)
	if max := float64(e.cfg.WriteBurst); w.tokens > max {
		w.tokens = max
	}
	w.last = now
}

// chargeWrite takes one write credit from c's domain.
func (e *Engine) chargeWrite(c *Conn) {
	if !c.unprivileged() || e.cfg.WriteRate <= 0 {
		return
	}
	d := e.domainLocked(c.domid)
	e.refill(d)
	d.credit.tokens--
}

// inDebt reports whether c must wait for write credit, arranging a wake-up
// for when it has some again.
func (e *Engine) inDebt(c *Conn) bool {
	if !c.unprivileged() || e.cfg.WriteRate <= 0 {
		return false
	}
	d := e.domains[c.domid]
	if d == nil || !d.credit.started {
		return false
	}
	e.refill(d)
	if d.credit.tokens >= 0 {
		return false
	}
	if d.credit.timer == nil {
		wait := time.Duration(-d.credit.tokens / float64(e.cfg.WriteRate) * float64(time.Second))
		d.credit.timer = time.AfterFunc(wait+time.Millisecond, func() {
			e.mu.Lock()
			defer e.mu.Unlock()
			d.credit.timer = nil
			c.signal()
		})
	}
	return true
}
