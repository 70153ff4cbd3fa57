package bench

// Ring benchmarks: the real ring transport (transport/xenring) over the
// fake hypervisor (xen/fake), driven by guest-side ring clients
// (xen/ringclient), all in this process. A round trip is: the guest's
// client goroutine copies the request into the shared page and notifies
// (the fake queues the port on the transport's event channel handle and
// signals its eventfd); the transport's single event loop wakes from poll,
// reads the ring, runs the engine, copies the reply back and notifies the
// guest (an eventfd of the guest's own, or the one of the driver's
// GuestEvents handle); the client goroutine wakes and hands the reply to
// the caller.

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/xsstub/xenstored/store"
	"github.com/xsstub/xenstored/transport/xenring"
	"github.com/xsstub/xenstored/wire"
	"github.com/xsstub/xenstored/xen/fake"
	"github.com/xsstub/xenstored/xen/ringclient"
)

// RingRig is an engine served over fake rings: dom0 talks to it
// in-process (Dom0, privileged), guests through their ring page.
type RingRig struct {
	H    *fake.Hypervisor
	E    *store.Engine
	Srv  *xenring.Server
	Dom0 *EngineConn // use from one goroutine at a time

	ge     *fake.GuestEvents // every guest's events, for the ring driver
	mu     sync.Mutex
	doms   map[uint32]*fake.Domain
	guests map[uint32]*fake.Guest // attached through ge
	cache  *cachedPlatform
	stop   chan struct{}
	done   chan error
}

// RingRigConfig configures NewRingRig.
type RingRigConfig struct {
	// WriteRate is the engine's per-domain write rate limit (XSA-206);
	// 0 keeps the engine's default (200 changes/s, burst 10), negative
	// disables it. The benchmarks disable it: with it a guest's sustained
	// writes are capped at the rate, by design.
	WriteRate int
	// CacheDomains answers the engine's "does domain N exist" from the
	// set of domains the rig created instead of asking the transport,
	// which lists every domain of the hypervisor for each question (see
	// DomainExistsCost).
	CacheDomains bool
	// LiveUpdate is the engine's live updater (nil: none).
	LiveUpdate store.LiveUpdater
}

// cachedPlatform is the transport with DomainExists answered by the rig.
type cachedPlatform struct {
	*xenring.Server
	mu   sync.Mutex
	live map[uint32]bool
}

func (p *cachedPlatform) DomainExists(id uint32) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.live[id]
}

// NewRingRig starts the transport's event loop on a fresh fake hypervisor.
func NewRingRig(cfg RingRigConfig) (*RingRig, error) {
	h := fake.New()
	ev, err := h.OpenEventChannel()
	if err != nil {
		h.Close()
		return nil, err
	}
	log := discardLogger()
	tr, err := h.Tracker()
	if err != nil {
		h.Close()
		return nil, err
	}
	srv, err := xenring.New(ev, h.GrantMapper(), tr, log)
	if err != nil {
		h.Close()
		return nil, err
	}
	var plat store.Platform = srv
	var cache *cachedPlatform
	if cfg.CacheDomains {
		cache = &cachedPlatform{Server: srv, live: map[uint32]bool{}}
		plat = cache
	}
	e := store.New(store.Config{Platform: plat, Logger: log, WriteRate: cfg.WriteRate, LiveUpdate: cfg.LiveUpdate})
	srv.SetEngine(e)
	if err := srv.WatchDomains(); err != nil {
		h.Close()
		return nil, err
	}
	ge, err := h.OpenGuestEvents()
	if err != nil {
		h.Close()
		return nil, err
	}
	r := &RingRig{H: h, E: e, Srv: srv, Dom0: NewEngineConn(e, 0, true), ge: ge,
		doms: map[uint32]*fake.Domain{}, guests: map[uint32]*fake.Guest{}, cache: cache,
		stop: make(chan struct{}), done: make(chan error, 1)}
	go func() { r.done <- srv.Serve(r.stop) }()
	return r, nil
}

// Descriptors the rig takes. A guest costs none: its ring page is a slot of
// the fake hypervisor's one memfd, and its events go through the
// transport's event channel handle and the rig's GuestEvents handle. A
// ring client open on a guest (Client) costs FDsPerClient: the eventfd of
// the guest end it attaches and the client's own wake eventfd. The rig
// itself holds RigFDs: the memfd, the event channel's epoll set and wake
// eventfd, the GuestEvents eventfd, the transport's wake pipe and the
// engine's few.
const (
	FDsPerGuest  = 0
	FDsPerClient = 2
	RigFDs       = 16
)

