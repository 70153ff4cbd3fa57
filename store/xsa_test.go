package store

// One test per xenstore security advisory that the engine alone can show
// (ring-level advisories are tested with the fake ring transport). Each
// states the attack, asserts the correct behaviour, and checks that another
// client is unaffected.

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/xsstub/xenstored/wire"
)

// bystander proves a third client is still served normally.
func bystander(t *testing.T, e *Engine) {
	t.Helper()
	b := dom0(t, e)
	b.write("/bystander", "ok")
	if b.read("/bystander") != "ok" {
		t.Fatal("bystander not served")
	}
	checkConsistent(t, e)
}

func setupGuest(t *testing.T, e *Engine, id int) (*tconn, *tconn) {
	d := dom0(t, e)
	ids := strconv.Itoa(id)
	d.must(wire.Introduce, 0, ids, "1", "1")
	guestHome(t, d, ids)
	return d, guest(t, e, uint32(id))
}

// XSA-72: a guest builds a directory whose listing exceeds 4096 bytes; the
// domain listing it gets E2BIG and keeps its connection.
func TestXSA72OversizedReply(t *testing.T) {
	e := newTestEngine(t, nil)
	d, g := setupGuest(t, e, 5)
	d.must(wire.SetQuota, 0, "5", "nodes", "5000")
	d.must(wire.SetQuota, 0, "5", "node-size", "16384") // else node-size stops it
	for i := 0; i < 400; i++ {
		g.write("big/"+strings.Repeat("n", 12)+strconv.Itoa(i), "")
	}
	d.fails("E2BIG", wire.Directory, 0, "/local/domain/5/big")
	d.write("/after", "x")
	bystander(t, e)
}

// XSA-115: events and errors leak nothing about unreadable nodes; special
// watches need permission; IS_DOMAIN_INTRODUCED is privileged; WATCH
// ignores tx_id.
func TestXSA115InformationLeaks(t *testing.T) {
	e := newTestEngine(t, nil)
	d, g := setupGuest(t, e, 5)
	d.write("/secret/a", "s")
	g.must(wire.Watch, 0, "/secret", "w")
	g.must(wire.Watch, 0, "@introduceDomain", "i")
	g.takeEvents()
	d.write("/secret/b", "s")
	d.must(wire.Introduce, 0, "8", "1", "1")
	if ev := g.drainEvents(); len(ev) != 0 {
		t.Fatalf("guest saw %q", ev)
	}
	g.fails("EACCES", wire.Read, 0, "/secret/nonexistent")
	g.fails("EACCES", wire.IsDomainIntroduced, 0, "8")
	tx := uint32(4711) // not a transaction of the guest's: must be ignored
	g.must(wire.Watch, tx, "/local/domain/5", "t")
	bystander(t, e)
}

// XSA-233: a domain and its target (device model) die together in either
// order; nothing dangles.
func TestXSA233DomainAndTargetDie(t *testing.T) {
	for _, order := range [][2]uint32{{5, 6}, {6, 5}} {
		e := newTestEngine(t, nil)
		d, _ := setupGuest(t, e, 5)
		setupGuest(t, e, 6)
		d.must(wire.SetTarget, 0, "6", "5")
		e.DomainGone(order[0], true)
		e.DomainGone(order[1], true)
		d.fails("ENOENT", wire.Read, 0, "/local/domain/5")
		bystander(t, e)
	}
}

