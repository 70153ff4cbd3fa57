package store

import (
	"errors"
	"strconv"
	"strings"
	"syscall"

	"github.com/xsstub/xenstored/wire"
)

// errReplied tells Handle that the handler queued its reply itself (WATCH
// queues the reply before the initial event).
var errReplied = errors.New("reply already queued")

// handler runs one request: tx is its transaction (nil outside one, and
// for request types that ignore the tx_id). m is a copy, so that no
// handler makes every request's message escape to the heap.
type handler func(e *Engine, c *Conn, tx *txn, m wire.Msg) ([]byte, error)

// requestType is one row of the request table, as C xenstored's
// wire_funcs[]: what runs and the rules every request of the type obeys
// before it does.
type requestType struct {
	run   handler
	flags int
}

const (
	flagPriv   = 1 << iota // control domain only
	flagNoTx               // the tx_id is ignored
	flagChange             // charged to the write rate limit (XSA-206), unless in a transaction
	flagCommit             // charged to the write rate limit always (TRANSACTION_END)
)

// requestTypes is indexed by wire.Type; a zero row is an unknown type.
var requestTypes [wire.SetQuota + 1]requestType

// onPayload adapts a handler that needs only the payload.
func onPayload(f func(*Engine, *Conn, *txn, []byte) ([]byte, error)) handler {
	return func(e *Engine, c *Conn, tx *txn, m wire.Msg) ([]byte, error) { return f(e, c, tx, m.Payload) }
}

// The table is filled at init: its handlers reach code that reads it.
func init() {
	requestTypes = [...]requestType{
		wire.Read:          {onPayload((*Engine).doRead), 0},
		wire.Write:         {onPayload((*Engine).doWrite), flagChange},
		wire.Mkdir:         {onPayload((*Engine).doMkdir), flagChange},
		wire.Rm:            {onPayload((*Engine).doRm), flagChange},
		wire.Directory:     {onPayload((*Engine).doDirectory), 0},
		wire.DirectoryPart: {onPayload((*Engine).doDirectoryPart), 0},
		wire.GetPerms:      {onPayload((*Engine).doGetPerms), 0},
		wire.SetPerms:      {onPayload((*Engine).doSetPerms), flagChange},
		wire.Watch: {func(e *Engine, c *Conn, _ *txn, m wire.Msg) ([]byte, error) {
			return e.doWatch(c, &m)
		}, flagNoTx},
		wire.Unwatch: {func(e *Engine, c *Conn, _ *txn, m wire.Msg) ([]byte, error) {
			return e.doUnwatch(c, m.Payload)
		}, flagNoTx},
		wire.ResetWatches: {func(e *Engine, c *Conn, _ *txn, _ wire.Msg) ([]byte, error) {
			e.resetWatchesLocked(c)
			return ok()
		}, 0},
		wire.TransactionStart: {func(e *Engine, c *Conn, _ *txn, m wire.Msg) ([]byte, error) {
			return e.txnStart(c, &m)
		}, 0},
		wire.TransactionEnd:     {onPayload((*Engine).txnEnd), flagCommit},
		wire.GetDomainPath:      {onPayload((*Engine).getDomainPath), 0},
		wire.IsDomainIntroduced: {onPayload((*Engine).isDomainIntroduced), flagPriv},
		wire.Introduce: {func(e *Engine, c *Conn, _ *txn, m wire.Msg) ([]byte, error) {
			return e.introduce(c, splitArgs(m.Payload))
		}, flagPriv},
		wire.Release:    {onPayload((*Engine).release), flagPriv},
		wire.Resume:     {onPayload((*Engine).resume), flagPriv},
		wire.SetTarget:  {onPayload((*Engine).setTarget), flagPriv},
		wire.GetFeature: {onPayload((*Engine).getFeature), 0},
		wire.SetFeature: {onPayload((*Engine).setFeature), flagPriv},
		wire.GetQuota:   {onPayload((*Engine).getQuota), flagPriv},
		wire.SetQuota:   {onPayload((*Engine).setQuota), flagPriv},
		wire.Control: {func(e *Engine, c *Conn, _ *txn, m wire.Msg) ([]byte, error) {
			return e.control(c, &m)
		}, flagPriv},
	}
}

