package bench

// The creation storm: the xenstore traffic of `xl create` and `xl destroy`
// of one domU, recorded in dom0 (testdata/xl-create-destroy.trace), replayed
// on a server's socket for N domains: create 1..N (all stay), then destroy
// 1..N. Domain k gets domid k, /local/domain/k, /libxl/k, /vm/<uuid-k>.
// Requests go one at a time in the trace's order, each on the connection
// of its role: a fresh one per domain and phase for an xl process, one per
// domain from create to destroy for the xl that watches @releaseDomain,
// and one each for xenconsoled and dom0's kernel, shared by all domains,
// holding the watches they hold before the trace starts (@introduceDomain
// and @releaseDomain; backend). Without Xen nobody notices the domain die,
// so RELEASE is sent where Xen's VIRQ_DOM_EXC would have the store do it:
// after xl destroy's requests, before the watcher's reaction.

import (
	"bufio"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"net"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/xsstub/xenstored/wire"
)

//go:embed testdata/xl-create-destroy.trace
var xlTrace string

// stormReq is one recorded request.
type stormReq struct {
	role    string
	typ     wire.Type
	payload string // as traced: NULs as spaces
	wantErr string // the ERROR the trace answered, "" for success
	line    int
}

// StormTrace is a parsed trace: the create and destroy phases.
type StormTrace struct {
	Domid   uint32
	UUID    string
	Create  []stormReq
	Destroy []stormReq
}

// ParseStormTrace reads the trace format of testdata/xl-create-destroy.trace.
func ParseStormTrace(text string) (*StormTrace, error) {
	t := &StormTrace{}
	roles := map[string]map[int]string{}
	phase := "create"
	var all []stormReq
	var destroyAt int
	last := map[int]int{} // per trace conn, its last request in all, for its ERROR
	sc := bufio.NewScanner(strings.NewReader(text))
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			switch f := strings.Fields(line); {
			case len(f) >= 3 && f[1] == "roles":
				ph := strings.TrimSuffix(f[2], ":")
				roles[ph] = map[int]string{}
				for _, kv := range f[3:] {
					c, r, ok := strings.Cut(kv, "=")
					id, err := strconv.Atoi(c)
					if !ok || err != nil {
						return nil, fmt.Errorf("storm trace line %d: bad role %q", n, kv)
					}
					roles[ph][id] = r
				}
			case len(f) >= 3 && f[1] == "recorded:" && strings.HasPrefix(f[2], "domid="):
				d, err := strconv.ParseUint(strings.TrimPrefix(f[2], "domid="), 10, 32)
				if err != nil {
					return nil, fmt.Errorf("storm trace line %d: %w", n, err)
				}
				t.Domid = uint32(d)
			case line == "# destroy:":
				phase = "destroy"
				destroyAt = len(all)
				clear(last)
			}
			continue
		}
		// "15:04:05.000 IN  conn 19 TYPE payload"
		if len(line) < 13 {
			continue
		}
		rest := line[13:]
		in := strings.HasPrefix(rest, "IN  conn ")
		if !in && !strings.HasPrefix(rest, "OUT conn ") {
			return nil, fmt.Errorf("storm trace line %d: not IN/OUT: %q", n, line)
		}
		rest = rest[len("IN  conn "):]
		cs, rest, _ := strings.Cut(rest, " ")
		conn, err := strconv.Atoi(cs)
		if err != nil {
			return nil, fmt.Errorf("storm trace line %d: conn: %w", n, err)
		}
		ts, payload, _ := strings.Cut(rest, " ")
		typ, ok := parseType(ts)
		if !ok {
			return nil, fmt.Errorf("storm trace line %d: type %q", n, ts)
		}
		if !in {
			if i, ok := last[conn]; ok && typ == wire.Error {
				all[i].wantErr = strings.TrimSpace(payload)
			}
			continue
		}
		role := roles[phase][conn]
		if role == "" {
			return nil, fmt.Errorf("storm trace line %d: conn %d has no role in %s", n, conn, phase)
		}
		last[conn] = len(all)
		all = append(all, stormReq{role: role, typ: typ, payload: payload, line: n})
		if t.UUID == "" {
			if m := uuidInPath.FindStringSubmatch(payload); m != nil {
				t.UUID = m[1]
			}
		}
	}
	if destroyAt > 0 {
		t.Create, t.Destroy = all[:destroyAt], all[destroyAt:]
	}
	if t.Domid == 0 || t.UUID == "" || len(t.Create) == 0 || len(t.Destroy) == 0 {
		return nil, fmt.Errorf("storm trace: incomplete (domid %d, uuid %q, %d create and %d destroy requests)",
			t.Domid, t.UUID, len(t.Create), len(t.Destroy))
	}
	return t, nil
}

