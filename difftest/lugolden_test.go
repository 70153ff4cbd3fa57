//go:build linux

package difftest

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/xsstub/xenstored/store/migration"
	"github.com/xsstub/xenstored/wire"
)

// cGoldenDir holds the live-update streams real C xenstored wrote, per
// release (c417, c422); daemon's tests read them.
// DIFFTEST_UPDATE_GOLDENS=1 rewrites them.
const cGoldenDir = "../daemon/testdata"

// captureScript stands in for the new binary: it keeps the stream C left
// in out and exits, which ends that daemon.
func captureScript(out string) string {
	return fmt.Sprintf("#!/bin/sh\ncp \"$XENSTORED_RUNDIR/state_dump\" '%s'\n", out)
}

// TestLiveUpdateCGoldens: C xenstored live-updates to a script that keeps
// its stream, in each scenario; the stream must be the golden one, up to
// the descriptor numbers, which the process decides.
func TestLiveUpdateCGoldens(t *testing.T) { forPeers(t, testLiveUpdateGoldens) }

func testLiveUpdateGoldens(t *testing.T, p *peer) {
	xc, env := xenstoreControl(t, p)
	for _, sc := range []struct {
		name  string
		setup func(t *testing.T, sock string)
		args  []string
	}{
		{"tree-watches-output", goldenTree, nil},
		{"forced-transaction", goldenTransaction, []string{"-F", "-t", "1"}},
	} {
		t.Run(sc.name, func(t *testing.T) {
			d, err := startC(p)
			if err != nil {
				t.Fatal(err)
			}
			defer d.stop()
			sc.setup(t, d.sock)
			out := filepath.Join(theEnv.tmp, sc.name+".state")
			script := filepath.Join(theEnv.tmp, sc.name+".sh")
			if err := os.WriteFile(script, []byte(captureScript(out)), 0o755); err != nil {
				t.Fatal(err)
			}
			// The script ends the daemon: xenstore-control gets no OK.
			cmd := exec.Command(xc, append(append([]string{"live-update"}, sc.args...), "-f", script)...)
			cmd.Env = append(env, "XENSTORED_PATH="+d.sock)
			_ = cmd.Run()
			got, err := os.ReadFile(out)
			if err != nil {
				t.Fatalf("no stream captured: %v\n%s", err, d.log.String())
			}
			golden := filepath.Join(cGoldenDir, p.key, sc.name+".state")
			if os.Getenv("DIFFTEST_UPDATE_GOLDENS") != "" {
				_ = os.MkdirAll(filepath.Dir(golden), 0o755)
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			g, w := streamRecords(t, got), streamRecords(t, want)
			if !reflect.DeepEqual(g, w) {
				t.Errorf("%s wrote\n%s\nthe golden stream has\n%s", p.name, g, w)
			}
		})
	}
}

// streamRecords lists a stream's records with descriptors left out.
func streamRecords(t *testing.T, b []byte) string {
	t.Helper()
	rd, err := migration.NewReader(bytes.NewReader(b), &migration.ReaderOptions{IgnoreReserved: true})
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	for {
		rec, err := rd.Next()
		if err != nil {
			break
		}
		switch r := rec.(type) {
		case *migration.Global:
			r.SocketFD, r.EvtchnFD = 0, 0
		case *migration.Connection:
			r.Socket = 0
		}
		fmt.Fprintf(&out, "%s %+v\n", rec.Type(), rec)
	}
	return out.String()
}

// goldenTree: nodes with permissions, an introduced domain with a target,
// watches of every kind, a request sent in part and events not read.
func goldenTree(t *testing.T, sock string) {
	admin := dialLU(t, sock)
	admin.ok(wire.Write, 0, "/golden/a", "value")
	admin.ok(wire.SetPerms, 0, "/golden/a", "n0", "r5", "w7", "b3")
	admin.ok(wire.Introduce, 0, "3", "1", "7")
	admin.ok(wire.Introduce, 0, "5", "1", "9")
	admin.ok(wire.SetTarget, 0, "5", "3")
	admin.ok(wire.Write, 0, "/local/domain/5/x", "in 5")
	watcher := dialLU(t, sock)
	watcher.ok(wire.Watch, 0, "/golden", "tok-abs")
	watcher.ok(wire.Watch, 0, "rel", "tok-rel")
	watcher.ok(wire.Watch, 0, "@releaseDomain", "tok-rel-dom")
	slow := newSlowReader(t, sock, 8)
	slow.flood(admin, 400) // more than the socket holds: C queues the rest
	split := newSplitWriter(t, sock)
	split.sendHead("/golden/split", "v")
}

// goldenTransaction: a transaction open with a write in it; C's forced
// update (-F) leaves it out of the stream.
func goldenTransaction(t *testing.T, sock string) {
	c := dialLU(t, sock)
	tx := c.ok(wire.TransactionStart, 0, "")
	var id uint32
	fmt.Sscanf(tx, "%d", &id)
	c.ok(wire.Write, id, "/golden/in-tx", "v")
	c.ok(wire.Write, 0, "/golden/committed", "v")
}
