package store

import (
	"strconv"
	"strings"
	"testing"

	"github.com/xsstub/xenstored/wire"
)

// guestHome gives domain id a writable home, as the toolstack does.
func guestHome(t *testing.T, d *tconn, id string) {
	t.Helper()
	d.write("/local/domain/"+id, "")
	d.must(wire.SetPerms, 0, "/local/domain/"+id, "n"+id)
}

func TestQuotas(t *testing.T) {
	tests := []struct {
		name  string
		quota Quota
		value int
		run   func(g *tconn) string // returns the error name of the breach
	}{
		{"nodes", QNodes, 3, func(g *tconn) string {
			g.write("a", "")
			g.write("b", "")
			return g.writeErr("c", "")
		}},
		{"nodes via implicit parents", QNodes, 3, func(g *tconn) string {
			return g.writeErr("x/y/z", "")
		}},
		{"node-size", QNodeSize, 100, func(g *tconn) string {
			g.write("small", "x")
			return g.writeErr("big", strings.Repeat("v", 100))
		}},
		{"node-permissions", QNodePerms, 2, func(g *tconn) string {
			g.write("p", "")
			g.must(wire.SetPerms, 0, "p", "n5", "r0")
			_, e := g.call(wire.SetPerms, 0, "p", "n5", "r0", "r1")
			return e
		}},
		{"path-max", QPathMax, 10, func(g *tconn) string {
			g.write("0123456789", "")
			return g.writeErr("0123456789a", "")
		}},
		{"memory", QMemory, 3000, func(g *tconn) string {
			g.write("a", strings.Repeat("v", 1000))
			g.write("b", strings.Repeat("v", 1000))
			return g.writeErr("c", strings.Repeat("v", 1000))
		}},
		{"watches", QWatches, 2, func(g *tconn) string {
			g.must(wire.Watch, 0, "a", "1")
			g.must(wire.Watch, 0, "a", "2")
			_, e := g.call(wire.Watch, 0, "a", "3")
			return e
		}},
	}
	want := map[Quota]string{QPathMax: "EINVAL", QMemory: "ENOMEM"}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newTestEngine(t, nil)
			d := dom0(t, e)
			guestHome(t, d, "5")
			d.must(wire.SetQuota, 0, "5", tt.quota.String(), itoaQ(tt.value))
			g := guest(t, e, 5)
			errName := tt.run(g)
			w := want[tt.quota]
			if w == "" {
				w = "ENOSPC"
			}
			if errName != w {
				t.Fatalf("breach gave %q, want %s", errName, w)
			}
			// dom0 is exempt from the per-domain quotas.
			d.write("/local/domain/5/dom0-"+strings.Repeat("x", 50), strings.Repeat("v", 3000))
			checkConsistent(t, e)
		})
	}
}

func itoaQ(v int) string {
	var b []byte
	for v > 0 {
		b = append([]byte{byte('0' + v%10)}, b...)
		v /= 10
	}
	return string(b)
}

func TestGetSetQuota(t *testing.T) {
	e := newTestEngine(t, nil)
	d := dom0(t, e)
	names := d.must(wire.GetQuota, 0)
	for _, n := range []string{"nodes", "watches", "transactions", "node-size", "maxoutstanding", "maxwatchevents", "soft-memory"} {
		if !strings.Contains(names, n) {
			t.Errorf("GET_QUOTA list %q lacks %s", names, n)
		}
	}
	if got := d.must(wire.GetQuota, 0, "nodes"); got != "1000\x00" {
		t.Errorf("nodes quota %q", got)
	}
	d.must(wire.SetQuota, 0, "nodes", "2000")
	if got := d.must(wire.GetQuota, 0, "nodes"); got != "2000\x00" {
		t.Errorf("nodes quota %q after set", got)
	}
	d.must(wire.SetQuota, 0, "3", "watches", "7")
	if got := d.must(wire.GetQuota, 0, "3", "watches"); got != "7\x00" {
		t.Errorf("domain quota %q", got)
	}
	d.fails("EINVAL", wire.SetQuota, 0, "bogus", "1")
	d.fails("EINVAL", wire.SetQuota, 0, "nodes", "0")
	d.fails("EINVAL", wire.GetQuota, 0, "soft-nodes")
	d.fails("EINVAL", wire.GetQuota, 0, "a", "b", "c")
}

