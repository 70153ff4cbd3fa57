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

const (
	flagPriv = 1 << iota // control domain only
	flagNoTx             // the tx_id is ignored
)

var handlerFlags = map[wire.Type]int{
	wire.Control: flagPriv, wire.Directory: 0, wire.Read: 0, wire.GetPerms: 0,
	wire.Watch: flagNoTx, wire.Unwatch: flagNoTx, wire.TransactionStart: 0,
	wire.TransactionEnd: 0, wire.Introduce: flagPriv, wire.Release: flagPriv,
	wire.GetDomainPath: 0, wire.Write: 0, wire.Mkdir: 0, wire.Rm: 0, wire.SetPerms: 0,
	wire.IsDomainIntroduced: flagPriv, wire.Resume: flagPriv, wire.SetTarget: flagPriv,
	wire.ResetWatches: 0, wire.DirectoryPart: 0, wire.GetFeature: 0,
	wire.SetFeature: flagPriv, wire.GetQuota: flagPriv, wire.SetQuota: flagPriv,
}

// dispatch runs one request and returns the reply payload.
func (e *Engine) dispatch(c *Conn, m *wire.Msg) ([]byte, error) {
	if !e.answered {
		e.answered = true
		if f := e.cfg.FirstAnswer; f != nil {
			go f()
		}
	}
	flags, known := handlerFlags[m.Type]
	if !known {
		e.log.Debug("unknown request type", "conn", c.id, "type", uint32(m.Type))
		return nil, syscall.ENOSYS
	}
	if flags&flagPriv != 0 && c.unprivileged() {
		return nil, syscall.EACCES
	}
	var tx *txn
	if flags&flagNoTx == 0 && m.TxID != 0 {
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
	switch m.Type {
	case wire.Write, wire.Mkdir, wire.Rm, wire.SetPerms:
		if tx == nil {
			e.chargeWrite(c)
		}
	case wire.TransactionEnd:
		e.chargeWrite(c)
	}
	probe()
	p := m.Payload
	switch m.Type {
	case wire.Read:
		return e.doRead(c, tx, p)
	case wire.Write:
		return e.doWrite(c, tx, p)
	case wire.Mkdir:
		return e.doMkdir(c, tx, p)
	case wire.Rm:
		return e.doRm(c, tx, p)
	case wire.Directory:
		return e.doDirectory(c, tx, p)
	case wire.DirectoryPart:
		return e.doDirectoryPart(c, tx, p)
	case wire.GetPerms:
		return e.doGetPerms(c, tx, p)
	case wire.SetPerms:
		return e.doSetPerms(c, tx, p)
	case wire.Watch:
		return e.doWatch(c, m)
	case wire.Unwatch:
		return e.doUnwatch(c, p)
	case wire.ResetWatches:
		e.resetWatchesLocked(c)
		return ok()
	case wire.TransactionStart:
		return e.txnStart(c, m)
	case wire.TransactionEnd:
		return e.txnEnd(c, tx, p)
	case wire.GetDomainPath:
		arg, good := oneArg(p)
		if !good {
			return nil, syscall.EINVAL
		}
		domid, err := parseDomid(arg)
		if err != nil {
			return nil, err
		}
		return append([]byte(domainPath(domid)), 0), nil
	case wire.IsDomainIntroduced:
		arg, good := oneArg(p)
		if !good {
			return nil, syscall.EINVAL
		}
		domid, err := parseDomid(arg)
		if err != nil {
			return nil, err
		}
		if d := e.domains[domid]; domid == DomidSelf || (d != nil && d.Introduced) {
			return []byte("T\x00"), nil
		}
		return []byte("F\x00"), nil
	case wire.Introduce:
		args := splitArgs(p)
		return e.introduce(c, args)
	case wire.Release:
		arg, good := oneArg(p)
		d, err := e.introducedDomain([]string{arg}, good)
		if err != nil {
			return nil, err
		}
		e.releaseDomainLocked(d)
		return ok()
	case wire.Resume:
		arg, good := oneArg(p)
		d, err := e.introducedDomain([]string{arg}, good)
		if err != nil {
			return nil, err
		}
		e.commitPoint("domain resume")
		d.shutdown = false
		return ok()
	case wire.SetTarget:
		return e.setTarget(p)
	case wire.GetFeature:
		return e.getFeature(c, p)
	case wire.SetFeature:
		return e.setFeature(p)
	case wire.GetQuota:
		return e.getQuota(p)
	case wire.SetQuota:
		return e.setQuota(p)
	case wire.Control:
		// A copy: control commands keep the message (an indirect call,
		// so it escapes), and m itself must not, or every request's
		// message would be allocated on the heap.
		mc := *m
		return e.control(c, &mc)
	}
	return nil, syscall.ENOSYS
}

func (e *Engine) features(c *Conn) uint32 {
	if c.dom != nil {
		return c.dom.Features
	}
	return SupportedFeatures
}

func (e *Engine) setTarget(p []byte) ([]byte, error) {
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

func (e *Engine) getFeature(c *Conn, p []byte) ([]byte, error) {
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

func (e *Engine) setFeature(p []byte) ([]byte, error) {
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

func (e *Engine) getQuota(p []byte) ([]byte, error) {
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

func (e *Engine) setQuota(p []byte) ([]byte, error) {
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
