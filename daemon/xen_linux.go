package daemon

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/xsstub/xenstored/transport/xenring"
	"github.com/xsstub/xenstored/xen"
	"github.com/xsstub/xenstored/xen/evtchn"
	"github.com/xsstub/xenstored/xen/gntdev"
	"github.com/xsstub/xenstored/xen/privcmd"
	"github.com/xsstub/xenstored/xen/xenbus"
)

// openXen opens the Xen devices and builds the ring transport. It returns
// (nil, nil) when there is no /dev/xen.
func openXen(log *slog.Logger) (*xenring.Server, error) {
	ev, err := evtchn.Open()
	if errors.Is(err, xen.ErrNoDevice) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	gm, err := gntdev.Open()
	if err != nil {
		ev.Close()
		return nil, err
	}
	di, err := openPrivcmd(5 * time.Second)
	var info xen.DomainInfo
	if err != nil {
		log.Error("no domain information: deaths of guests will not be noticed", "err", err)
	} else {
		info = di
	}
	srv, err := xenring.New(ev, gm, info, log)
	if err != nil {
		return nil, err
	}
	srv.Info = info
	return srv, nil
}

// ownDomid finds the xenstore domain (ourselves, in a stub domain) in the
// domain list, or returns false.
func ownDomid(di xen.DomainInfo) (uint32, bool) {
	if di == nil {
		return 0, false
	}
	doms, err := di.Domains()
	if err != nil {
		return 0, false
	}
	for _, d := range doms {
		if d.XenstoreDomain {
			return d.ID, true
		}
	}
	return 0, false
}

// openPrivcmd opens /dev/xen/privcmd with a time limit: in a guest without
// privcmd.unrestricted=1 the open blocks forever waiting for a xenstore
// that is ourselves.
func openPrivcmd(limit time.Duration) (*privcmd.Device, error) {
	type result struct {
		d   *privcmd.Device
		err error
	}
	ch := make(chan result, 1)
	go func() {
		d, err := privcmd.Open()
		ch <- result{d, err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			return nil, r.err
		}
		if _, err := r.d.Domains(); err != nil {
			r.d.Close()
			return nil, fmt.Errorf("privcmd domain list: %w (in a stub domain the kernel needs privcmd.unrestricted=1)", err)
		}
		return r.d, nil
	case <-time.After(limit):
		return nil, fmt.Errorf("opening /dev/xen/privcmd blocked for %v (in a stub domain the kernel needs privcmd.unrestricted=1)", limit)
	}
}

// dom0LocalRing gives the transport dom0's own kernel ring and returns its
// event channel port, for a daemon running in dom0.
func dom0LocalRing(srv *xenring.Server) (uint32, error) {
	b, err := xenbus.OpenBackend()
	if err != nil {
		return 0, err
	}
	defer b.Close()
	port, err := b.StoreEvtchn()
	if err != nil {
		return 0, err
	}
	m, err := b.MapStorePage()
	if err != nil {
		return 0, err
	}
	srv.SetLocalRing(0, m)
	return port, nil
}
