package integration

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/xsstub/xenstored/wire"
	"github.com/xsstub/xenstored/xsclient"
)

// bigDir makes /big with enough children that a DIRECTORY reply would
// exceed 4096 bytes, and returns the child names.
func bigDir(t *testing.T, c *xsclient.Client) []string {
	t.Helper()
	var names []string
	total := 0
	for i := 0; total <= 2*wire.PayloadMax; i++ {
		n := fmt.Sprintf("child-with-a-long-name-%04d", i)
		names = append(names, n)
		total += len(n) + 1
		if err := c.Write(0, "/big/"+n, []byte(strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	return names
}

// TestE2BIG: a reply larger than 4096 bytes becomes E2BIG and the
// connection lives on (xsclient and pyxs); xenstore-ls and xenstore-list
// fall back to DIRECTORY_PART and list everything.
func TestE2BIG(t *testing.T) {
	trace := filepath.Join(shortTempDir(t), "trace")
	d := startDaemon(t, "-T", trace)
	maker := d.Client(t)
	names := bigDir(t, maker)

	t.Run("xsclient", func(t *testing.T) {
		c := d.Client(t)
		for i := 0; i < 3; i++ { // repeatedly: the connection must not degrade
			_, err := c.Directory(0, "/big")
			if !xsclient.IsErrno(err, syscall.E2BIG) {
				t.Fatalf("DIRECTORY /big: %v, want E2BIG", err)
			}
			if v, err := c.Read(0, "/big/"+names[i]); err != nil || string(v) != strconv.Itoa(i) {
				t.Fatalf("READ after E2BIG on the same connection: %q, %v", v, err)
			}
			if err := c.Write(0, "/after-e2big", []byte("x")); err != nil {
				t.Fatalf("WRITE after E2BIG: %v", err)
			}
		}
		// Inside a transaction too; the transaction survives.
		tx, err := c.TransactionStart()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Directory(tx, "/big"); !xsclient.IsErrno(err, syscall.E2BIG) {
			t.Errorf("DIRECTORY /big in a transaction: %v, want E2BIG", err)
		}
		if err := c.Write(tx, "/after-e2big", []byte("tx")); err != nil {
			t.Fatal(err)
		}
		if err := c.TransactionEnd(tx, true); err != nil {
			t.Errorf("commit after E2BIG: %v", err)
		}
	})

	t.Run("DIRECTORY_PART", func(t *testing.T) {
		c := d.Client(t)
		var got []string
		off := 0
		gen := ""
		for {
			p, err := c.Call(wire.DirectoryPart, 0, "/big", strconv.Itoa(off))
			if err != nil {
				t.Fatal(err)
			}
			if len(p) > wire.PayloadMax {
				t.Fatalf("DIRECTORY_PART reply of %d bytes", len(p))
			}
			parts := bytes.Split(p, []byte{0})
			if gen == "" {
				gen = string(parts[0])
			} else if gen != string(parts[0]) {
				t.Fatalf("generation changed from %s to %s", gen, parts[0])
			}
			parts = parts[1:]
			// The list ends with an empty name (two NULs) on the last part.
			done := len(p) >= 2 && p[len(p)-1] == 0 && p[len(p)-2] == 0
			for _, x := range parts {
				if len(x) > 0 {
					got = append(got, string(x))
					off += len(x) + 1
				}
			}
			if done {
				break
			}
			if len(got) > 10*len(names) {
				t.Fatal("DIRECTORY_PART never ends")
			}
		}
		sort.Strings(got)
		if strings.Join(got, ",") != strings.Join(names, ",") {
			t.Errorf("DIRECTORY_PART listed %d names, want %d", len(got), len(names))
		}
	})

	t.Run("pyxs", func(t *testing.T) {
		var r map[string]string
		d.runPy(t, `
c = client()
res = {}
try:
    c.list(b"/big")
    res["list"] = "no error"
except PyXSError as e:
    res["list"] = errname(e)
res["read"] = c.read(b"/big/`+names[0]+`").decode()
c.write(b"/after-e2big-py", b"ok")
res["read2"] = c.read(b"/after-e2big-py").decode()
try:
    c.list(b"/big")
    res["list2"] = "no error"
except PyXSError as e:
    res["list2"] = errname(e)
c.close()
out(res)
`, &r)
		want := map[string]string{"list": "E2BIG", "read": "0", "read2": "ok", "list2": "E2BIG"}
		for k, w := range want {
			if r[k] != w {
				t.Errorf("pyxs %s: %q, want %q", k, r[k], w)
			}
		}
	})

	t.Run("xenstore-ls", func(t *testing.T) {
		ls := needTool(t, "xenstore-ls")
		out := d.ok(t, ls, "/big")
		var got []string
		for _, l := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
			name, _, _ := strings.Cut(l, " = ")
			got = append(got, name)
		}
		sort.Strings(got)
		if strings.Join(got, ",") != strings.Join(names, ",") {
			t.Errorf("xenstore-ls /big listed %d entries, want all %d:\n%s", len(got), len(names), out)
		}
		// It got there through DIRECTORY (E2BIG) then DIRECTORY_PART.
		b, err := os.ReadFile(trace)
		if err != nil {
			t.Fatalf("trace file: %v", err)
		}
		tr := string(b)
		for _, w := range []string{"DIRECTORY_PART", "E2BIG"} {
			if !strings.Contains(tr, w) {
				t.Errorf("the trace (-T) shows no %s", w)
			}
		}
	})
	t.Run("xenstore-list", func(t *testing.T) {
		list := needTool(t, "xenstore-list")
		got := strings.Fields(d.ok(t, list, "/big"))
		sort.Strings(got)
		if strings.Join(got, ",") != strings.Join(names, ",") {
			t.Errorf("xenstore-list /big listed %d entries, want all %d", len(got), len(names))
		}
	})
}

// connLine is one line of our CONTROL connections extension.
type connLine struct {
	id, requests, repliesQueued int
	input                       string
	raw                         string
}

var connRE = regexp.MustCompile(`^conn (\d+) .*\brequests (\d+) .*\breplies-queued (\d+) .*\binput (open|stopped)\b`)

func connections(t *testing.T, c *xsclient.Client) map[int]connLine {
	t.Helper()
	out, err := c.Control("connections")
	if err != nil {
		t.Fatalf("CONTROL connections: %v", err)
	}
	m := map[int]connLine{}
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		s := connRE.FindStringSubmatch(l)
		if s == nil {
			t.Fatalf("CONTROL connections: unparsable line %q", l)
		}
		id, _ := strconv.Atoi(s[1])
		rq, _ := strconv.Atoi(s[2])
		q, _ := strconv.Atoi(s[3])
		m[id] = connLine{id: id, requests: rq, repliesQueued: q, input: s[4], raw: l}
	}
	return m
}

// TestBoundedInFlight: a client pipelines 5000 READs of a 2000-byte node
// and reads nothing. The daemon stops reading from it with at most 1024
// replies queued, a second connection stays responsive all along, and
// then all 5000 replies arrive in request order.
func TestBoundedInFlight(t *testing.T) {
	const n = 5000
	const maxQueued = 1024
	d := startDaemon(t)
	ctl := d.Client(t)
	value := bytes.Repeat([]byte("v"), 2000)
	if err := ctl.Write(0, "/flood/val", value); err != nil {
		t.Fatal(err)
	}
	// Read after the flood; it exists even if the flood is throttled before
	// the probe loop below first writes it.
	if err := ctl.Write(0, "/flood/ctl", []byte("start")); err != nil {
		t.Fatal(err)
	}
	before := connections(t, ctl)
	flood := d.Raw(t)
	// Find the flooding connection's id: the one that appears now.
	floodID := -1
	deadline := time.Now().Add(readyTimeout)
	for floodID < 0 {
		for id := range connections(t, ctl) {
			if _, ok := before[id]; !ok {
				floodID = id
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("the new connection never shows in CONTROL connections")
		}
	}

	var reqs bytes.Buffer
	for i := 1; i <= n; i++ {
		reqs.Write(rawMsg(wire.Read, uint32(i), 0, []byte("/flood/val\x00")))
	}
	writeErr := make(chan error, 1)
	go func() { // the write blocks once the daemon stops reading
		_, err := flood.Write(reqs.Bytes())
		writeErr <- err
	}()

	// Watch the flooding connection from the control connection until its
	// input is stopped; every answer proves the control connection is served.
	var stopped connLine
	probes := 0
	for deadline = time.Now().Add(readyTimeout); ; probes++ {
		l, ok := connections(t, ctl)[floodID]
		if !ok {
			t.Fatalf("flooding connection %d vanished", floodID)
		}
		if l.repliesQueued > maxQueued {
			t.Fatalf("replies-queued %d > %d: %s", l.repliesQueued, maxQueued, l.raw)
		}
		if l.input == "stopped" {
			stopped = l
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("flooding connection never throttled; last: %s", l.raw)
		}
		if probes%8 == 0 { // ordinary traffic on the second connection meanwhile
			if err := ctl.Write(0, "/flood/ctl", []byte(strconv.Itoa(probes))); err != nil {
				t.Fatal(err)
			}
		}
	}
	t.Logf("throttled after %d probes: %s", probes, stopped.raw)
	if stopped.requests >= n {
		t.Errorf("all %d requests were taken in before input stopped: %s", n, stopped.raw)
	}
	// While stopped, the other connection still gets answers, and the flood
	// makes no progress beyond the bound.
	for i := 0; i < 20; i++ {
		if v, err := ctl.Read(0, "/flood/val"); err != nil || len(v) != len(value) {
			t.Fatalf("control connection while the flood is stopped: %d bytes, %v", len(v), err)
		}
		l := connections(t, ctl)[floodID]
		if l.repliesQueued > maxQueued {
			t.Fatalf("replies-queued %d > %d: %s", l.repliesQueued, maxQueued, l.raw)
		}
		// The writer may still drain into the socket buffer and let a few
		// more requests in, but the flood cannot get through.
		if l.requests >= n {
			t.Fatalf("flooding connection got all requests processed without reading: %s", l.raw)
		}
	}
	// Steady state: stopped, with the bound held.
	for deadline = time.Now().Add(readyTimeout); ; {
		l := connections(t, ctl)[floodID]
		if l.repliesQueued > maxQueued {
			t.Fatalf("replies-queued %d > %d: %s", l.repliesQueued, maxQueued, l.raw)
		}
		if l.input == "stopped" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("flooding connection does not stay throttled: %s", l.raw)
		}
	}
	var werr error
	written := false
	select {
	case werr = <-writeErr:
		written = true
		t.Logf("all requests were written before the daemon stopped reading (%v)", werr)
	default:
	}

	// Now read everything, in order.
	flood.SetReadDeadline(time.Now().Add(4 * readyTimeout))
	r := &msgReader{c: flood}
	for i := 1; i <= n; i++ {
		m, err := r.next()
		if err != nil {
			t.Fatalf("reply %d: %v", i, err)
		}
		if m.Type != wire.Read || m.ReqID != uint32(i) || !bytes.Equal(m.Payload, value) {
			t.Fatalf("reply %d: type %v req_id %d len %d %q", i, m.Type, m.ReqID, len(m.Payload), errName(m))
		}
	}
	if !written {
		werr = <-writeErr
	}
	if werr != nil {
		t.Errorf("writing the requests: %v", werr)
	}
	l := connections(t, ctl)[floodID]
	if l.input != "open" || l.repliesQueued != 0 {
		t.Errorf("after draining: %s", l.raw)
	}
	// The flooding connection works normally afterwards.
	if _, err := flood.Write(rawMsg(wire.Read, n+1, 0, []byte("/flood/ctl\x00"))); err != nil {
		t.Fatal(err)
	}
	if m, err := r.next(); err != nil || m.ReqID != n+1 || m.Type != wire.Read {
		t.Errorf("request after the flood: %+v, %v", m, err)
	}
}

// msgReader reads whole messages from a raw connection through a buffer.
type msgReader struct {
	c   net.Conn
	buf []byte
}

func (r *msgReader) fill(n int) error {
	tmp := make([]byte, 64<<10)
	for len(r.buf) < n {
		k, err := r.c.Read(tmp)
		r.buf = append(r.buf, tmp[:k]...)
		if err != nil && len(r.buf) < n {
			return err
		}
	}
	return nil
}

func (r *msgReader) next() (wire.Msg, error) {
	if err := r.fill(wire.HeaderSize); err != nil {
		return wire.Msg{}, err
	}
	h, err := wire.ParseHeader(r.buf)
	if err != nil {
		return wire.Msg{}, err
	}
	if err := r.fill(wire.HeaderSize + int(h.Len)); err != nil {
		return wire.Msg{}, err
	}
	m := wire.Msg{Type: h.Type, ReqID: h.ReqID, TxID: h.TxID, Payload: append([]byte(nil), r.buf[wire.HeaderSize:wire.HeaderSize+int(h.Len)]...)}
	r.buf = r.buf[wire.HeaderSize+int(h.Len):]
	return m, nil
}

// TestOversizedHeader: a header announcing 5000 payload bytes gets its
// connection dropped; other clients, existing and new, are unaffected.
func TestOversizedHeader(t *testing.T) {
	d := startDaemon(t)
	other := d.Client(t)
	if err := other.Write(0, "/os/before", []byte("1")); err != nil {
		t.Fatal(err)
	}
	// The other client holds a transaction and a watch across the drops.
	tx, err := other.TransactionStart()
	if err != nil {
		t.Fatal(err)
	}
	if err := other.Write(tx, "/os/intx", []byte("t")); err != nil {
		t.Fatal(err)
	}
	if err := other.Watch("/os/watched", "tok"); err != nil {
		t.Fatal(err)
	}
	if ev := <-other.Events(); ev.Path != "/os/watched" {
		t.Fatalf("initial event %+v", ev)
	}
	for _, l := range []uint32{wire.PayloadMax + 1, 5000, 1 << 31, 0xffffffff} {
		t.Run(strconv.FormatUint(uint64(l), 10), func(t *testing.T) {
			bad := d.Raw(t)
			var hdr [wire.HeaderSize]byte
			wire.Header{Type: wire.Write, ReqID: 7, Len: l}.Put(hdr[:])
			if _, err := bad.Write(hdr[:]); err != nil {
				t.Fatal(err)
			}
			bad.Write(bytes.Repeat([]byte("x"), 100)) // may fail once closed
			expectClosed(t, bad)
			if v, err := other.Read(0, "/os/before"); err != nil || string(v) != "1" {
				t.Fatalf("other client after the bad header: %q, %v", v, err)
			}
			d.mustServe(t, "oversized header")
		})
	}
	if err := other.TransactionEnd(tx, true); err != nil {
		t.Errorf("the other client's transaction: %v", err)
	}
	if err := other.Write(0, "/os/watched", []byte("w")); err != nil {
		t.Fatal(err)
	}
	select {
	case ev := <-other.Events():
		if ev.Path != "/os/watched" || ev.Token != "tok" {
			t.Errorf("event %+v", ev)
		}
	case <-afterReady():
		t.Fatal("the other client's watch no longer fires")
	}
	if v, err := other.Read(0, "/os/intx"); err != nil || string(v) != "t" {
		t.Errorf("committed value %q, %v", v, err)
	}
	t.Run("exactly 4096 is fine", func(t *testing.T) {
		c := d.Raw(t)
		p := append([]byte("/os/max\x00"), bytes.Repeat([]byte("m"), wire.PayloadMax-len("/os/max\x00"))...)
		if _, err := c.Write(rawMsg(wire.Write, 1, 0, p)); err != nil {
			t.Fatal(err)
		}
		m, err := readMsg(t, c)
		if err != nil {
			t.Fatal(err)
		}
		// The value exceeds the 2048-byte node-size quota for unprivileged
		// domains; dom0 may store it or get an error, but the connection
		// must answer, not close.
		t.Logf("4096-byte WRITE: %v %q", m.Type, errName(m))
		if m.ReqID != 1 {
			t.Errorf("reply req_id %d", m.ReqID)
		}
	})
}

// TestDisconnectMidMessage: clients vanishing in the middle of a header or
// payload leave the daemon serving everybody else.
func TestDisconnectMidMessage(t *testing.T) {
	d := startDaemon(t)
	other := d.Client(t)
	full := rawMsg(wire.Write, 1, 0, []byte("/mid/node\x00some value"))
	cases := []struct {
		name string
		data []byte
	}{
		{"nothing", nil},
		{"half header", full[:8]},
		{"header only", full[:wire.HeaderSize]},
		{"half payload", full[:wire.HeaderSize+5]},
		{"one byte short", full[:len(full)-1]},
		{"complete then more", append(append([]byte{}, full...), full[:10]...)},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := d.Raw(t)
			if len(tc.data) > 0 {
				if _, err := c.Write(tc.data); err != nil {
					t.Fatal(err)
				}
			}
			if tc.name == "complete then more" {
				if m, err := readMsg(t, c); err != nil || m.Type != wire.Write {
					t.Fatalf("reply to the complete request: %+v %v", m, err)
				}
			}
			c.Close()
			p := "/mid/other" + strconv.Itoa(i)
			if err := other.Write(0, p, []byte("ok")); err != nil {
				t.Fatalf("other client: %v", err)
			}
			if v, err := other.Read(0, p); err != nil || string(v) != "ok" {
				t.Fatalf("other client: %q, %v", v, err)
			}
			d.mustServe(t, "disconnect "+tc.name)
		})
	}
	// Half-closed: the client shuts down its sending side after complete
	// requests (and possibly part of another); the daemon must still
	// answer the complete requests, then close.
	for _, tail := range []struct {
		name string
		data []byte
	}{{"after complete requests", nil}, {"mid-message", full[:5]}} {
		t.Run("half close "+tail.name, func(t *testing.T) {
			c := d.Raw(t)
			var b []byte
			for i := 1; i <= 3; i++ {
				b = append(b, rawMsg(wire.Read, uint32(40+i), 0, []byte("/mid/node\x00"))...)
			}
			c.Write(append(b, tail.data...))
			c.CloseWrite()
			for i := 1; i <= 3; i++ {
				m, err := readMsg(t, c)
				if err != nil || m.ReqID != uint32(40+i) {
					t.Fatalf("reply %d of 3 before the half close: %+v, %v", i, m, err)
				}
			}
			expectClosed(t, c)
		})
	}
	if !d.Alive() {
		t.Fatal("daemon died")
	}
}

