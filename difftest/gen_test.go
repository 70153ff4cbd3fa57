//go:build linux

package difftest

import (
	"math/rand/v2"
	"os"
	"strings"

	"github.com/xsstub/xenstored/wire"
)

// The path alphabet is small so that operations collide: most requests hit
// a handful of nodes under /a and /b, their relative twins (which dom0 on a
// socket resolves under /local/domain/0), special @ paths, and a set of
// invalid paths.
var (
	absPaths = []string{
		"/a", "/a", "/a/b", "/a/b", "/a/b/c", "/a/c", "/a/b/c/d",
		"/b", "/b/a", "/a/x-y_z@1",
		"/local/domain/0", "/local/domain/0/a", "/local/domain/0/a/b", "/local/domain/5", "/local",
	}
	rarePaths = []string{"/", "/tool", "/tool/xenstored", "/local/domain"}
	relPaths  = []string{"a", "a/b", "a/b/c", "x", "a/c"}
	specials  = []string{"@introduceDomain", "@releaseDomain", "@foo", "@", "@a/b", "@introduceDomain/1"}
	badPaths  = []string{
		"", "/a/", "a/", "//a", "/a//b", "/a b", "/a*", "/a\x7f", "/\xc3\xa9", "/a/.", "/a/..",
		"/a\tb", "/a:b", "/a,b", "//", "/./a",
	}
)

// longPath returns a valid-looking path of exactly n bytes: absolute
// (under /l/) or relative (under l/).
func longPath(n int, rel bool) string {
	p := "/l/"
	if rel {
		p = "l/"
	}
	var b strings.Builder
	b.WriteString(p)
	for b.Len() < n {
		seg := min(n-b.Len(), 200)
		if seg > 1 && b.Len()+seg < n {
			b.WriteString(strings.Repeat("y", seg-1) + "/")
		} else {
			b.WriteString(strings.Repeat("y", seg))
		}
	}
	return b.String()
}

// Around XENSTORE_ABS_PATH_MAX (3072), XENSTORE_REL_PATH_MAX (2048), and a
// relative path whose absolute form (/local/domain/0/ is 16 bytes) crosses
// 3072.
var longPaths = []string{
	longPath(3071, false), longPath(3072, false), longPath(3073, false), longPath(4000, false),
	longPath(2047, true), longPath(2048, true), longPath(2049, true),
	longPath(3072-16, true), longPath(3072-15, true),
}

var values = [][]byte{
	nil, []byte("v1"), []byte("v2"), []byte("v3"), {0}, []byte("a\x00b"), {0xff, 0xfe, 0x80},
	[]byte(strings.Repeat("z", 100)), []byte(strings.Repeat("q", 2049)), []byte(strings.Repeat("w", 4000)),
	[]byte("v1\x00"),
}

var tokens = []string{"t1", "t2", "tok", "", "t1/x", strings.Repeat("k", 300)}

var goodPerms = []string{"n0", "r0", "w0", "b0", "n5", "r5", "w7", "b3", "n1", "r0"}

var badPerms = []string{
	"x0", "n", "nabc", "n-1", "n0x", "", "n4294967295", "n65535", "n65536", "n99999", "r 5",
	"N0", "n 0", "b+1", "n0x10", "n010", "n32752", "n32753", "n32767",
}

var domids = []string{
	"0", "0", "1", "5", "abc", "", "-1", "4294967295", "65535", "65536", "0x5", "5abc", "32752", "32753", " 5", "+5", "07",
}

// skip holds generator categories switched off through $DIFFTEST_SKIP (a
// comma-separated list), to look past known mismatches while exploring:
// longpath, badpath, special, rel, domid, badperms, malformed, control,
// unknown, domain, feature, oversize, reconnect, txn.
var skip = func() map[string]bool {
	m := map[string]bool{}
	for _, c := range strings.Split(os.Getenv("DIFFTEST_SKIP"), ",") {
		if c = strings.TrimSpace(c); c != "" {
			m[c] = true
		}
	}
	return m
}()

// gen makes one sequence from a seed.
type gen struct {
	r       *rand.Rand
	ops     []Op
	open    [numConns][]int // transactions believed open, per connection
	watches [numConns][][2]string
	nextTx  int
}

func (g *gen) pick(n int) int          { return g.r.IntN(n) }
func (g *gen) chance(pct int) bool     { return g.r.IntN(100) < pct }
func oneOf[T any](g *gen, xs []T) T    { return xs[g.r.IntN(len(xs))] }
func join(parts ...string) []byte      { return wire.JoinStrings(parts...) }
func cat(parts ...[]byte) (out []byte) { return append(out, bytesJoin(parts)...) }