// AddGuest creates fake domain id, writes its GuestTree through dom0 when
// populate (else only /local/domain/ID/data/counter), introduces it (the
// transport maps its ring and binds its event channel) and attaches the
// guest end. Watches are added separately (GuestWatch).
func (r *RingRig) AddGuest(id uint32, populate bool) error {
	d, err := r.H.NewDomain(id)
	if err != nil {
		return err
	}
	if r.cache != nil {
		r.cache.mu.Lock()
		r.cache.live[id] = true
		r.cache.mu.Unlock()
	}
	if populate {
		err = CreateGuest(r.Dom0, id)
	} else {
		home := "/local/domain/" + strconv.FormatUint(uint64(id), 10)
		if _, err = r.Dom0.Call(wire.Write, 0, append(wire.JoinStrings(home+"/data/counter"), '0')); err == nil {
			_, err = r.Dom0.Call(wire.SetPerms, 0, wire.JoinStrings(home, "n"+strconv.FormatUint(uint64(id), 10)))
		}
		if err == nil {
			_, err = r.Dom0.Call(wire.SetPerms, 0, wire.JoinStrings(home+"/data", "n"+strconv.FormatUint(uint64(id), 10)))
		}
		if err == nil {
			_, err = r.Dom0.Call(wire.SetPerms, 0, wire.JoinStrings(home+"/data/counter", "n"+strconv.FormatUint(uint64(id), 10)))
		}
	}
	if err != nil {
		return err
	}
	if err := r.E.IntroduceDomain(id, d.GuestPort(), 0); err != nil {
		return err
	}
	// The guest end takes no descriptor: it maps its slot of the
	// hypervisor's memfd and gets its events through r.ge.
	g, err := r.ge.Attach(d)
	if err != nil {
		return err
	}
	r.mu.Lock()
	r.doms[id] = d
	r.guests[id] = g
	r.mu.Unlock()
	return nil
}

// RigClient is a ring client on one guest's ring, over a guest end of its
// own (an eventfd, as ringclient polls one per guest).
type RigClient struct {
	*ringclient.Client
	g *fake.Guest
}

// Close closes the client and its guest end.
func (c *RigClient) Close() error {
	err := c.Client.Close()
	if e := c.g.Close(); err == nil {
		err = e
	}
	return err
}

// Client opens a ring client on guest id's ring. Close it before opening
// another on the same ring, and only when no call is in flight. It costs
// FDsPerClient descriptors until closed.
func (r *RingRig) Client(id uint32) (*RigClient, error) {
	r.mu.Lock()
	d := r.doms[id]
	r.mu.Unlock()
	if d == nil {
		return nil, fmt.Errorf("ring rig: no guest %d", id)
	}
	g, err := d.Attach()
	if err != nil {
		return nil, err
	}
	c, err := ringclient.New(g.Page(), g)
	if err != nil {
		g.Close()
		return nil, err
	}
	return &RigClient{Client: c, g: g}, nil
}

// GuestWatch registers GuestWatches(id) from the guest's own ring and
// dom0's BackendWatches(id), then ends with a read so that every event
// the watches fired has been taken off the ring before the client closes.
func (r *RingRig) GuestWatch(id uint32) error {
	c, err := r.Client(id)
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, w := range GuestWatches(id) {
		if err := c.Watch(ctx, w, "tok"); err != nil {
			return fmt.Errorf("guest %d: watch %s: %w", id, w, err)
		}
	}
	if _, err := c.Read(ctx, "name"); err != nil {
		return fmt.Errorf("guest %d: read: %w", id, err)
	}
	for _, w := range BackendWatches(id) {
		if _, err := r.Dom0.Call(wire.Watch, 0, wire.JoinStrings(w, "be")); err != nil {
			return err
		}
	}
	return nil
}

// Close stops the event loop and tears the fake down.
func (r *RingRig) Close() error {
	close(r.stop)
	err := <-r.done
	r.mu.Lock()
	for id, g := range r.guests {
		g.Close()
		delete(r.guests, id)
	}
	r.mu.Unlock()
	r.ge.Close()
	if e := r.H.Close(); err == nil {
		err = e
	}
	return err
}

// RingResult is one ring throughput run.
type RingResult struct {
	Domains, Depth int
	Ops            uint64
	Elapsed        time.Duration
	Lat            *Histogram    // per request, client call to reply
	CPU            time.Duration // the process's (driver and server), user and system
}