// XSA-272: the node quota holds on every create path (WRITE, MKDIR,
// implicit parents, inside transactions).
func TestXSA272NodeQuotaEverywhere(t *testing.T) {
	paths := map[string]func(g *tconn) string{
		"write":    func(g *tconn) string { return g.writeErr("w", "") },
		"mkdir":    func(g *tconn) string { _, e := g.call(wire.Mkdir, 0, "m"); return e },
		"implicit": func(g *tconn) string { return g.writeErr("i/j/k", "") },
		"transaction": func(g *tconn) string {
			tx := g.must(wire.TransactionStart, 0, "")
			id, _ := strconv.Atoi(strings.TrimSuffix(tx, "\x00"))
			m := g.do(wire.Write, uint32(id), []byte("t\x00"))
			if m.Type == wire.Error {
				return string(m.Payload[:len(m.Payload)-1])
			}
			_, e := g.call(wire.TransactionEnd, uint32(id), "T")
			return e
		},
	}
	for name, create := range paths {
		t.Run(name, func(t *testing.T) {
			e := newTestEngine(t, nil)
			d, g := setupGuest(t, e, 5)
			d.must(wire.SetQuota, 0, "5", "nodes", "1") // the home itself
			if got := create(g); got != "ENOSPC" {
				t.Fatalf("create over quota: %q", got)
			}
			bystander(t, e)
		})
	}
}

// XSA-322 and XSA-417: a new domain reusing a domid inherits no
// permissions, and entries for domains that do not exist grant nothing.
func TestXSA322And417DomidReuse(t *testing.T) {
	exists := map[uint32]bool{0: true, 5: true}
	e := newTestEngine(t, func(c *Config) { c.Platform = fakePlatform{exists} })
	d, _ := setupGuest(t, e, 5)
	d.write("/shared", "s")
	d.must(wire.SetPerms, 0, "/shared", "n0", "r5", "r9") // 9 does not exist
	g9 := guest(t, e, 9)
	g9.fails("EACCES", wire.Read, 0, "/shared")
	delete(exists, 5)
	e.DomainGone(5, true)
	exists[5] = true
	d.must(wire.Introduce, 0, "5", "1", "1")
	g5 := guest(t, e, 5)
	g5.fails("EACCES", wire.Read, 0, "/shared")
	d.fails("ENOENT", wire.SetPerms, 0, "/shared", "n9") // unknown owner
	bystander(t, e)
}

type fakePlatform struct{ exists map[uint32]bool }

func (f fakePlatform) DomainExists(id uint32) bool { return f.exists[id] }
func (f fakePlatform) AttachRing(c *Conn, port uint32, gfn uint64) (func(), error) {
	return func() {}, nil
}
func (f fakePlatform) DetachRing(c *Conn) {}

// XSA-323: the path limit applies to the canonical path, so a relative
// path cannot create nodes that are unreadable by absolute path.
func TestXSA323PathLimitOnCanonicalPath(t *testing.T) {
	e := newTestEngine(t, nil)
	_, g := setupGuest(t, e, 5)
	seg := strings.Repeat("a", 511)
	rel := seg + "/" + seg + "/" + seg + "/" + seg + "b" // 2048 bytes
	g.write(rel, "")
	if g.read("/local/domain/5/"+rel) != "" {
		t.Fatal("node not readable by its canonical path")
	}
	if got := g.writeErr(rel+"b", ""); got != "EINVAL" {
		t.Fatalf("over-long relative path: %q", got)
	}
	bystander(t, e)
}

// XSA-324: a watch with a huge token would produce an event over 4096
// bytes: it is dropped (its initial event too), nothing crashes, and a
// watch with a short token on the same node gets its events.
func TestXSA324OversizedWatchEvent(t *testing.T) {
	e := newTestEngine(t, nil)
	d, g := setupGuest(t, e, 5)
	p := strings.Repeat("p", 200)
	g.must(wire.Watch, 0, p, strings.Repeat("t", 4000))
	g.must(wire.Watch, 0, p, "short")
	d.write("/local/domain/5/"+p, "x")
	got := append(g.takeEvents(), g.drainEvents()...)
	want := []string{p + " short", p + " short"} // initial, then the write
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("events %q, want %q", got, want)
	}
	bystander(t, e)
}

// XSA-326: replies and watch events are bounded (see queue_test.go for the
// mechanics); here a guest floods requests without reading.
func TestXSA326BoundedQueues(t *testing.T) {
	e := newTestEngine(t, nil)
	_, g := setupGuest(t, e, 5)
	n := 0
	for g.c.WantsInput() && n < 5000 {
		g.c.Handle(wire.Msg{Type: wire.Read, ReqID: uint32(n), Payload: []byte("/tool\x00")})
		n++
	}
	if n != 1024 {
		t.Fatalf("guest got %d requests in before back-pressure, want 1024", n)
	}
	bystander(t, e)
}

