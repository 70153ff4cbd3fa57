package bench

import (
	"strings"
	"testing"

	"github.com/xsstub/xenstored/store"
)

func TestGuestTree(t *testing.T) {
	n := GuestTreeNodes()
	if n < 90 || n > 130 {
		t.Errorf("a guest has %d nodes, want about 100", n)
	}
	e := store.New(store.Config{Logger: discardLogger()})
	c := NewEngineConn(e, 0, true)
	before := e.NodeCount()
	if err := CreateGuest(c, 5); err != nil {
		t.Fatal(err)
	}
	shared := 8 // /local, /local/domain, /local/domain/0, .../backend, .../vif, .../vbd, /vm, /libxl
	if got := e.NodeCount() - before - shared; got != n {
		t.Errorf("created %d nodes, GuestTreeNodes says %d", got, n)
	}
	if err := e.IntroduceDomain(5, 1, 0); err != nil {
		t.Fatal(err)
	}
	if err := DestroyGuest(c, 5); err != nil {
		t.Fatal(err)
	}
	if got := e.NodeCount() - before; got != shared {
		t.Errorf("after destroy %d nodes more than at start, want %d", got, shared)
	}
}

func TestTreeScaleSmall(t *testing.T) {
	rows, err := TreeScale(TreeScaleOptions{Sizes: []int{1000, 5000}, Ops: 500, Reps: 1, Lifecycle: 2})
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 2 || rows[1].Nodes < 5000 {
		t.Fatalf("rows %+v", rows)
	}
	for _, r := range rows {
		if r.Read <= 0 || r.Write <= 0 || r.Dir <= 0 || r.Txn <= 0 || r.GuestCreate <= 0 || r.HeapPerNode <= 0 {
			t.Errorf("missing measurement: %+v", r)
		}
	}
	tab := TreeTable(rows, true)
	if !strings.Contains(tab, "| nodes |") {
		t.Errorf("table:\n%s", tab)
	}
	t.Logf("\n%s", TreeTable(rows, false))
}