func (r *RingResult) String() string {
	return fmt.Sprintf("%d requests in %.2fs: %.0f requests/s, p50 %s p99 %s p99.9 %s max %s",
		r.Ops, r.Elapsed.Seconds(), r.Rate(), fmtDur(r.Lat.Quantile(0.5)), fmtDur(r.Lat.Quantile(0.99)),
		fmtDur(r.Lat.Quantile(0.999)), fmtDur(r.Lat.Max()))
}

// Rate is requests per second over all domains.
func (r *RingResult) Rate() float64 { return float64(r.Ops) / r.Elapsed.Seconds() }

// CPUPerOp is the process's CPU time per request, in µs: the driver's
// share is the same whichever server answers, so the difference between
// two servers is theirs. Unlike Rate, other processes on the machine
// barely move it.
func (r *RingResult) CPUPerOp() float64 { return r.CPU.Seconds() * 1e6 / float64(r.Ops) }

// processCPU is the time this process has run, user and system.
func processCPU() time.Duration {
	var ru unix.Rusage
	if unix.Getrusage(unix.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// RingOptions configures RingThroughput.
type RingOptions struct {
	Domains  int           // fake domains, each with its own ring and client
	Depth    int           // requests in flight per domain (goroutines calling), default 1
	Duration time.Duration // default 1s
	Ops      int           // if > 0: stop after this many requests instead
	// Mix weighs READ of the guest's data/counter, WRITE of it and
	// DIRECTORY of data (the socket load's weights; transactions and
	// watches are not driven over rings). Requests follow the weights in
	// a fixed cycle: read=1,write=1 alternates. Zero: read only.
	Mix       Mix
	ValueSize int  // bytes written (default 16)
	Populate  bool // give each guest its ~100 nodes and watches
	// Progress, if set, gets a line per second (driver side only, not
	// with Clients).
	Progress io.Writer
	// Clients: drive each guest through its own ringclient.Client (a
	// goroutine and a thread blocked in poll per guest, plus one goroutine
	// per request in flight) instead of one driver thread for all rings.
	Clients bool
	// Null: the rings are served by RingNull (canned replies, no store)
	// instead of our transport and engine: the ceiling.
	Null bool
}

// ringRequest is one request of a ring load's cycle.
type ringRequest struct {
	typ     wire.Type
	payload []byte
}

// ringCycle expands o.Mix into the fixed cycle of requests every guest
// issues.
func ringCycle(o RingOptions) ([]ringRequest, error) {
	value := value16
	if o.ValueSize > 0 {
		value = bytes.Repeat([]byte{'v'}, o.ValueSize)
	}
	m := o.Mix
	if m == (Mix{}) {
		m[OpRead] = 1
	}
	if m[OpTxn] > 0 || m[OpWatch] > 0 {
		return nil, fmt.Errorf("ring load: mix %s: only read, write and dir are driven over rings", m)
	}
	kinds := []ringRequest{
		OpRead:      {wire.Read, wire.JoinStrings("data/counter")},
		OpWrite:     {wire.Write, append(wire.JoinStrings("data/counter"), value...)},
		OpDirectory: {wire.Directory, wire.JoinStrings("data")},
	}
	var cycle []ringRequest
	for left := m; left != (Mix{}); {
		for op := range kinds {
			if left[op] > 0 {
				cycle = append(cycle, kinds[op])
				left[op]--
			}
		}
	}
	return cycle, nil
}

// RingThroughput starts a rig with o.Domains guests and has every guest
// issue requests on its ring (o.Depth at a time) for o.Duration or until
// o.Ops, following o.Mix.
func RingThroughput(o RingOptions) (*RingResult, error) {
	cycle, err := ringCycle(o)
	if err != nil {
		return nil, err
	}
	if o.Depth <= 0 {
		o.Depth = 1
	}
	if o.Duration <= 0 && o.Ops <= 0 {
		o.Duration = time.Second
	}
	if o.Null {
		if o.Clients || o.Populate {
			return nil, fmt.Errorf("ring load: the null server takes neither Clients nor Populate")
		}
		return ringNullThroughput(o, cycle)
	}
	perDomain := FDsPerGuest
	if o.Clients {
		perDomain += FDsPerClient
	}
	need := RigFDs + o.Domains*perDomain + FDsPerClient // Populate: one client at a time
	if lim, err := RaiseFDLimit(uint64(need + OpenFDs() + 64)); err == nil && int(lim) < need+OpenFDs()+64 {
		return nil, fmt.Errorf("%w: %d domains need %d descriptors, the limit is %d", ErrSkipped, o.Domains, need, lim)
	}
	r, err := NewRingRig(RingRigConfig{WriteRate: -1, CacheDomains: true})
	if err != nil {
		return nil, err
	}
	defer r.Close()
	guests := make([]*fake.Guest, o.Domains)
	for i := range guests {
		id := uint32(i + 1)
		if err := r.AddGuest(id, o.Populate); err != nil {
			return nil, err
		}
		if o.Populate {
			if err := r.GuestWatch(id); err != nil {
				return nil, err
			}
		}
		r.mu.Lock()
		guests[i] = r.guests[id]
		r.mu.Unlock()
	}
	if !o.Clients {
		return driveFor(o, r.ge, guests, cycle)
	}
	clients := make([]*RigClient, o.Domains)
	defer func() {
		for _, c := range clients {
			if c != nil {
				c.Close()
			}
		}
	}()
	for i := range clients {
		if clients[i], err = r.Client(uint32(i + 1)); err != nil {
			return nil, err
		}
	}
	var (
		total   atomic.Int64
		stopped atomic.Bool
		wg      sync.WaitGroup
		hmu     sync.Mutex
		lat     = &Histogram{}
		errOnce sync.Once
		runErr  error
	)
	budget := int64(o.Ops)
	start := time.Now()
	for _, c := range clients {
		for k := 0; k < o.Depth; k++ {
			wg.Add(1)
			go func(c *RigClient, k int) {
				defer wg.Done()
				h := &Histogram{}
				ctx := context.Background()
				for i := k; !stopped.Load(); i++ {
					if budget > 0 && total.Add(1) > budget {
						break
					}
					req := cycle[i%len(cycle)]
					t0 := time.Now()
					if _, err := c.Call(ctx, req.typ, 0, req.payload); err != nil {
						errOnce.Do(func() { runErr = err })
						stopped.Store(true)
						break
					}
					h.Record(time.Since(t0))
				}
				hmu.Lock()
				lat.Merge(h)
				hmu.Unlock()
			}(c, k)
		}
	}
	if o.Duration > 0 {
		go func() {
			time.Sleep(o.Duration)
			stopped.Store(true)
		}()
	}
	wg.Wait()
	res := &RingResult{Domains: o.Domains, Depth: o.Depth, Ops: lat.Count(), Elapsed: time.Since(start), Lat: lat}
	return res, runErr
}

// driveFor runs driveRings for o.Duration or o.Ops.
func driveFor(o RingOptions, ge *fake.GuestEvents, guests []*fake.Guest, cycle []ringRequest) (*RingResult, error) {
	start, cpu := time.Now(), processCPU()
	deadline := start.Add(o.Duration)
	var completed atomic.Int64
	if o.Progress != nil {
		stopProgress := make(chan struct{})
		defer close(stopProgress)
		go progress(o.Progress, &completed, start, stopProgress)
	}
	lat, err := driveRings(ge, guests, o.Depth, cycle, func(done uint64) bool {
		completed.Store(int64(done))
		if o.Ops > 0 {
			return done >= uint64(o.Ops)
		}
		return time.Now().After(deadline)
	})
	if err != nil {
		return nil, err
	}
	return &RingResult{Domains: o.Domains, Depth: o.Depth, Ops: lat.Count(), Elapsed: time.Since(start), Lat: lat,
		CPU: processCPU() - cpu}, nil
}

// ringNullThroughput is RingThroughput against RingNull: the same fake
// hypervisor, guests and driver, no store.
func ringNullThroughput(o RingOptions, cycle []ringRequest) (*RingResult, error) {
	h := fake.New()
	defer h.Close()
	n, err := NewRingNull(h)
	if err != nil {
		return nil, err
	}
	defer n.Close()
	ge, err := h.OpenGuestEvents()
	if err != nil {
		return nil, err
	}
	defer ge.Close()
	guests := make([]*fake.Guest, o.Domains)
	for i := range guests {
		d, err := h.NewDomain(uint32(i + 1))
		if err != nil {
			return nil, err
		}
		if err := n.Add(d); err != nil {
			return nil, err
		}
		if guests[i], err = ge.Attach(d); err != nil {
			return nil, err
		}
		defer guests[i].Close()
	}
	return driveFor(o, ge, guests, cycle)
}

// RingTable renders ring throughput results.
func RingTable(rs []*RingResult, md bool) string {
	h := []string{"domains", "in flight/domain", "ops/s", "p50", "p99", "p99.9"}
	var out [][]string
	for _, r := range rs {
		out = append(out, []string{strconv.Itoa(r.Domains), strconv.Itoa(r.Depth), fmt.Sprintf("%.0f", r.Rate()),
			fmtNs(r.Lat.Quantile(0.5)), fmtNs(r.Lat.Quantile(0.99)), fmtNs(r.Lat.Quantile(0.999))})
	}
	return table(md, h, out)
}