// When a domain goes, its nodes go and entries naming it are dropped, so a
// domain reusing the id inherits nothing (XSA-322, XSA-419, XSA-483).
func TestDomainDeathCleansUp(t *testing.T) {
	e := newTestEngine(t, nil)
	d := dom0(t, e)
	w := dom0(t, e)
	d.must(wire.Introduce, 0, "5", "1", "1")
	guestHome(t, d, "5")
	g := guest(t, e, 5)
	g.write("data", "x")
	d.write("/shared", "")
	d.must(wire.SetPerms, 0, "/shared", "n0", "b5")
	d.write("/local/domain/0", "")
	d.must(wire.SetPerms, 0, "/local/domain/0", "n0", "r5")
	g.write("/shared/guest-made", "y") // outside its home, owned by 5
	w.must(wire.Watch, 0, "@releaseDomain", "r")
	w.takeEvents()
	g.c.Close()
	e.DomainGone(5, true)
	if got := w.drainEvents(); len(got) != 1 || got[0] != "@releaseDomain r" {
		t.Fatalf("release events %q", got)
	}
	d.fails("ENOENT", wire.Read, 0, "/local/domain/5")
	d.fails("ENOENT", wire.Read, 0, "/shared/guest-made")
	// As C xenstored 4.22: the entries naming the dead domain are gone.
	if got := d.must(wire.GetPerms, 0, "/shared"); got != "n0\x00" {
		t.Fatalf("perms of /shared after the death: %q", got)
	}
	if got := d.must(wire.GetPerms, 0, "/local/domain/0"); got != "n0\x00" {
		t.Fatalf("perms of /local/domain/0 after the death: %q", got)
	}
	d.must(wire.Introduce, 0, "5", "1", "1")
	g2 := guest(t, e, 5)
	g2.fails("EACCES", wire.Read, 0, "/shared")
	g2.fails("EACCES", wire.Read, 0, "/local/domain/0")
	checkConsistent(t, e)
}

// TestDomainDeathInDom0OwnedHome: libxl makes a guest's home owned by
// dom0 ("n0,r<domid>"). Nodes there are found at death by walking the home
// (the permission index leaves them out): the guest's own go, dom0's keep
// their place and lose their entries for the dead guest (as C 4.22).
func TestDomainDeathInDom0OwnedHome(t *testing.T) {
	e := newTestEngine(t, nil)
	d := dom0(t, e)
	d.must(wire.Introduce, 0, "7", "1", "1")
	d.write("/local/domain/7/control/shutdown", "")
	d.must(wire.SetPerms, 0, "/local/domain/7", "n0", "r7")
	d.must(wire.SetPerms, 0, "/local/domain/7/control", "n0", "r7")
	d.must(wire.SetPerms, 0, "/local/domain/7/control/shutdown", "n0", "b7")
	d.write("/local/domain/7/data", "")
	d.must(wire.SetPerms, 0, "/local/domain/7/data", "b7")
	g := guest(t, e, 7)
	g.write("data/deep/er", "x") // owned by 7, in a dom0-owned home
	d.write("/local/domain/70/x", "")
	d.must(wire.SetPerms, 0, "/local/domain/70/x", "n0", "r7") // not 7's home: indexed
	checkConsistent(t, e)
	if n := len(e.mentions[7]); n != 1 {
		t.Errorf("index holds %d paths for domain 7, want 1 (/local/domain/70/x)", n)
	}
	g.c.Close()
	e.DomainGone(7, true)
	d.fails("ENOENT", wire.Read, 0, "/local/domain/7/data")
	for path, want := range map[string]string{
		"/local/domain/7":                  "n0\x00",
		"/local/domain/7/control":          "n0\x00",
		"/local/domain/7/control/shutdown": "n0\x00",
		"/local/domain/70/x":               "n0\x00",
	} {
		if got := d.must(wire.GetPerms, 0, path); got != want {
			t.Errorf("%s: perms %q after the death, want %q", path, got, want)
		}
	}
	if n := len(e.mentions[7]); n != 0 {
		t.Errorf("index holds %d paths for the dead domain 7", n)
	}
	checkConsistent(t, e)
	// A new domain 7 inherits nothing.
	d.must(wire.Introduce, 0, "7", "1", "1")
	g2 := guest(t, e, 7)
	g2.fails("EACCES", wire.Read, 0, "/local/domain/70/x")
	g2.fails("EACCES", wire.Write, 0, "/local/domain/7/control/shutdown", "x")
}