// requestTypeOf is t's row; ok is false for a type no row serves.
func requestTypeOf(t wire.Type) (requestType, bool) {
	if int(t) >= len(requestTypes) || requestTypes[t].run == nil {
		return requestType{}, false
	}
	return requestTypes[t], true
}

// dispatch runs one request and returns the reply payload.
func (e *Engine) dispatch(c *Conn, m *wire.Msg) ([]byte, error) {
	if !e.answered {
		e.answered = true
		if f := e.cfg.FirstAnswer; f != nil {
			go f()
		}
	}
	rt, known := requestTypeOf(m.Type)
	if !known {
		e.log.Debug("unknown request type", "conn", c.id, "type", uint32(m.Type))
		return nil, syscall.ENOSYS
	}
	if rt.flags&flagPriv != 0 && c.unprivileged() {
		return nil, syscall.EACCES
	}
	var tx *txn
	if rt.flags&flagNoTx == 0 && m.TxID != 0 {
		if c.abortedTxn(m) {
			return nil, syscall.EAGAIN
		}
		if tx = c.txns[m.TxID]; tx == nil {
			return nil, syscall.ENOENT
		}
	}
	// Near the store-wide memory ceiling guests may change nothing.
	if add, costs := ceilingCost(m); costs {
		if err := e.checkCeiling(c, add); err != nil {
			return nil, err
		}
	}
	if rt.flags&flagCommit != 0 || (rt.flags&flagChange != 0 && tx == nil) {
		e.chargeWrite(c)
	}
	probe()
	return rt.run(e, c, tx, *m)
}

// domidArg is the one domid a request's payload carries.
func domidArg(p []byte) (uint32, error) {
	arg, good := oneArg(p)
	if !good {
		return 0, syscall.EINVAL
	}
	return parseDomid(arg)
}

func (e *Engine) getDomainPath(_ *Conn, _ *txn, p []byte) ([]byte, error) {
	domid, err := domidArg(p)
	if err != nil {
		return nil, err
	}
	return append([]byte(domainPath(domid)), 0), nil
}

func (e *Engine) isDomainIntroduced(_ *Conn, _ *txn, p []byte) ([]byte, error) {
	domid, err := domidArg(p)
	if err != nil {
		return nil, err
	}
	if d := e.domains[domid]; domid == DomidSelf || (d != nil && d.Introduced) {
		return []byte("T\x00"), nil
	}
	return []byte("F\x00"), nil
}

func (e *Engine) release(_ *Conn, _ *txn, p []byte) ([]byte, error) {
	arg, good := oneArg(p)
	d, err := e.introducedDomain([]string{arg}, good)
	if err != nil {
		return nil, err
	}
	e.releaseDomainLocked(d)
	return ok()
}

func (e *Engine) resume(_ *Conn, _ *txn, p []byte) ([]byte, error) {
	arg, good := oneArg(p)
	d, err := e.introducedDomain([]string{arg}, good)
	if err != nil {
		return nil, err
	}
	e.commitPoint("domain resume")
	d.shutdown = false
	return ok()
}

func (e *Engine) features(c *Conn) uint32 {
	if c.dom != nil {
		return c.dom.Features
	}
	return SupportedFeatures
}