var uuidInPath = regexp.MustCompile(`/vm/([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})`)

func parseType(s string) (wire.Type, bool) {
	for t := wire.Type(0); t < wire.TypeCount; t++ {
		if t.String() == s {
			return t, true
		}
	}
	return 0, false
}

// DefaultStormTrace is the recorded trace.
func DefaultStormTrace() (*StormTrace, error) { return ParseStormTrace(xlTrace) }

// StormUUID is domain k's uuid.
func StormUUID(k uint32) string { return fmt.Sprintf("00000000-0000-4000-8000-%012x", k) }

// rewriter turns the recorded domain's requests into domain k's.
type rewriter struct {
	paths, uuid *regexp.Regexp
	domid       string
}

func (t *StormTrace) rewriter() *rewriter {
	d := strconv.FormatUint(uint64(t.Domid), 10)
	return &rewriter{
		paths: regexp.MustCompile(`(/local/domain/|/libxl/|backend/[a-z]+/)` + d + `\b`),
		// The uuid's last group may be cut short (a payload cut at 80 bytes).
		uuid:  regexp.MustCompile(regexp.QuoteMeta(t.UUID[:24]) + `[0-9a-f]*`),
		domid: d,
	}
}

// payload is r's wire payload for domain k.
func (w *rewriter) payload(r stormReq, k uint32) []byte {
	ks := strconv.FormatUint(uint64(k), 10)
	p := w.uuid.ReplaceAllLiteralString(r.payload, StormUUID(k))
	p = w.paths.ReplaceAllString(p, "${1}"+ks)
	if r.typ == wire.Write {
		path, value, _ := strings.Cut(p, " ")
		if value == w.domid && (strings.HasSuffix(path, "/domid") || strings.HasSuffix(path, "/frontend-id")) {
			value = ks
		}
		return append(append([]byte(path), 0), value...)
	}
	args := strings.Split(p, " ")
	switch r.typ {
	case wire.GetDomainPath, wire.Introduce, wire.Release, wire.SetQuota, wire.SetFeature, wire.IsDomainIntroduced:
		if args[0] == w.domid {
			args[0] = ks
		}
	case wire.SetPerms:
		for i := 1; i < len(args); i++ {
			if len(args[i]) > 1 && strings.ContainsRune("nrwb", rune(args[i][0])) && args[i][1:] == w.domid {
				args[i] = args[i][:1] + ks
			}
		}
	case wire.Watch, wire.Unwatch:
		if len(args) > 1 && args[1] == "dom"+w.domid {
			args[1] = "dom" + ks
		}
	}
	return []byte(strings.Join(args, "\x00"))
}

// StormBaseTree is written before the storm: nodes the trace reads and
// does not create, and the parents xl creates for the first domain and
// never removes (a host that has run domains before).
var StormBaseTree = [][2]string{
	{"/local/domain/0/name", "Domain-0"}, {"/local/domain/0/domid", "0"},
	{"/local/pool/0/name", "Pool-0"}, {"/vm", ""}, {"/libxl", ""},
}

// StormOptions configures Storm.
type StormOptions struct {
	Socket  string
	Domains int
	Trace   *StormTrace // default DefaultStormTrace
}