func TestShutdownFiresOnceUntilResume(t *testing.T) {
	e := newTestEngine(t, nil)
	d, w := dom0(t, e), dom0(t, e)
	d.must(wire.Introduce, 0, "4", "1", "1")
	w.must(wire.Watch, 0, "@releaseDomain", "r")
	w.takeEvents()
	e.DomainGone(4, false)
	e.DomainGone(4, false)
	if got := w.drainEvents(); len(got) != 1 {
		t.Fatalf("shutdown events %q, want one", got)
	}
	d.must(wire.Resume, 0, "4")
	e.DomainGone(4, false)
	if got := w.drainEvents(); len(got) != 1 {
		t.Fatalf("after resume %q, want one", got)
	}
	if got := d.must(wire.IsDomainIntroduced, 0, "4"); got != "T\x00" {
		t.Fatal("a shut-down domain is still introduced until it dies")
	}
}

func TestFeatures(t *testing.T) {
	e := newTestEngine(t, nil)
	d := dom0(t, e)
	if got := d.must(wire.GetFeature, 0); got != "15\x00" {
		t.Fatalf("features %q", got)
	}
	d.must(wire.SetFeature, 0, "6", "2")
	if got := d.must(wire.GetFeature, 0, "6"); got != "2\x00" {
		t.Fatalf("domain features %q", got)
	}
	d.fails("EINVAL", wire.SetFeature, 0, "6", "64")
	d.must(wire.Introduce, 0, "6", "1", "1")
	d.fails("EBUSY", wire.SetFeature, 0, "6", "1")
}

func TestControl(t *testing.T) {
	e := newTestEngine(t, nil)
	d := dom0(t, e)
	for _, cmd := range [][]string{{"help"}, {"check"}, {"memreport"}, {"quota"}, {"quota-soft"}, {"connections"}, {"queues", "0"}, {"print", "hello"}, {"log"}, {"log", "on"}, {"log", "off"}, {"quota", "set", "nodes", "4000"}, {"quota", "0"}} {
		if _, errName := d.call(wire.Control, 0, cmd...); errName != "" {
			t.Errorf("CONTROL %q: %s", cmd, errName)
		}
	}
	if got := d.must(wire.GetQuota, 0, "nodes"); got != "4000\x00" {
		t.Errorf("CONTROL quota set not applied: %q", got)
	}
	for _, cmd := range [][]string{{"nonsense"}, {"quota", "set", "nodes"}, {"quota", "set", "bogus", "3"}, {"help", "x"}} {
		d.fails("EINVAL", wire.Control, 0, cmd...)
	}
	if got := d.must(wire.Control, 0, "queues", "0"); !strings.Contains(got, "replies-queued") {
		t.Errorf("queues output %q", got)
	}
}

// quotaUsage parses one usage line of CONTROL quota <domid>
// ("transactions     :        2"), failing the test if it is missing.
func quotaUsage(t *testing.T, d *tconn, domid, name string) int {
	t.Helper()
	out := d.must(wire.Control, 0, "quota", domid)
	for _, line := range strings.Split(out, "\n") {
		k, v, found := strings.Cut(line, ":")
		if found && strings.TrimSpace(k) == name {
			n, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil {
				t.Fatalf("quota %s: line %q: %v", domid, line, err)
			}
			return n
		}
	}
	t.Fatalf("quota %s: no %q line in %q", domid, name, out)
	return 0
}