// TestGarbage feeds byte soup on fresh connections. Each connection must
// end up closed or answered with errors, and the daemon keeps serving.
func TestGarbage(t *testing.T) {
	d := startDaemon(t)
	other := d.Client(t)
	rng := rand.New(rand.NewSource(1))
	random := func(n int) []byte {
		b := make([]byte, n)
		rng.Read(b)
		return b
	}
	small := func(n int) []byte { // random bytes with a plausible header length
		b := random(n)
		binary.LittleEndian.PutUint32(b[12:], uint32(n-wire.HeaderSize))
		return b
	}
	cases := []struct {
		name string
		data []byte
	}{
		{"all ones", bytes.Repeat([]byte{0xff}, 64)},
		{"all zeros", make([]byte, 64)},
		{"http request", []byte("GET / HTTP/1.1\r\nHost: xenstored\r\n\r\n")},
		{"random 1k", random(1024)},
		{"random 64k", random(64 << 10)},
		{"random framed", small(200)},
		{"random framed 2", small(4096 + wire.HeaderSize)},
		{"bad strings", rawMsg(wire.Write, 1, 0, []byte{0xff, 0xfe, 0, 1, 2})},
		{"no NUL", rawMsg(wire.Read, 1, 0, []byte("/no/terminator"))},
		{"unknown transaction", rawMsg(wire.Read, 1, 12345, []byte("/\x00"))},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := d.Raw(t)
			go func() {
				c.Write(tc.data) // fails once the daemon closes; fine
				c.CloseWrite()
			}()
			// Read until the daemon closes; any replies must be well formed.
			r := &msgReader{c: c}
			c.SetReadDeadline(time.Now().Add(readyTimeout))
			for {
				m, err := r.next()
				if err != nil {
					if ne, ok := err.(net.Error); ok && ne.Timeout() {
						t.Fatalf("daemon neither answered nor closed")
					}
					break
				}
				t.Logf("reply %v %q", m.Type, errName(m))
			}
			if v, err := other.Read(0, "/"); err != nil {
				t.Fatalf("other client after garbage: %q %v", v, err)
			}
			d.mustServe(t, "garbage "+tc.name)
		})
	}
}