// StormResult is one storm against one server.
type StormResult struct {
	Domains           int
	Create, Destroy   []time.Duration // per domain, in order
	Elapsed           time.Duration   // all creates and destroys
	Requests          int
	Mismatches        int    // replies whose success/ERROR differs from the trace's
	FirstMismatch     string // the first of them
	RequestsPerDomain int
}

// stormConn is one client connection, used synchronously as xl uses its
// own: write a request, read until its reply, skipping watch events.
type stormConn struct {
	nc    net.Conn
	r     *bufio.Reader
	buf   []byte
	tx    uint32 // open transaction
	reqID uint32
}

func dialStorm(sock string) (*stormConn, error) {
	// C xenstored listens with a backlog of 1; a blocking connect (xl's)
	// would wait for room, Go's non-blocking one fails with EAGAIN.
	var nc net.Conn
	var err error
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(200 * time.Microsecond) {
		if nc, err = net.Dial("unix", sock); err == nil || !errors.Is(err, syscall.EAGAIN) || time.Now().After(deadline) {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("storm: %w", err)
	}
	return &stormConn{nc: nc, r: bufio.NewReaderSize(nc, 8192)}, nil
}

func (c *stormConn) Close() error { return c.nc.Close() }

// do sends one request and returns its reply, skipping events.
func (c *stormConn) do(typ wire.Type, tx uint32, payload []byte) (wire.Msg, error) {
	c.reqID++
	c.buf = append(c.buf[:0], make([]byte, wire.HeaderSize)...)
	wire.Header{Type: typ, ReqID: c.reqID, TxID: tx, Len: uint32(len(payload))}.Put(c.buf)
	c.buf = append(c.buf, payload...)
	if err := c.nc.SetDeadline(time.Now().Add(30 * time.Second)); err != nil {
		return wire.Msg{}, err
	}
	if _, err := c.nc.Write(c.buf); err != nil {
		return wire.Msg{}, fmt.Errorf("storm: write: %w", err)
	}
	var hdr [wire.HeaderSize]byte
	for {
		if _, err := io.ReadFull(c.r, hdr[:]); err != nil {
			return wire.Msg{}, fmt.Errorf("storm: read: %w", err)
		}
		h, err := wire.ParseHeader(hdr[:])
		if err != nil {
			return wire.Msg{}, err
		}
		if h.Type == wire.WatchEvent || h.ReqID != c.reqID {
			if _, err := c.r.Discard(int(h.Len)); err != nil {
				return wire.Msg{}, fmt.Errorf("storm: read: %w", err)
			}
			continue
		}
		p := make([]byte, h.Len)
		if _, err := io.ReadFull(c.r, p); err != nil {
			return wire.Msg{}, fmt.Errorf("storm: read: %w", err)
		}
		return wire.Msg{Type: h.Type, ReqID: h.ReqID, TxID: h.TxID, Payload: p}, nil
	}
}

// Storm replays the trace for o.Domains domains on o.Socket.
func Storm(o StormOptions) (*StormResult, error) {
	t := o.Trace
	if t == nil {
		var err error
		if t, err = DefaultStormTrace(); err != nil {
			return nil, err
		}
	}
	s := &stormRun{w: t.rewriter(), socket: o.Socket, shared: map[string]*stormConn{},
		watchers: make([]*stormConn, o.Domains+1),
		res:      &StormResult{Domains: o.Domains, RequestsPerDomain: len(t.Create) + len(t.Destroy) + 1}}
	defer s.closeAll()
	if err := s.boot(); err != nil {
		return nil, err
	}
	start := time.Now()
	for k := 1; k <= o.Domains; k++ {
		d, err := s.phase(uint32(k), t.Create, false)
		if err != nil {
			return nil, err
		}
		s.res.Create = append(s.res.Create, d)
	}
	for k := 1; k <= o.Domains; k++ {
		d, err := s.phase(uint32(k), t.Destroy, true)
		if err != nil {
			return nil, err
		}
		s.res.Destroy = append(s.res.Destroy, d)
	}
	s.res.Elapsed = time.Since(start)
	return s.res, nil
}

// stormRun is one replay: the host's long-lived clients (xenconsoled,
// dom0's kernel, the toolstack's release path), one xl per live domain
// waiting for its death, and each phase's own clients.
type stormRun struct {
	w        *rewriter
	socket   string
	res      *StormResult
	conns    []*stormConn          // every open client, closed at the end
	shared   map[string]*stormConn // by role: console, kernel, release
	watchers []*stormConn          // per domain, the xl that waits for its death
}

func (s *stormRun) dial() (*stormConn, error) {
	c, err := dialStorm(s.socket)
	if err == nil {
		s.conns = append(s.conns, c)
	}
	return c, err
}

func (s *stormRun) closeConn(c *stormConn) {
	c.Close()
	s.conns = slices.DeleteFunc(s.conns, func(x *stormConn) bool { return x == c })
}

func (s *stormRun) closeAll() {
	for _, c := range s.conns {
		c.Close()
	}
}

// boot makes the host as the trace found it: the shared clients, what
// xen-init-dom0 and earlier guests left, and the watches xenconsoled and
// dom0's kernel set.
func (s *stormRun) boot() error {
	for _, role := range []string{"console", "kernel", "release"} {
		c, err := s.dial()
		if err != nil {
			return err
		}
		s.shared[role] = c
	}
	for _, n := range StormBaseTree {
		if r, err := s.shared["release"].do(wire.Write, 0, append([]byte(n[0]+"\x00"), n[1]...)); err != nil || r.Type == wire.Error {
			return fmt.Errorf("storm: base tree %s: %v %q", n[0], err, r.Payload)
		}
	}
	for _, wt := range [][2]string{{"console", "@introduceDomain"}, {"console", "@releaseDomain"}, {"kernel", "backend"}} {
		if r, err := s.shared[wt[0]].do(wire.Watch, 0, wire.JoinStrings(wt[1], wt[0])); err != nil || r.Type == wire.Error {
			return fmt.Errorf("storm: %s watch: %v %q", wt[0], err, r.Payload)
		}
	}
	return nil
}

// client is the connection r's role uses for domain k, dialled the first
// time.
func (s *stormRun) client(k uint32, role string, own map[string]*stormConn) (*stormConn, error) {
	c := s.shared[role]
	if role == "xlwatch" {
		c = s.watchers[k]
	} else if c == nil {
		c = own[role]
	}
	if c != nil {
		return c, nil
	}
	c, err := s.dial()
	if err != nil {
		return nil, err
	}
	if role == "xlwatch" {
		s.watchers[k] = c
	} else {
		own[role] = c
	}
	return c, nil
}

// do sends one traced request for domain k and compares its outcome with
// the trace's.
func (s *stormRun) do(k uint32, r stormReq, own map[string]*stormConn, skip *string) error {
	c, err := s.client(k, r.role, own)
	if err != nil {
		return err
	}
	payload := s.w.payload(r, k)
	// libxl's path cleanup walks up while a parent is empty: with other
	// domains alive it stops earlier than in the trace.
	if *skip != "" && (r.typ == wire.Rm || r.typ == wire.Read || r.typ == wire.Directory) &&
		strings.HasPrefix(*skip, strings.TrimRight(string(payload), "\x00")) {
		return nil
	}
	*skip = ""
	tx := c.tx
	if r.typ == wire.TransactionStart {
		tx = 0
	}
	reply, err := c.do(r.typ, tx, payload)
	if err != nil {
		return fmt.Errorf("storm: dom%d %s %q: %w", k, r.typ, payload, err)
	}
	s.res.Requests++
	got := ""
	if reply.Type == wire.Error {
		got = strings.TrimRight(string(reply.Payload), "\x00")
	}
	s.compare(k, r, payload, got)
	switch {
	case r.typ == wire.TransactionStart && got == "":
		id, perr := strconv.ParseUint(strings.TrimRight(string(reply.Payload), "\x00"), 10, 32)
		if perr != nil {
			return fmt.Errorf("storm: TRANSACTION_START reply %q", reply.Payload)
		}
		c.tx = uint32(id)
	case r.typ == wire.TransactionEnd:
		c.tx = 0
	case r.typ == wire.Directory && got == "" && len(reply.Payload) > 0:
		*skip = strings.TrimRight(string(payload), "\x00")
	}
	if r.typ == wire.Unwatch && r.role == "xlwatch" {
		s.closeConn(c) // that xl exits once its domain is gone
		s.watchers[k] = nil
	}
	return nil
}

// compare counts a reply that differs from the trace's. RM of a missing
// node: ENOENT when its parent is missing too, success otherwise; both
// leave it absent. The trace's host had no /vm and /libxl before its
// first domain; StormBaseTree has them.
func (s *stormRun) compare(k uint32, r stormReq, payload []byte, got string) {
	if got == r.wantErr || (r.typ == wire.Rm && got+r.wantErr == "ENOENT") {
		return
	}
	s.res.Mismatches++
	if s.res.FirstMismatch == "" {
		s.res.FirstMismatch = fmt.Sprintf("dom%d trace line %d %s %q: got %q, traced %q", k, r.line, r.typ,
			strings.ReplaceAll(string(payload), "\x00", " "), got, r.wantErr)
	}
}

// phase replays reqs for domain k and returns how long it took; release
// adds the toolstack's RELEASE before the dying domain's xl unwatches.
func (s *stormRun) phase(k uint32, reqs []stormReq, release bool) (time.Duration, error) {
	own := map[string]*stormConn{}
	skip := ""
	t0 := time.Now()
	released := !release
	rel := stormReq{role: "release", typ: wire.Release, payload: s.w.domid + " "}
	for _, r := range reqs {
		if !released && r.role == "xlwatch" {
			if err := s.do(k, rel, own, &skip); err != nil {
				return 0, err
			}
			released = true
		}
		if err := s.do(k, r, own, &skip); err != nil {
			return 0, err
		}
	}
	if !released {
		if err := s.do(k, rel, own, &skip); err != nil {
			return 0, err
		}
	}
	d := time.Since(t0)
	for _, c := range own {
		s.closeConn(c)
	}
	return d, nil
}

// Quantile of ds (nearest rank).
func durQuantile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := int(q*float64(len(s))+0.5) - 1
	return s[max(0, min(i, len(s)-1))]
}