// XSA-330: RESET_WATCHES frees every watch and its accounting.
func TestXSA330ResetWatchesFreesAll(t *testing.T) {
	e := newTestEngine(t, nil)
	_, g := setupGuest(t, e, 5)
	for i := 0; i < 100; i++ {
		g.must(wire.Watch, 0, "w"+strconv.Itoa(i), "t")
	}
	g.must(wire.ResetWatches, 0, "")
	g.drainEvents()
	e.mu.Lock()
	left := len(g.c.watches)
	idx := 0
	for _, l := range e.watchIdx {
		idx += len(l)
	}
	e.mu.Unlock()
	if left != 0 || idx != 0 {
		t.Fatalf("%d watches, %d index entries left", left, idx)
	}
	for i := 0; i < 128; i++ { // the full quota is available again
		g.must(wire.Watch, 0, "w"+strconv.Itoa(i), "t")
	}
	bystander(t, e)
}

// XSA-352: an unprivileged owner cannot give a node away.
func TestXSA352NoOwnerChange(t *testing.T) {
	e := newTestEngine(t, nil)
	_, g := setupGuest(t, e, 5)
	g.write("mine", "")
	g.fails("EPERM", wire.SetPerms, 0, "mine", "n0")
	bystander(t, e)
}

// XSA-353: the root node is permission-checked like any other.
func TestXSA353RootChecked(t *testing.T) {
	e := newTestEngine(t, nil)
	_, g := setupGuest(t, e, 5)
	g.fails("EACCES", wire.SetPerms, 0, "/", "b5")
	g.fails("EACCES", wire.Rm, 0, "/")
	g.fails("EACCES", wire.Directory, 0, "/")
	g.fails("EACCES", wire.Write, 0, "/x")
	bystander(t, e)
}

// XSA-414/415/421/440: failed or partial writes, in and out of
// transactions, leave no orphans and consistent accounting.
func TestXSA414To440FailedWritesLeaveNothing(t *testing.T) {
	e := newTestEngine(t, nil)
	d, g := setupGuest(t, e, 5)
	d.must(wire.SetQuota, 0, "5", "nodes", "3")
	g.writeErr("a/b/c/d", "") // needs 4: fails whole
	d.fails("ENOENT", wire.Read, 0, "/local/domain/5/a")
	tx := startTx(t, g)
	txWrite(t, g, tx, "x", "")
	g.must(wire.Rm, tx, "x") // created and deleted in one transaction
	txWrite(t, g, tx, "y", "")
	d.must(wire.Rm, 0, "/local/domain/5/y") // removed outside (accounting dips)
	g.call(wire.TransactionEnd, tx, "T")
	checkConsistent(t, e)
	bystander(t, e)
}

// XSA-418: a deep tree is removed and checked without recursion.
func TestXSA418DeepTree(t *testing.T) {
	e := newTestEngine(t, nil)
	d := dom0(t, e)
	p := ""
	for i := 0; i < 1024; i++ { // the deepest path-max allows
		p += "/a"
	}
	d.write(p, "deep")
	checkConsistent(t, e)
	d.must(wire.Rm, 0, "/a")
	bystander(t, e)
}

// XSA-419: nodes a guest created outside its home die with it.
func TestXSA419OrphansRemoved(t *testing.T) {
	e := newTestEngine(t, nil)
	d, g := setupGuest(t, e, 5)
	d.write("/open", "")
	d.must(wire.SetPerms, 0, "/open", "b5")
	g.write("/open/leak", "x")
	e.DomainGone(5, true)
	d.fails("ENOENT", wire.Read, 0, "/open/leak")
	bystander(t, e)
}