func (e *Engine) setTarget(_ *Conn, _ *txn, p []byte) ([]byte, error) {
	args := splitArgs(p)
	if len(args) < 2 {
		return nil, syscall.EINVAL
	}
	domid, err := parseDomid(args[0])
	if err != nil {
		return nil, err
	}
	tdomid, err := parseDomid(args[1])
	if err != nil {
		return nil, err
	}
	d, td := e.domains[domid], e.domains[tdomid]
	if d == nil || td == nil || !d.Introduced || !td.Introduced {
		return nil, syscall.ENOENT
	}
	t := tdomid
	e.commitPoint("domain target")
	d.target = &t
	return ok()
}

func (e *Engine) getFeature(c *Conn, _ *txn, p []byte) ([]byte, error) {
	args := splitArgs(p)
	var f uint32
	switch len(args) {
	case 0:
		f = e.features(c)
	case 1:
		if c.unprivileged() {
			return nil, syscall.EACCES
		}
		domid, err := parseDomid(args[0])
		if err != nil {
			return nil, err
		}
		d := e.existingDomainLocked(domid)
		if d == nil {
			return nil, syscall.ENOENT
		}
		f = d.Features
	default:
		if c.unprivileged() {
			return nil, syscall.EACCES
		}
		return nil, syscall.EINVAL
	}
	return append([]byte(strconv.FormatUint(uint64(f), 10)), 0), nil
}

func (e *Engine) setFeature(_ *Conn, _ *txn, p []byte) ([]byte, error) {
	args := splitArgs(p)
	if len(args) != 2 {
		return nil, syscall.EINVAL
	}
	domid, err := parseDomid(args[0])
	if err != nil {
		return nil, err
	}
	f := uint32(atoi(args[1]))
	d := e.existingDomainLocked(domid)
	if d == nil {
		return nil, syscall.ENOENT
	}
	if d.Introduced {
		return nil, syscall.EBUSY
	}
	if f&^SupportedFeatures != 0 {
		return nil, syscall.EINVAL
	}
	e.commitPoint("domain features")
	d.Features = f
	return ok()
}

// quotaTarget picks the global or one domain's quota set.
func (e *Engine) quotaTarget(domArg *string) (*Quotas, error) {
	if domArg == nil {
		return &e.quotas, nil
	}
	domid, err := parseDomid(*domArg)
	if err != nil {
		return nil, err
	}
	d := e.existingDomainLocked(domid)
	if d == nil {
		return nil, syscall.ENOENT
	}
	return &d.quotas, nil
}

func (e *Engine) getQuota(_ *Conn, _ *txn, p []byte) ([]byte, error) {
	args := splitArgs(p)
	switch len(args) {
	case 0:
		return append([]byte(strings.Join(QuotaNames(), " ")), 0), nil
	case 1, 2:
		var dom *string
		name := args[0]
		if len(args) == 2 {
			dom, name = &args[0], args[1]
		}
		qs, err := e.quotaTarget(dom)
		if err != nil {
			return nil, err
		}
		q, soft, found := QuotaByName(name)
		if !found {
			return nil, syscall.EINVAL
		}
		v := qs.Hard[q]
		if soft {
			v = qs.Soft[q]
		}
		return append([]byte(strconv.Itoa(v)), 0), nil
	}
	return nil, syscall.EINVAL
}

func (e *Engine) setQuota(_ *Conn, _ *txn, p []byte) ([]byte, error) {
	args := splitArgs(p)
	var dom *string
	switch len(args) {
	case 2:
	case 3:
		dom = &args[0]
		args = args[1:]
	default:
		return nil, syscall.EINVAL
	}
	qs, err := e.quotaTarget(dom)
	if err != nil {
		return nil, err
	}
	v, err := ParseQuota(args[1])
	if err != nil {
		return nil, syscall.EINVAL
	}
	e.commitPoint("quota change")
	if err := qs.Set(args[0], v, false); err != nil {
		return nil, syscall.EINVAL
	}
	if dom == nil {
		e.log.Info("global quota changed", "quota", args[0], "value", v)
	} else {
		e.log.Info("domain quota changed", "domid", *dom, "quota", args[0], "value", v)
	}
	return ok()
}