// stormBuckets is the median of ds over n equal runs of k (the cost of
// the k-th domain; medians, as a loaded machine stalls a few at random).
func stormBuckets(ds []time.Duration, n int) []time.Duration {
	if len(ds) < n {
		n = len(ds)
	}
	out := make([]time.Duration, n)
	for b := 0; b < n; b++ {
		out[b] = durQuantile(ds[b*len(ds)/n:(b+1)*len(ds)/n], 0.5)
	}
	return out
}

// StormRow is one storm size against every target.
type StormRow struct {
	Domains int
	Results map[string]*StormResult // by target name
}

// StormSuite runs a storm of each size against every target in turn.
func StormSuite(targets []Target, sizes []int, log func(string)) ([]StormRow, error) {
	tr, err := DefaultStormTrace()
	if err != nil {
		return nil, err
	}
	var rows []StormRow
	for _, n := range sizes {
		row := StormRow{Domains: n, Results: map[string]*StormResult{}}
		for _, tg := range targets {
			r, err := Storm(StormOptions{Socket: tg.Socket, Domains: n, Trace: tr})
			if err != nil {
				return rows, fmt.Errorf("storm of %d domains on %s: %w", n, tg.Name, err)
			}
			row.Results[tg.Name] = r
			if log != nil {
				log(fmt.Sprintf("  storm %d domains %s: %.2fs", n, tg.Name, r.Elapsed.Seconds()))
			}
		}
		rows = append(rows, row)
	}
	return rows, nil
}

