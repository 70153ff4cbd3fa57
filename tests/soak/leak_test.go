package soak

import (
	"net"
	"strings"
	"testing"
	"time"

	"github.com/xsstub/xenstored/wire"
	"github.com/xsstub/xenstored/xsclient"
)

// TestClosedNeverReaderIsForgotten: a client pipelines requests until the
// daemon stops reading it (maxoutstanding replies unread, socket buffers
// full), never reads, and hangs up. The daemon must notice and forget the
// connection — its queued replies, its goroutines — or a client repeating
// this grows the daemon's memory without bound (XSA-326 class). Expect:
// within 10 s of the last hang-up only the checking connection is left
// and the daemon's RSS is back near where it started.
func TestClosedNeverReaderIsForgotten(t *testing.T) {
	d := startDaemon(t)
	admin, err := xsclient.Dial(d.sock)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if err := admin.Write(0, "/leak/read-me", []byte(strings.Repeat("r", 200))); err != nil {
		t.Fatal(err)
	}
	rss0, _, _ := d.memKiB()
	req := enc(wire.Read, 1, wire.JoinStrings("/leak/read-me"))
	var buf []byte
	for len(buf) < 2<<20 {
		buf = append(buf, req...)
	}
	const clients = 15 // CONTROL connections answers E2BIG beyond ~24 connections
	for i := range clients {
		c, err := net.Dial("unix", d.sock)
		if err != nil {
			t.Fatal(err)
		}
		c.SetWriteDeadline(time.Now().Add(300 * time.Millisecond))
		if _, err := c.Write(buf); err == nil {
			t.Fatalf("client %d: 2 MiB of requests accepted without back-pressure", i)
		}
		c.Close()
	}
	rss1, _, _ := d.memKiB()
	var out string
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		if out, err = admin.Control("connections"); err != nil {
			t.Fatalf("CONTROL connections: %v", err)
		}
		if strings.Count(out, "\n") == 1 {
			break
		}
	}
	rss2, _, _ := d.memKiB()
	t.Logf("daemon RSS: %d KiB before, %d KiB after %d never-readers hung up, %d KiB 10 s later", rss0, rss1, clients, rss2)
	if n := strings.Count(out, "\n"); n != 1 {
		t.Fatalf("%d of %d hung-up never-reading clients still held by the daemon (queued replies and goroutines leak):\n%s",
			n-1, clients, strings.Join(strings.Split(out, "\n")[:min(3, n)], "\n"))
	}
}