func bytesJoin(parts [][]byte) []byte {
	var b []byte
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

// path draws a path: mostly valid and colliding, sometimes exotic.
func (g *gen) path() string {
	for {
		p, cat := g.path1()
		if !skip[cat] {
			return p
		}
	}
}

func (g *gen) path1() (string, string) {
	switch n := g.pick(100); {
	case n < 62:
		return oneOf(g, absPaths), ""
	case n < 74:
		return oneOf(g, relPaths), "rel"
	case n < 77:
		return oneOf(g, rarePaths), ""
	case n < 83:
		return oneOf(g, specials), "special"
	case n < 94:
		return oneOf(g, badPaths), "badpath"
	default:
		return oneOf(g, longPaths), "longpath"
	}
}

// tx picks the transaction for a data request on conn c.
func (g *gen) tx(c int) int {
	open := g.open[c]
	switch {
	case skip["txn"]:
		return txNone
	case len(open) > 0 && g.chance(45):
		return oneOf(g, open)
	case g.chance(2):
		return txBogus
	}
	return txNone
}

// malformed damages a well-formed payload: no final NUL, an extra
// argument, nothing at all, or a doubled NUL.
func (g *gen) malformed(p []byte) []byte {
	switch g.pick(5) {
	case 0:
		if len(p) > 0 && p[len(p)-1] == 0 {
			return p[:len(p)-1]
		}
		return append(p, 'x')
	case 1:
		return append(append([]byte{}, p...), join("extra")...)
	case 2:
		return nil
	case 3:
		return append(append([]byte{}, p...), 0)
	default:
		return []byte{0}
	}
}

func clampPayload(p []byte) []byte {
	if len(p) > wire.PayloadMax {
		return p[:wire.PayloadMax]
	}
	return p
}

func (g *gen) add(o Op) {
	o.Payload = clampPayload(o.Payload)
	g.ops = append(g.ops, o)
}

// step appends one random op.
func (g *gen) step() {
	c := g.pick(numConns)
	req := func(t wire.Type, tx int, p []byte) {
		if g.chance(6) && !skip["malformed"] {
			p = g.malformed(p)
			tx = txNone // see cUnsafe
		}
		if t == wire.SetPerms && len(p) > 0 && p[0] == '@' {
			tx = txNone // see cUnsafe
		}
		g.add(Op{Conn: c, Type: t, Tx: tx, Payload: p})
	}
	n := g.pick(1000)
	for skip[opCategory(n)] {
		n = g.pick(1000)
	}
	switch {
	case n < 190:
		v := oneOf(g, values)
		req(wire.Write, g.tx(c), cat(join(g.path()), v))
	case n < 300:
		req(wire.Read, g.tx(c), join(g.path()))
	case n < 350:
		req(wire.Mkdir, g.tx(c), join(g.path()))
	case n < 420:
		req(wire.Rm, g.tx(c), join(g.path()))
	case n < 490:
		req(wire.Directory, g.tx(c), join(g.path()))
	case n < 530:
		off := oneOf(g, []string{"0", "0", "1", "2", "3", "5", "100", "-1", "abc", ""})
		req(wire.DirectoryPart, g.tx(c), join(g.path(), off))
	case n < 580:
		req(wire.GetPerms, g.tx(c), join(g.path()))
	case n < 650:
		args := []string{g.path()}
		for range 1 + g.pick(3) {
			if g.chance(20) && !skip["badperms"] {
				args = append(args, oneOf(g, badPerms))
			} else {
				args = append(args, oneOf(g, goodPerms))
			}
		}
		if g.chance(4) {
			args = args[:1]
		}
		if g.chance(3) {
			for range 6 {
				args = append(args, oneOf(g, goodPerms))
			}
		}
		req(wire.SetPerms, g.tx(c), join(args...))
	case n < 730:
		args := []string{g.path(), oneOf(g, tokens)}
		if g.chance(5) {
			args = append(args, oneOf(g, []string{"0", "1", "2", "x"}))
		}
		tx := txNone
		if g.chance(5) {
			tx = g.tx(c)
		}
		req(wire.Watch, tx, join(args...))
		g.watches[c] = append(g.watches[c], [2]string{args[0], args[1]})
	case n < 770:
		if w := g.watches[c]; len(w) > 0 && g.chance(75) {
			x := oneOf(g, w)
			req(wire.Unwatch, txNone, join(x[0], x[1]))
			return
		}
		req(wire.Unwatch, txNone, join(g.path(), oneOf(g, tokens)))
	case n < 820 && len(g.open[c]) < 3, n < 870 && len(g.open[c]) == 0 && g.chance(80):
		g.nextTx++
		tx := txNone
		if g.chance(5) {
			tx = g.tx(c)
		}
		p := join("")
		if g.chance(5) {
			p = g.malformed(p)
		}
		g.add(Op{Conn: c, Type: wire.TransactionStart, Tx: tx, Payload: p, Start: g.nextTx})
		if tx == txNone {
			g.open[c] = append(g.open[c], g.nextTx)
		}
	case n < 870:
		if len(g.open[c]) == 0 {
			g.add(Op{Conn: c, Type: wire.TransactionEnd, Tx: g.tx(c), Payload: join("T")})
			return
		}
		i := g.pick(len(g.open[c]))
		tx := g.open[c][i]
		arg := oneOf(g, []string{"T", "T", "T", "F", "X", "", "TF"})
		p := join(arg)
		if g.chance(5) {
			p = g.malformed(p)
		}
		g.add(Op{Conn: c, Type: wire.TransactionEnd, Tx: tx, Payload: p})
		if arg == "T" || arg == "F" {
			g.open[c] = append(g.open[c][:i], g.open[c][i+1:]...)
		}
	case n < 890:
		req(wire.GetDomainPath, txNone, join(g.domid()))
	case n < 910:
		req(wire.IsDomainIntroduced, txNone, join(g.domid()))
	case n < 920:
		req(wire.ResetWatches, txNone, oneOf(g, [][]byte{nil, {0}}))
		// RESET_WATCHES also ends the caller's transactions in newer
		// xenstored; keep referring to them anyway (stale ids).
	case n < 935:
		t := oneOf(g, []wire.Type{20, 27, 28, 100, 0xffff, 0x7fffffff, wire.WatchEvent, wire.Error})
		g.add(Op{Conn: c, Type: t, Payload: join(g.path())})
	case n < 950:
		t := oneOf(g, []wire.Type{wire.Introduce, wire.Release, wire.Resume, wire.SetTarget, wire.Release, wire.Resume})
		if g.chance(60) {
			// Well-formed, on a few domains, so that introductions,
			// releases and their special watch events happen.
			d := oneOf(g, []string{"1", "2", "3", "5"})
			switch t {
			case wire.Introduce:
				req(t, txNone, join(d, oneOf(g, []string{"0", "1234"}), oneOf(g, []string{"1", "7", "9"})))
			case wire.SetTarget:
				req(t, txNone, join(d, oneOf(g, []string{"1", "2", "3", "5"})))
			default:
				req(t, txNone, join(d))
			}
			return
		}
		args := []string{g.domid()}
		for range g.pick(3) {
			args = append(args, g.domid())
		}
		req(t, txNone, join(args...))
	case n < 960:
		req(wire.Control, txNone, oneOf(g, [][]byte{nil, {0}, join("nosuchcmd"), join("check"), join("check", "x")}))
	case n < 975:
		t := oneOf(g, []wire.Type{wire.GetFeature, wire.SetFeature, wire.GetQuota, wire.SetQuota})
		args := []string{}
		for range g.pick(3) {
			args = append(args, oneOf(g, []string{"0", "5", "nodes", "watches", "bogus", "abc"}))
		}
		// Only reading or invalid quota requests: a valid SET_QUOTA would
		// change our daemon's limits and nothing in C 4.17.
		if t == wire.SetQuota || t == wire.SetFeature {
			args = append(args, "bogus", "x", "y")
		}
		req(t, txNone, join(args...))
	case n < 990:
		g.add(Op{Conn: c, Act: actReconnect})
		g.open[c], g.watches[c] = nil, nil
	default:
		g.add(Op{Conn: c, Act: actOversize})
		g.add(Op{Conn: c, Act: actReconnect})
		g.open[c], g.watches[c] = nil, nil
	}
}

// opCategory is the $DIFFTEST_SKIP category of step's choice n.
func opCategory(n int) string {
	switch {
	case n >= 770 && n < 870:
		return "txn"
	case n >= 920 && n < 935:
		return "unknown"
	case n >= 935 && n < 950:
		return "domain"
	case n >= 950 && n < 960:
		return "control"
	case n >= 960 && n < 975:
		return "feature"
	case n >= 975 && n < 990:
		return "reconnect"
	case n >= 990:
		return "oversize"
	}
	return ""
}

// domid draws a domain id argument, garbage unless "domid" is skipped.
func (g *gen) domid() string {
	if skip["domid"] {
		return oneOf(g, []string{"0", "1", "5"})
	}
	return oneOf(g, domids)
}

// genSeq makes a sequence of about n ops from seed.
func genSeq(seed uint64, n int) []Op {
	g := &gen{r: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
	for len(g.ops) < n {
		g.step()
	}
	return g.ops
}
