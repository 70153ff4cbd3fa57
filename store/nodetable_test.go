package store

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"github.com/xsstub/xenstored/wire"
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"
)

// checkTable compares t with the model and checks the table's own
// accounting: live bytes per chunk, record bytes, interned permissions.
func checkTable(t *testing.T, tab *nodeTable, model map[string]*node) {
	t.Helper()
	if tab.len() != len(model) {
		t.Fatalf("len %d, model %d", tab.len(), len(model))
	}
	for p, want := range model {
		got := tab.get(p)
		if got == nil {
			t.Fatalf("get(%q) = nil", p)
		}
		if !sameNode(got, want) {
			t.Fatalf("get(%q) = %+v, want %+v", p, got, want)
		}
		if g := tab.generation(p); g != want.gen {
			t.Fatalf("generation(%q) = %d, want %d", p, g, want.gen)
		}
	}
	seen := 0
	tab.each(func(p string, n *node) bool {
		seen++
		if want := model[p]; want == nil || !sameNode(n, want) {
			t.Fatalf("each gave %q %+v, model %+v", p, n, want)
		}
		return true
	})
	if seen != len(model) {
		t.Fatalf("each visited %d nodes, model has %d", seen, len(model))
	}
	live := make([]int, len(tab.chunks))
	records := 0
	for _, s := range tab.slots {
		if s != 0 {
			n := readHeader(tab.record(uint32(s))).size()
			live[uint32(s)>>offBits] += n
			records += n
		}
	}
	for k, c := range tab.chunks {
		if c.live != live[k] {
			t.Fatalf("chunk %d counts %d live bytes, index points at %d", k, c.live, live[k])
		}
	}
	if records != tab.recordBytes {
		t.Fatalf("recordBytes %d, index points at %d", tab.recordBytes, records)
	}
	users := 0
	for id, ps := range tab.perms.sets {
		if ps != nil {
			users += tab.perms.refs[id]
		}
	}
	if users != len(model) || len(tab.perms.byKey) != len(tab.perms.sets)-len(tab.perms.free) {
		t.Fatalf("interned permissions: %d users for %d nodes; %d keys, %d sets, %d free",
			users, len(model), len(tab.perms.byKey), len(tab.perms.sets), len(tab.perms.free))
	}
}

// checkChunks checks what every operation must keep: each slot points at
// a live record of its own path in a chunk that is not dropped, and the
// free list names dropped chunks once each.
func checkChunks(t *testing.T, tab *nodeTable) {
	t.Helper()
	for i, s := range tab.slots {
		if s == 0 {
			continue
		}
		k := uint32(s) >> offBits
		if tab.chunks[k].buf == nil {
			t.Fatalf("slot %d points into dropped chunk %d", i, k)
		}
		rec := tab.record(uint32(s))
		if binary.LittleEndian.Uint64(rec) == 0 {
			t.Fatalf("slot %d points at a dead record %q", i, recPath(rec))
		}
		if tag, _ := tab.find(string(recPath(rec))); tab.slots[tag] != s {
			t.Fatalf("slot %d: its record's path %q leads elsewhere", i, recPath(rec))
		}
	}
	free := map[uint32]bool{}
	for _, k := range tab.freeChunks {
		if free[k] || tab.chunks[k].buf != nil || k == tab.cur || k == tab.survivors {
			t.Fatalf("free list %v: chunk %d listed twice, or in use", tab.freeChunks, k)
		}
		free[k] = true
	}
}

func sameNode(a, b *node) bool {
	return a.gen == b.gen && bytes.Equal(a.value, b.value) && bytes.Equal(a.children, b.children) && slices.Equal(a.perms, b.perms)
}

func TestNodeTableBasics(t *testing.T) {
	tab := newNodeTable()
	model := map[string]*node{}
	tests := []struct {
		op   string // put, delete
		path string
		n    *node
	}{
		{"put", "/", &node{gen: 1, perms: Perms{{ID: 0}}, children: []byte("a\x00")}},
		{"put", "/a", &node{gen: 2, perms: Perms{{ID: 5, Access: PermBoth}}, value: []byte("x")}},
		{"put", "/a", &node{gen: 3, perms: Perms{{ID: 5, Access: PermBoth}, {ID: 7, Access: PermRead, Ignore: true}}, value: []byte("yy")}},
		{"put", "@introduceDomain", &node{gen: 4, perms: Perms{{ID: 0}}}},
		{"delete", "/missing", nil},
		{"put", "/big", &node{gen: 5, perms: Perms{{ID: 0}}, value: bytes.Repeat([]byte("v"), 4096), children: bytes.Repeat([]byte("child\x00"), 5000)}},
		{"delete", "/a", nil},
		{"put", "/big", &node{gen: 6, perms: Perms{{ID: 0}}}},
		{"delete", "/big", nil},
	}
	for i, tc := range tests {
		t.Run(fmt.Sprintf("%d-%s-%s", i, tc.op, tc.path), func(t *testing.T) {
			if tc.op == "put" {
				tab.put(tc.path, tc.n)
				model[tc.path] = tc.n
			} else {
				tab.delete(tc.path)
				delete(model, tc.path)
			}
			checkTable(t, tab, model)
			checkChunks(t, tab)
		})
	}
	if tab.get("/a") != nil || tab.generation("/a") != 0 {
		t.Error("deleted node still found")
	}
}

