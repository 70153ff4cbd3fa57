package xenring_test

import (
	"context"
	"encoding/binary"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/xsstub/xenstored/wire"
)

// TestGuestInSeparateProcess runs the fake guest as its own process: the
// daemon's real ring code serves a client that shares only the page and
// the event channels with it, as a Linux xenbus frontend would.
func TestGuestInSeparateProcess(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "fakeguest")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/xsstub/xenstored/xen/fake/fakeguest").CombinedOutput(); err != nil {
		t.Fatalf("build fakeguest: %v\n%s", err, out)
	}
	r := newRig(t)
	d0 := r.dom0()
	for _, id := range []uint32{41, 42} {
		d, err := r.h.NewDomain(id)
		if err != nil {
			t.Fatal(err)
		}
		if err := r.e.IntroduceDomain(id, d.GuestPort(), 0); err != nil {
			t.Fatal(err)
		}
		home := "/local/domain/" + itoa(id)
		d0.call(t, wire.Write, home, "")
		d0.call(t, wire.SetPerms, home, "n"+itoa(id))
		cmd := exec.Command(bin, "write data from-"+itoa(id), "read data", "read /local/domain/41/data")
		done, err := d.ConfigureCmd(cmd)
		if err != nil {
			t.Fatal(err)
		}
		out, err := func() ([]byte, error) { defer done(); return cmd.CombinedOutput() }()
		got := string(out)
		if id == 41 && (err != nil || strings.Count(got, "from-41") != 2) {
			t.Fatalf("guest 41: %v\n%s", err, got)
		}
		if id == 42 && (!strings.Contains(got, "from-42") || !strings.Contains(got, "EACCES")) {
			t.Fatalf("guest 42 (must read its own data, not 41's): %v\n%s", err, got)
		}
	}
}

func itoa(v uint32) string { return strconv.FormatUint(uint64(v), 10) }

// A guest that floods requests and never reads its responses is throttled
// with bounded memory (the ring fills, then the engine's reply bound);
// others are served.
func TestGuestNeverReading(t *testing.T) {
	r := newRig(t)
	ctx := context.Background()
	_, _, good := r.guest(20)
	bad, err := r.h.NewDomain(30)
	if err != nil {
		t.Fatal(err)
	}
	g, _ := bad.Attach()
	if err := r.e.IntroduceDomain(30, bad.GuestPort(), 0); err != nil {
		t.Fatal(err)
	}
	page := g.Page()
	req := (&wire.Msg{Type: wire.Read, Payload: []byte("/tool\x00")}).Encode()
	deadline := time.Now().Add(2 * time.Second)
	sent := 0
	for time.Now().Before(deadline) && sent < 5000 {
		prod := binary.LittleEndian.Uint32(page[2052:])
		cons := binary.LittleEndian.Uint32(page[2048:])
		if 1024-(prod-cons) < uint32(len(req)) {
			g.Notify()
			time.Sleep(time.Millisecond)
			continue
		}
		for i, b := range req {
			page[(prod+uint32(i))&1023] = b
		}
		binary.LittleEndian.PutUint32(page[2052:], prod+uint32(len(req)))
		sent++
		g.Notify()
	}
	if sent >= 5000 {
		t.Fatalf("server kept consuming %d requests from a guest that reads nothing", sent)
	}
	if _, err := good.Read(ctx, "/tool/xenstored"); err == nil || !strings.Contains(err.Error(), "EACCES") {
		t.Fatalf("good guest not served: %v", err)
	}
	out := r.dom0().call(t, wire.Control, "queues", "30")
	if !strings.Contains(out, "input stopped") {
		t.Fatalf("flooding guest not throttled: %s", out)
	}
}

// A torn header (half a header, then nothing) leaves that ring waiting and
// everyone else served.
func TestTornHeader(t *testing.T) {
	r := newRig(t)
	ctx := context.Background()
	_, _, good := r.guest(20)
	bad, _ := r.h.NewDomain(31)
	g, _ := bad.Attach()
	r.e.IntroduceDomain(31, bad.GuestPort(), 0)
	copy(g.Page(), []byte{2, 0, 0, 0, 1, 0, 0})
	binary.LittleEndian.PutUint32(g.Page()[2052:], 7)
	g.Notify()
	if _, err := good.Read(ctx, "/tool/xenstored"); err == nil || !strings.Contains(err.Error(), "EACCES") {
		t.Fatalf("good guest not served: %v", err)
	}
	if e := binary.LittleEndian.Uint32(g.Page()[2072:]); e != 0 {
		t.Fatalf("torn header treated as an error (%d): it may still complete", e)
	}
}