// TestErrors checks error replies that keep the connection open: unknown
// or reply-only message types get ENOSYS, like C xenstored.
func TestErrors(t *testing.T) {
	d := startDaemon(t)
	c := d.Raw(t)
	cases := []struct {
		name    string
		typ     wire.Type
		payload string
		tx      uint32
		want    string
	}{
		{"type 20 (removed RESTRICT)", 20, "0\x00", 0, "ENOSYS"},
		{"type 27 (one past the last)", 27, "", 0, "ENOSYS"},
		{"type 99", 99, "x\x00", 0, "ENOSYS"},
		{"type 0xffff", 0xffff, "", 0, "ENOSYS"},
		{"type 2^31", 1 << 31, "", 0, "ENOSYS"},
		{"WATCH_EVENT as a request", wire.WatchEvent, "/\x00t\x00", 0, "ENOSYS"},
		{"ERROR as a request", wire.Error, "EINVAL\x00", 0, "ENOSYS"},
		{"READ missing", wire.Read, "/no/such/node\x00", 0, "ENOENT"},
		{"READ in unknown transaction", wire.Read, "/\x00", 4242, "ENOENT"},
		{"WRITE without value separator", wire.Write, "/x", 0, "EINVAL"},
		{"relative path too long", wire.Write, strings.Repeat("a", 2100) + "\x00v", 0, "EINVAL"},
		{"TRANSACTION_END outside a transaction", wire.TransactionEnd, "T\x00", 0, "ENOENT"},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req := uint32(1000 + i)
			if _, err := c.Write(rawMsg(tc.typ, req, tc.tx, []byte(tc.payload))); err != nil {
				t.Fatal(err)
			}
			m, err := readMsg(t, c)
			if err != nil {
				t.Fatalf("no reply: %v", err)
			}
			if m.ReqID != req || m.Type != wire.Error || errName(m) != tc.want {
				t.Errorf("reply type %v req_id %d %q, want ERROR req_id %d %q", m.Type, m.ReqID, errName(m), req, tc.want)
			}
			// The connection still works.
			if _, err := c.Write(rawMsg(wire.Read, req+500, 0, []byte("/tool/xenstored\x00"))); err != nil {
				t.Fatal(err)
			}
			if m, err := readMsg(t, c); err != nil || m.Type != wire.Read || m.ReqID != req+500 {
				t.Fatalf("READ after the error: %+v, %v", m, err)
			}
		})
	}
}

// TestConcurrentClients: xsclient connections, pyxs and xenstore-utils at
// the same time; every write is seen by everyone at the end.
func TestConcurrentClients(t *testing.T) {
	d := startDaemon(t)
	write := needTool(t, "xenstore-write")
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for g := 0; g < 4; g++ {
		c := d.Client(t)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				if err := c.Write(0, fmt.Sprintf("/cc/g%d/%d", g, i), []byte("x")); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	d.ok(t, write, "/cc/tool", "t")
	var n int
	d.runPy(t, `
c = client()
for i in range(100):
    c.write(("/cc/py/%d" % i).encode(), b"p")
out(len(c.list(b"/cc/py")))
c.close()
`, &n)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	c := d.Client(t)
	for g := 0; g < 4; g++ {
		l, err := c.Directory(0, fmt.Sprintf("/cc/g%d", g))
		if err != nil || len(l) != 200 {
			t.Errorf("/cc/g%d: %d children, %v", g, len(l), err)
		}
	}
	if n != 100 {
		t.Errorf("pyxs sees %d children", n)
	}
}
