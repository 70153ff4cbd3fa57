package bench

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/xsstub/xenstored/wire"
	"github.com/xsstub/xenstored/xsclient"
)

func TestParseStormTrace(t *testing.T) {
	tr, err := DefaultStormTrace()
	if err != nil {
		t.Fatal(err)
	}
	if tr.Domid != 1 || tr.UUID != "7a6cd789-3410-4fca-9d39-104522fd1559" {
		t.Errorf("domid %d uuid %q", tr.Domid, tr.UUID)
	}
	count := func(reqs []stormReq, role string, typ wire.Type) int {
		n := 0
		for _, r := range reqs {
			if r.role == role && r.typ == typ {
				n++
			}
		}
		return n
	}
	for _, tc := range []struct {
		name      string
		reqs      []stormReq
		role      string
		typ       wire.Type
		wantAtLst int
	}{
		{"xl create's transactions", tr.Create, "xl", wire.TransactionStart, 3},
		{"xl create introduces", tr.Create, "xl", wire.Introduce, 1},
		{"xenconsoled watches the console", tr.Create, "console", wire.Watch, 1},
		{"the death watcher", tr.Create, "xlwatch", wire.Watch, 1},
		{"xl destroy removes", tr.Destroy, "xl", wire.Rm, 5},
		{"the watcher leaves", tr.Destroy, "xlwatch", wire.Unwatch, 1},
	} {
		if n := count(tc.reqs, tc.role, tc.typ); n < tc.wantAtLst {
			t.Errorf("%s: %d %s by %s, want at least %d", tc.name, n, tc.typ, tc.role, tc.wantAtLst)
		}
	}
	// The ERROR replies land on their requests.
	i := slices.IndexFunc(tr.Create, func(r stormReq) bool {
		return r.typ == wire.Rm && strings.HasPrefix(r.payload, "/vm/")
	})
	if i < 0 || tr.Create[i].wantErr != "ENOENT" {
		t.Errorf("RM /vm/<uuid>: want ENOENT recorded, got index %d", i)
	}
	if _, err := ParseStormTrace("12:00:00.000 IN  conn 3 READ /x \n"); err == nil {
		t.Error("a trace without roles parsed")
	}
}

func TestStormRewrite(t *testing.T) {
	tr, err := DefaultStormTrace()
	if err != nil {
		t.Fatal(err)
	}
	w := tr.rewriter()
	for _, tc := range []struct {
		typ    wire.Type
		traced string
		want   string
	}{
		{wire.Write, "/local/domain/1 ", "/local/domain/42\x00"},
		{wire.Write, "/local/domain/1/domid 1", "/local/domain/42/domid\x0042"},
		{wire.Write, "/local/domain/1/store/port 1", "/local/domain/42/store/port\x001"},
		{wire.Write, "/local/domain/0/backend/console/1/0/frontend /local/domain/1/console", "/local/domain/0/backend/console/42/0/frontend\x00/local/domain/42/console"},
		{wire.Write, "/vm/7a6cd789-3410-4fca-9d39-104522fd1559/uuid 7a6cd789-3410-4fca-9d39-104522fd15", "/vm/" + StormUUID(42) + "/uuid\x00" + StormUUID(42)},
		{wire.Write, "/vm/7a6cd789-3410-4fca-9d39-104522fd1559/image/cmdline console=hvc0 loglevel=4", "/vm/" + StormUUID(42) + "/image/cmdline\x00console=hvc0 loglevel=4"},
		{wire.SetPerms, "/local/domain/1/console/backend-id n1 r0 ", "/local/domain/42/console/backend-id\x00n42\x00r0\x00"},
		{wire.GetDomainPath, "1 ", "42\x00"},
		{wire.GetDomainPath, "0 ", "0\x00"},
		{wire.Introduce, "1 326657 1 ", "42\x00326657\x001\x00"},
		{wire.Watch, "/local/domain/1/console dom1 ", "/local/domain/42/console\x00dom42\x00"},
		{wire.Read, "backend/console/1/0/state ", "backend/console/42/0/state\x00"},
		{wire.Read, "/local/domain/10/name ", "/local/domain/10/name\x00"},
	} {
		got := string(w.payload(stormReq{typ: tc.typ, payload: tc.traced}, 42))
		if got != tc.want {
			t.Errorf("%s %q: got %q, want %q", tc.typ, tc.traced, got, tc.want)
		}
	}
}