// TestDomainTransactionCount: CONTROL quota DOMID reports the domain's open
// transactions, through every way a transaction ends (issue 13 item 6).
func TestDomainTransactionCount(t *testing.T) {
	tests := []struct {
		name string
		// end ends the open transactions (or some) and returns how many
		// are left open.
		end func(t *testing.T, e *Engine, g *tconn, txs []uint32) int
	}{
		{"commit and abort", func(t *testing.T, e *Engine, g *tconn, txs []uint32) int {
			g.must(wire.TransactionEnd, txs[0], "T")
			g.must(wire.TransactionEnd, txs[1], "F")
			return 1
		}},
		{"failed commit", func(t *testing.T, e *Engine, g *tconn, txs []uint32) int {
			g.must(wire.Read, txs[0], "a")
			g.write("a", "changed")
			g.fails("EAGAIN", wire.TransactionEnd, txs[0], "T")
			return 2
		}},
		{"reset watches", func(t *testing.T, e *Engine, g *tconn, txs []uint32) int {
			g.must(wire.ResetWatches, 0, "")
			return 0
		}},
		{"connection closed", func(t *testing.T, e *Engine, g *tconn, txs []uint32) int {
			g.c.Close()
			return 0
		}},
		{"ring broken", func(t *testing.T, e *Engine, g *tconn, txs []uint32) int {
			e.MarkBroken(g.c, "test")
			return 0
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newTestEngine(t, nil)
			d := dom0(t, e)
			guestHome(t, d, "5")
			g := guest(t, e, 5)
			g.write("a", "")
			var txs []uint32
			for i := 0; i < 3; i++ {
				txs = append(txs, startTx(t, g))
			}
			if got := quotaUsage(t, d, "5", "transactions"); got != 3 {
				t.Fatalf("after 3 starts: %d transactions", got)
			}
			want := tt.end(t, e, g, txs)
			if got := quotaUsage(t, d, "5", "transactions"); got != want {
				t.Fatalf("%d transactions, want %d", got, want)
			}
			checkConsistent(t, e)
		})
	}
}

// The daemon's hooks: memreport carries the system report, and FirstAnswer
// runs once, after the first request, not at start.
func TestSystemHooks(t *testing.T) {
	answered := make(chan struct{}, 4)
	e := newTestEngine(t, func(c *Config) {
		c.SystemReport = func() string { return "system (kB): MemTotal=1\n" }
		c.FirstAnswer = func() { answered <- struct{}{} }
	})
	select {
	case <-answered:
		t.Fatal("FirstAnswer ran before any request")
	default:
	}
	d := dom0(t, e)
	if got := d.must(wire.Control, 0, "memreport"); !strings.Contains(got, "system (kB): MemTotal=1\n") {
		t.Errorf("memreport %q lacks the system report at its end", got)
	}
	d.must(wire.Write, 0, "/a", "1")
	<-answered
	d.must(wire.Read, 0, "/a")
	select {
	case <-answered:
		t.Fatal("FirstAnswer ran twice")
	default:
	}
}

// TestQuotaValueRule: CONTROL quota set and SET_QUOTA (global and per
// domain) take the same values: C's atoi reading, 1 to 2^31-1. Larger
// ones are refused, not wrapped (C would make 2^32+1 a quota of 1) nor
// kept past what a live update's 32 bits carry.
func TestQuotaValueRule(t *testing.T) {
	for _, tt := range []struct {
		value string
		want  string // the nodes quota after; "" refused with EINVAL
	}{
		{"2147483647", "2147483647"},
		{"4000", "4000"},
		{" 12abc", "12"}, // as C's atoi
		{"2147483648", ""},
		{"4294967297", ""},
		{"99999999999999999999999", ""},
		{"0", ""},
		{"-5", ""},
		{"abc", ""},
	} {
		for _, path := range []struct {
			name string
			set  func(d *tconn) (string, string)
			get  []string
		}{
			{"CONTROL quota set", func(d *tconn) (string, string) {
				return d.call(wire.Control, 0, "quota", "set", "nodes", tt.value)
			}, []string{"nodes"}},
			{"SET_QUOTA", func(d *tconn) (string, string) { return d.call(wire.SetQuota, 0, "nodes", tt.value) }, []string{"nodes"}},
			{"SET_QUOTA domain", func(d *tconn) (string, string) { return d.call(wire.SetQuota, 0, "3", "nodes", tt.value) }, []string{"3", "nodes"}},
		} {
			t.Run(path.name+" "+tt.value, func(t *testing.T) {
				e := newTestEngine(t, nil)
				d := dom0(t, e)
				d.must(wire.Introduce, 0, "3", "1", "1")
				_, errName := path.set(d)
				got := strings.TrimSuffix(d.must(wire.GetQuota, 0, path.get...), "\x00")
				switch {
				case tt.want == "" && (errName != "EINVAL" || got != "1000"):
					t.Errorf("reply %q, quota %s; want EINVAL and 1000 kept", errName, got)
				case tt.want != "" && (errName != "" || got != tt.want):
					t.Errorf("reply %q, quota %s; want %s", errName, got, tt.want)
				}
			})
		}
	}
}