// XSA-481: "/local/domain/" is a clean EINVAL.
func TestXSA481LocalDomainSlash(t *testing.T) {
	e := newTestEngine(t, nil)
	d, g := setupGuest(t, e, 5)
	for _, c := range []*tconn{d, g} {
		c.fails("EINVAL", wire.Read, 0, "/local/domain/")
		c.fails("EINVAL", wire.Write, 0, "/local/domain/")
	}
	bystander(t, e)
}

// XSA-483: a reused domid starts with fresh accounting.
func TestXSA483AccountingReset(t *testing.T) {
	e := newTestEngine(t, nil)
	d, g := setupGuest(t, e, 5)
	d.must(wire.SetQuota, 0, "5", "nodes", "10")
	for i := 0; i < 9; i++ {
		g.write("n"+strconv.Itoa(i), "")
	}
	e.DomainGone(5, true)
	_, g2 := setupGuest(t, e, 5)
	for i := 0; i < 9; i++ {
		g2.write("n"+strconv.Itoa(i), "") // default quota, no leftovers
	}
	bystander(t, e)
}

// XSA-484: RESET_WATCHES inside a transaction cleans up idempotently.
func TestXSA484ResetWatchesInTransaction(t *testing.T) {
	e := newTestEngine(t, nil)
	_, g := setupGuest(t, e, 5)
	tx := startTx(t, g)
	txWrite(t, g, tx, "a", "")
	g.must(wire.ResetWatches, tx, "")
	g.fails("ENOENT", wire.ResetWatches, tx, "") // the transaction is gone
	g.must(wire.ResetWatches, 0, "")
	bystander(t, e)
}

// XSA-206: a guest that rewrites a node as fast as it is served cannot
// starve the toolstack's transactions that read it: its writes are rate
// limited (the transport only reads it while WantsInput).
func TestXSA206WriteFloodCannotStarveDom0(t *testing.T) {
	for _, limited := range []bool{true, false} {
		clock := time.Unix(1000, 0)
		e := newTestEngine(t, func(c *Config) {
			c.Now = func() time.Time { return clock }
			if !limited {
				c.WriteRate = -1
			}
		})
		d, g := setupGuest(t, e, 5)
		g.write("x", "0")
		commits := 0
		for i := 0; i < 200; i++ {
			tx := startTx(t, d)
			d.must(wire.Read, tx, "/local/domain/5/x")
			// The guest writes whenever it is served, as a flood does.
			for j := 0; j < 5 && g.c.WantsInput(); j++ {
				g.write("x", strconv.Itoa(i))
			}
			clock = clock.Add(time.Millisecond)
			txWrite(t, d, tx, "/tool/state", strconv.Itoa(i))
			if _, errName := d.call(wire.TransactionEnd, tx, "T"); errName == "" {
				commits++
			}
		}
		if limited && commits < 150 {
			t.Fatalf("dom0 committed %d of 200 transactions under a write flood", commits)
		}
		if !limited && commits != 0 {
			t.Fatalf("without the limit the flood should starve dom0 (%d commits): the test shows nothing", commits)
		}
	}
}

// XSA-418 beyond the protocol's path limits: a 10 000-deep chain built
// inside the engine is checked, cleaned up on domain death and removed
// without recursion (a recursive walk would need 10 000 frames).
func TestXSA418TenThousandDeep(t *testing.T) {
	e := newTestEngine(t, nil)
	d, _ := setupGuest(t, e, 5)
	e.mu.Lock()
	p := "/local/domain/5"
	owner := Perms{{ID: 5}}
	for i := 0; i < 10000; i++ {
		parent := e.nodes.get(p).clone()
		parent.children = withChild(parent.children, "d")
		e.setLive(p, parent)
		p += "/d"
		e.setLive(p, &node{perms: owner})
	}
	e.mu.Unlock()
	checkConsistent(t, e)
	e.DomainGone(5, true) // removes the guest's nodes: the whole chain
	e.mu.Lock()
	left := e.nodes.len()
	e.mu.Unlock()
	if left > 10 {
		t.Fatalf("%d nodes left after the chain's owner died", left)
	}
	d.must(wire.Directory, 0, "/local/domain")
	bystander(t, e)
}