// flatLimit is how much dearer the last tenth of domains may be than the
// first for the per-domain cost to count as flat.
const flatLimit = 1.25

// StormTable renders the storm: per size and server the total time, the
// per-domain create and destroy p50/p99, then for the largest size the
// mean cost of the k-th domain in tenths, and the targets (ours >= 2x the
// baseline's speed at the largest size; flat cost).
func StormTable(rows []StormRow, targets []Target, baseline string, md bool) string {
	ms := func(d time.Duration) string { return fmt.Sprintf("%.2f", float64(d.Microseconds())/1000) }
	h := []string{"domains", "server", "total s", "speed vs " + baseline, "create p50 ms", "create p99 ms", "destroy p50 ms", "destroy p99 ms", "requests/s", "replies unlike trace"}
	var out [][]string
	for _, row := range rows {
		base := row.Results[baseline]
		for i, tg := range targets {
			r := row.Results[tg.Name]
			if r == nil {
				continue
			}
			first := ""
			if i == 0 {
				first = strconv.Itoa(row.Domains)
			}
			ratio := ""
			if base != nil {
				ratio = fmt.Sprintf("%.2fx", base.Elapsed.Seconds()/r.Elapsed.Seconds())
			}
			out = append(out, []string{first, tg.Name, fmt.Sprintf("%.2f", r.Elapsed.Seconds()), ratio,
				ms(durQuantile(r.Create, 0.5)), ms(durQuantile(r.Create, 0.99)),
				ms(durQuantile(r.Destroy, 0.5)), ms(durQuantile(r.Destroy, 0.99)),
				fmt.Sprintf("%.0f", float64(r.Requests)/r.Elapsed.Seconds()), strconv.Itoa(r.Mismatches)})
		}
	}
	s := table(md, h, out)
	if len(rows) == 0 {
		return s
	}
	last := rows[len(rows)-1]
	n := last.Domains
	const tenths = 10
	if n >= tenths {
		s += fmt.Sprintf("\ncost of the k-th domain, %d domains: median ms per tenth of k (create of k while k-1 exist; destroy of k in creation order)\n", n)
		bh := []string{"server", "phase"}
		for b := 0; b < tenths; b++ {
			bh = append(bh, fmt.Sprintf("k %d-%d", b*n/tenths+1, (b+1)*n/tenths))
		}
		var bout [][]string
		for _, tg := range targets {
			r := last.Results[tg.Name]
			if r == nil {
				continue
			}
			for _, ph := range []struct {
				name string
				ds   []time.Duration
			}{{"create", r.Create}, {"destroy", r.Destroy}} {
				line := []string{tg.Name, ph.name}
				for _, d := range stormBuckets(ph.ds, tenths) {
					line = append(line, ms(d))
				}
				bout = append(bout, line)
			}
		}
		s += table(md, bh, bout)
	}
	for _, tg := range targets {
		if r := last.Results[tg.Name]; r != nil && r.Mismatches > 0 {
			s += fmt.Sprintf("%s: %d replies unlike the trace (%.1f per domain), the first: %s\n", tg.Name, r.Mismatches,
				float64(r.Mismatches)/float64(r.Domains), r.FirstMismatch)
		}
	}
	if ours, base := last.Results["go"], last.Results[baseline]; ours != nil && base != nil {
		x := base.Elapsed.Seconds() / ours.Elapsed.Seconds()
		s += fmt.Sprintf("target go >= 2x %s at %d domains (total time): %.2fx %s\n", baseline, n, x, verdict(x >= 2))
	}
	if n >= 10 {
		for _, tg := range targets {
			r := last.Results[tg.Name]
			if r == nil {
				continue
			}
			b := stormBuckets(r.Create, 10)
			d := stormBuckets(r.Destroy, 10)
			gc := float64(b[len(b)-1]) / float64(b[0])
			// Destroys run in creation order, so the first tenth is
			// destroyed with the most domains alive.
			gd := float64(d[0]) / float64(d[len(d)-1])
			line := fmt.Sprintf("per-domain cost %s: last tenth of creates / first %.2fx, destroys with most alive / fewest %.2fx", tg.Name, gc, gd)
			if tg.Name == "go" {
				line = fmt.Sprintf("target flat per-domain cost (<= %.2fx), go: creates %.2fx, destroys %.2fx %s", flatLimit, gc, gd, verdict(gc <= flatLimit && gd <= flatLimit))
			}
			s += line + "\n"
		}
	}
	return s
}
