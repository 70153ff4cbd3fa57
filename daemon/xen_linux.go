package daemon

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/xsstub/xenstored/transport/xenring"
	"github.com/xsstub/xenstored/xen"
	"github.com/xsstub/xenstored/xen/domains"
	"github.com/xsstub/xenstored/xen/evtchn"
	"github.com/xsstub/xenstored/xen/gntdev"
	"github.com/xsstub/xenstored/xen/privcmd"
	"github.com/xsstub/xenstored/xen/xenbus"
)

// errNoXen says there is no /dev/xen: socket-only development mode.
var errNoXen = errors.New("no /dev/xen")

// xenSide is what the daemon holds on Xen: the ring transport and the
// domain tracker it runs on.
type xenSide struct {
	rings    *xenring.Server
	tracker  *domains.Tracker
	evtchnFD int // the event channel handle, which a live update hands over
}

// xenDevices are the three device handles the daemon uses on Xen.
type xenDevices struct {
	ev xen.EventChannel
	gm xen.GrantMapper
	hc xen.Hypercalls
	// close releases them all.
	close func()
}

// openDevices opens the real devices; tests replace it with the fake
// hypervisor's. errNoXen: not on Xen. evtchnFD >= 0 is an event channel
// handle a live update handed over, its ports still bound.
var openDevices = func(evtchnFD int) (*xenDevices, error) {
	var ev *evtchn.Device
	var err error
	if evtchnFD >= 0 {
		ev = evtchn.FromFD(evtchnFD)
	} else if ev, err = evtchn.Open(); errors.Is(err, xen.ErrNoDevice) {
		return nil, errNoXen
	}
	if err != nil {
		return nil, err
	}
	gm, err := gntdev.Open()
	if err != nil {
		ev.Close()
		return nil, err
	}
	dev, err := openPrivcmd(5 * time.Second)
	if err != nil {
		gm.Close()
		ev.Close()
		return nil, err
	}
	return &xenDevices{ev: ev, gm: gm, hc: dev, close: func() { dev.Close(); gm.Close(); ev.Close() }}, nil
}

// openXen opens the Xen devices, finds the hypervisor's interface and
// builds the ring transport. errNoXen: not on Xen. Any other error means
// the daemon cannot know which domains exist and must not serve guests.
func openXen(o *Options, evtchnFD int, log *slog.Logger) (*xenSide, error) {
	devs, err := openDevices(evtchnFD)
	if err != nil {
		return nil, err
	}
	tr, err := domains.Open(devs.hc, o.XenInterface)
	if err != nil {
		devs.close()
		return nil, fmt.Errorf("no domain information: %w", err)
	}
	rel := tr.Release()
	log.Info("hypervisor", "xen", tr.Running().String(), "interface", rel.Version.String(),
		"domctl", fmt.Sprintf("%#x", rel.Domctl), "domains", rel.Method.String())
	srv, err := xenring.New(devs.ev, devs.gm, tr, log)
	if err != nil {
		devs.close()
		return nil, err
	}
	return &xenSide{rings: srv, tracker: tr, evtchnFD: devs.ev.Fd()}, nil
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
		if _, err := r.d.XenVersion(); err != nil {
			r.d.Close()
			return nil, fmt.Errorf("hypercall through privcmd: %w (in a stub domain the kernel needs privcmd.unrestricted=1)", err)
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