// TestNodeTableChurn drives the table with random puts and deletes against
// a map, keeping old nodes as snapshots, and checks that compaction bounds
// the memory held.
func TestNodeTableChurn(t *testing.T) {
	rnd := rand.New(rand.NewPCG(1, 2))
	tab := newNodeTable()
	model := map[string]*node{}
	type snap struct {
		n    *node
		copy node
	}
	var snaps []snap
	var gen uint64
	permChoices := []Perms{{{ID: 0}}, {{ID: 1, Access: PermBoth}}, {{ID: 0}, {ID: 2, Access: PermRead}}, {{ID: 3, Access: PermWrite, Ignore: true}}}
	maxHeld := 0
	for step := 0; step < 200000; step++ {
		p := fmt.Sprintf("/local/domain/%d/k%d", rnd.IntN(8), rnd.IntN(3000))
		if rnd.IntN(4) == 0 {
			tab.delete(p)
			delete(model, p)
		} else {
			gen++
			n := &node{gen: gen, perms: permChoices[rnd.IntN(len(permChoices))]}
			if size := rnd.IntN(64); size > 0 {
				n.value = bytes.Repeat([]byte{byte('a' + step%26)}, size)
			}
			if rnd.IntN(500) == 0 {
				n.children = bytes.Repeat([]byte("L\x00"), 10000) // a large record
			}
			if rnd.IntN(10) == 0 {
				n.children = []byte("c1\x00c2\x00")
			}
			tab.put(p, n)
			model[p] = n
		}
		if step%1000 == 0 {
			if n := tab.get(p); n != nil {
				snaps = append(snaps, snap{n, node{gen: n.gen, perms: n.perms, value: bytes.Clone(n.value), children: bytes.Clone(n.children)}})
			}
		}
		if step%20000 == 0 {
			checkTable(t, tab, model)
		}
		if step%97 == 0 {
			checkChunks(t, tab)
		}
		records, held := tab.stats()
		// Index plus chunks: at most 4/3 of the live records, plus the
		// chunks being filled, the young ones and the index.
		if limit := records*4/3 + (2+youngChunks)*chunkSize + 8*len(tab.slots); held > limit {
			t.Fatalf("step %d: %d bytes held for %d bytes of records (limit %d)", step, held, records, limit)
		}
		maxHeld = max(maxHeld, held)
	}
	checkTable(t, tab, model)
	for i, s := range snaps {
		if !sameNode(s.n, &s.copy) {
			t.Fatalf("snapshot %d changed under churn", i)
		}
	}
	for p := range model {
		tab.delete(p)
	}
	checkTable(t, tab, map[string]*node{})
	if records, held := tab.stats(); records != 0 || held > 2*chunkSize+8*minSlots {
		t.Errorf("empty table: %d record bytes, %d held", records, held)
	}
	t.Logf("max held %d bytes", maxHeld)
}

// TestNodeTableHotChurn rewrites a few nodes many times, so whole chunks
// die young and their indexes are reused at once (the young list then
// names a chunk twice), with a large record now and then.
func TestNodeTableHotChurn(t *testing.T) {
	rnd := rand.New(rand.NewPCG(3, 4))
	tab := newNodeTable()
	model := map[string]*node{}
	for step := 1; step <= 100000; step++ {
		p := "/hot/" + strconv.Itoa(rnd.IntN(50))
		n := &node{gen: uint64(step), perms: Perms{{ID: 0}}, value: bytes.Repeat([]byte("v"), 1+rnd.IntN(200))}
		if rnd.IntN(1000) == 0 {
			n.children = bytes.Repeat([]byte("c\x00"), 9000)
		}
		if rnd.IntN(20) == 0 {
			tab.delete(p)
			delete(model, p)
		} else {
			tab.put(p, n)
			model[p] = n
		}
		checkChunks(t, tab)
	}
	checkTable(t, tab, model)
}

func BenchmarkNodeTableGet(b *testing.B) {
	tab := newNodeTable()
	paths := make([]string, 100000)
	for i := range paths {
		paths[i] = fmt.Sprintf("/local/domain/%d/data/k%d", i%100, i)
		tab.put(paths[i], &node{gen: uint64(i + 1), perms: Perms{{ID: uint32(i % 100)}}, value: []byte("value-0123456789")})
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if tab.get(paths[i%len(paths)]) == nil {
			b.Fatal("missing")
		}
	}
}

// TestNodeTableFootprint guards the memory per node of the benchmark tree
// (make scale: 16-byte values at /t/A/B/C/D, fan-out 32) written through
// the engine, parents rewritten as children arrive. C xenstored 4.17 uses
// about 103 bytes of resident memory per node for it.
func TestNodeTableFootprint(t *testing.T) {
	e := newTestEngine(t, nil)
	c := dom0(t, e)
	for i := 0; i < 50000; i++ {
		c.write(fmt.Sprintf("/t/%d/%d/%d/%d", i>>15&31, i>>10&31, i>>5&31, i&31), "value-0123456789")
	}
	records, held := e.nodes.stats()
	n := e.nodes.len()
	t.Logf("%d nodes: %.1f bytes of record, %.1f held per node", n, float64(records)/float64(n), float64(held)/float64(n))
	if perNode := held / n; perNode > 80 {
		t.Errorf("%d bytes held per node, want at most 80", perNode)
	}
}

// TestTransactionSnapshotsOwnTheirBytes: a node a transaction keeps must
// not alias the table's chunk, or a guest's transactions could pin a 64 KiB
// chunk per node read once compaction has dropped it.
func TestTransactionSnapshotsOwnTheirBytes(t *testing.T) {
	e := newTestEngine(t, nil)
	c := dom0(t, e)
	c.write("/a", "value")
	c.write("/b", "other")
	tx := startTx(t, c)
	c.must(wire.Read, tx, "/a")
	txWrite(t, c, tx, "/b", "changed")
	snap := c.c.txns[tx].entries["/a"].node.value
	if live := e.nodes.get("/a").value; string(snap) != "value" || &snap[0] == &live[0] {
		t.Errorf("snapshot of /a %q shares the table's bytes", snap)
	}
}