// TestControlQuotaUnknownDomain: CONTROL quota DOMID answers ENOENT for a
// domain neither introduced, existing nor accounted for, as C does, even
// when a quota read or set left a record for it.
func TestControlQuotaUnknownDomain(t *testing.T) {
	for _, tt := range []struct {
		name    string
		setup   [][]string // CONTROL-free requests: type name then args
		domid   string
		wantErr string
	}{
		{"never seen", nil, "999", "ENOENT"},
		{"a quota read", [][]string{{"GET_QUOTA", "999", "nodes"}}, "999", "ENOENT"},
		{"a quota set", [][]string{{"SET_QUOTA", "999", "nodes", "5"}}, "999", "ENOENT"},
		{"owns a node", [][]string{{"WRITE", "/a", "1"}, {"SET_PERMS", "/a", "n999"}}, "999", ""},
		{"introduced", [][]string{{"INTRODUCE", "7", "1", "1"}}, "7", ""},
		{"the control domain", nil, "0", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newTestEngine(t, nil)
			d := dom0(t, e)
			types := map[string]wire.Type{"GET_QUOTA": wire.GetQuota, "SET_QUOTA": wire.SetQuota,
				"WRITE": wire.Write, "SET_PERMS": wire.SetPerms, "INTRODUCE": wire.Introduce}
			for _, r := range tt.setup {
				d.must(types[r[0]], 0, r[1:]...)
			}
			if _, errName := d.call(wire.Control, 0, "quota", tt.domid); errName != tt.wantErr {
				t.Errorf("CONTROL quota %s: %q, want %q", tt.domid, errName, tt.wantErr)
			}
		})
	}
}

// TestKnownDomainsLeaveReservedIDs: a DOMID_ANY permission entry is no
// domain to follow. Listed as known, every scan that reports the known
// domains missing (4.17's enumeration, 4.18-4.20's per-domain queries,
// the check after a live update) took it for a dead domain and dropped the
// entry: the node became unreadable to the domains it was shared with.
func TestKnownDomainsLeaveReservedIDs(t *testing.T) {
	e := newTestEngine(t, nil)
	d0 := dom0(t, e)
	if _, errName := d0.call(wire.Write, 0, "/shared", "v"); errName != "" {
		t.Fatal(errName)
	}
	if _, errName := d0.call(wire.SetPerms, 0, "/shared", "n0", "r32757"); errName != "" {
		t.Fatal(errName)
	}
	for _, id := range e.KnownDomains() {
		if id >= 0x7ff0 {
			t.Errorf("KnownDomains lists reserved id %#x", id)
		}
		e.DomainGone(id, true) // what a scan that finds it missing does
	}
	if got, errName := d0.call(wire.GetPerms, 0, "/shared"); got != "n0\x00r32757\x00" {
		t.Errorf("GET_PERMS /shared = %q %s, want the DOMID_ANY entry kept", got, errName)
	}
}

// TestControlDomUDeath: a control domain that is a domU (dom0less: the
// domain with DOMAIN_CAPS_CONTROL) is released when it really dies, as C
// xenstored 4.22's check_domains releases any introduced domain; only the
// store's own domain and dom0 are never taken for dead.
func TestControlDomUDeath(t *testing.T) {
	e := newTestEngine(t, func(c *Config) { c.PrivDomid, c.StoreDomid = 3, 1 })
	if err := e.IntroduceDomain(3, 1, 1); err != nil {
		t.Fatal(err)
	}
	if err := e.IntroduceDomain(4, 1, 1); err != nil {
		t.Fatal(err)
	}
	ctl := &tconn{t: t, c: e.NewConn(3, true, nil)}
	ctl.write("/local/domain/3/x", "1")
	w := guest(t, e, 4)
	w.must(wire.Watch, 0, "@releaseDomain", "r")
	w.takeEvents()
	e.DomainGone(0, true) // dom0: never
	e.DomainGone(1, true) // the store itself: never
	e.DomainGone(3, true)
	if got := w.drainEvents(); len(got) != 1 || got[0] != "@releaseDomain r" {
		t.Fatalf("release events %q, want one", got)
	}
	d := dom0(t, e)
	if got := d.must(wire.IsDomainIntroduced, 0, "3"); got != "F\x00" {
		t.Errorf("the dead control domain: IS_DOMAIN_INTRODUCED %q", got)
	}
	if got := d.must(wire.IsDomainIntroduced, 0, "4"); got != "T\x00" {
		t.Errorf("domain 4: IS_DOMAIN_INTRODUCED %q", got)
	}
}