// dumpTree lists every node with its value and permissions.
func dumpTree(t *testing.T, c *xsclient.Client, path string, out *[]string) {
	t.Helper()
	v, err := c.Read(0, path)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	p, err := c.GetPerms(0, path)
	if err != nil {
		t.Fatalf("perms %s: %v", path, err)
	}
	*out = append(*out, path+"="+string(v)+" "+strings.Join(p, ","))
	kids, err := c.Directory(0, path)
	if err != nil {
		t.Fatalf("directory %s: %v", path, err)
	}
	for _, k := range kids {
		if k == "" {
			continue
		}
		dumpTree(t, c, strings.TrimSuffix(path, "/")+"/"+k, out)
	}
}

// TestStormRestoresTree: creating and destroying N domains from the trace
// against our store leaves the tree as it was, every reply agrees with the
// trace's (success or the same ERROR), and the k-th domain's nodes existed
// while it lived.
func TestStormRestoresTree(t *testing.T) {
	for _, n := range []int{1, 3, 12} {
		sock := engineSocket(t)
		c, err := xsclient.Dial(sock)
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range StormBaseTree {
			if err := c.Write(0, b[0], []byte(b[1])); err != nil {
				t.Fatal(err)
			}
		}
		var before, after []string
		dumpTree(t, c, "/", &before)
		r, err := Storm(StormOptions{Socket: sock, Domains: n})
		if err != nil {
			t.Fatalf("%d domains: %v", n, err)
		}
		dumpTree(t, c, "/", &after)
		c.Close()
		if !slices.Equal(before, after) {
			t.Errorf("%d domains: tree before:\n%s\nafter:\n%s", n, strings.Join(before, "\n"), strings.Join(after, "\n"))
		}
		if r.Mismatches != 0 {
			t.Errorf("%d domains: %d replies differ from the trace, first: %s", n, r.Mismatches, r.FirstMismatch)
		}
		if len(r.Create) != n || len(r.Destroy) != n || r.Requests < n*(len(r.Create)+1) {
			t.Errorf("%d domains: %d creates, %d destroys, %d requests", n, len(r.Create), len(r.Destroy), r.Requests)
		}
	}
}

func TestStormBuckets(t *testing.T) {
	ms := func(v ...int) []time.Duration {
		var out []time.Duration
		for _, x := range v {
			out = append(out, time.Duration(x)*time.Millisecond)
		}
		return out
	}
	for _, tc := range []struct {
		in   []time.Duration
		n    int
		want []time.Duration
	}{
		{ms(1, 2, 3, 4), 2, ms(1, 3)},
		{ms(5, 1, 900, 2, 2, 2), 2, ms(5, 2)}, // a stall does not move the median
		{ms(7), 10, ms(7)},
	} {
		if got := stormBuckets(tc.in, tc.n); !slices.Equal(got, tc.want) {
			t.Errorf("stormBuckets(%v, %d) = %v, want %v", tc.in, tc.n, got, tc.want)
		}
	}
}

// TestStormTable: the table names every server and size and states the
// targets against the baseline.
func TestStormTable(t *testing.T) {
	sock := engineSocket(t)
	tg := []Target{{"go", sock}, {"again", sock}}
	rows, err := StormSuite(tg, []int{1, 10}, nil)
	if err != nil {
		t.Fatal(err)
	}
	out := StormTable(rows, tg, "again", false)
	for _, want := range []string{"again", "k 1-1", "k 10-10", "target go >= 2x again at 10 domains", "target flat per-domain cost"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
}
