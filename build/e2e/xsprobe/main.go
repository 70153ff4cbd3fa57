// Command xsprobe speaks the xenstore wire protocol (package wire) directly
// over a Linux guest's /dev/xen/xenbus, for the end-to-end boot
// (build/e2e/pvh.sh). It runs in dom0 and inside the PVH domU, built
// static (CGO_ENABLED=0). Unlike libxenstore it never pages a directory
// with DIRECTORY_PART, so it shows what a raw DIRECTORY returns.
//
//	xsprobe read PATH               value, or "ERROR <name>" (exit 3)
//	xsprobe write PATH VALUE
//	xsprobe dir PATH                raw DIRECTORY: "children=N bytes=B", or "ERROR <name>" (exit 3)
//	xsprobe setperms PATH PERM...   SET_PERMS (PERM as on the wire: n5, r32757 for DOMID_ANY)
//	xsprobe getperms PATH           GET_PERMS: the entries, space-separated
//	xsprobe wait PATH SECS          poll READ until PATH exists; prints the value
//	xsprobe mkmany PATH FROM TO     write PATH/entry-NNNN-<pad> for FROM<=N<TO; stops at the first error
//	xsprobe setquota DOMID NAME VAL SET_QUOTA for one domain
//	xsprobe getquota DOMID NAME     GET_QUOTA for one domain
//	xsprobe getfeature [DOMID]      GET_FEATURE: the server's features, or one domain's
//	xsprobe flood read|write PATH SECS MAX
//	                                sends up to MAX READ (or WRITE) requests for PATH during
//	                                SECS seconds and never reads a reply
//	xsprobe time N PATH             N READs one after another; prints each latency in ms
//	xsprobe watch PATH TOKEN SECS   WATCH PATH; prints "WATCH-EVENT path=P token=T t=S" for each
//	                                event (S: seconds since the WATCH) for SECS seconds
//	xsprobe perf read|write|txwrite PATH SECS DEPTH
//	                                READs of PATH (a 16-byte value, written first), WRITEs of a
//	                                16-byte value to PATH, or those WRITEs inside one transaction
//	                                (aborted at the end), for SECS seconds with DEPTH requests in
//	                                flight (1: strictly one at a time); every reply's req_id, type
//	                                and payload checked: "ops=N secs=S ops_per_s=R errors=E" (exit 3
//	                                on an error or no operation)
//	xsprobe poll PATH STOP SECS     READ PATH every 200 ms (each reply must carry the first
//	                                one's value) until STOP exists or SECS pass: "POLL-DONE
//	                                reads=N errors=E max_read_ms=M stopped=B" (exit 3 on an error,
//	                                1 with POLL-LOST when the device fails); "POLL ..." every 30 s
//	xsprobe liveupdate FILE [-F]    CONTROL live-update of the store to the daemon in FILE, sent
//	                                in -b/-d chunks as to a xenstore domain, then -s: prints the
//	                                answer ("OK" from the new daemon; exit 3 otherwise)
//	xsprobe introduced DOMID        IS_DOMAIN_INTRODUCED (the control domain's): T or F
//	xsprobe fill PATH SIZE MAX      WRITE PATH/dNNNN/fNNNNNN (100 a directory) with SIZE-byte values until an error or MAX
//	                                writes: "written=N bytes=B first_error=E took=Ss" (exit 3 on error)
//
// The device is $XSPROBE_DEV or /dev/xen/xenbus.
package main

import (
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/xsstub/xenstored/wire"
)

type conn struct {
	f     io.ReadWriter
	reqID uint32
	txID  uint32 // the transaction requests are sent in (0: none)
}

func open() *conn {
	dev := os.Getenv("XSPROBE_DEV")
	if dev == "" {
		dev = "/dev/xen/xenbus"
	}
	if sock, ok := strings.CutPrefix(dev, "unix:"); ok { // tests on a host
		s, err := net.Dial("unix", sock)
		if err != nil {
			fatal(err)
		}
		return &conn{f: s}
	}
	f, err := os.OpenFile(dev, os.O_RDWR, 0)
	if err != nil {
		fatal(err)
	}
	return &conn{f: f}
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "xsprobe:", err)
	os.Exit(1)
}

// send writes one whole message in one write(2): Linux's xenbus frontend
// takes exactly one message per write.
func (c *conn) send(t wire.Type, payload []byte) error {
	c.reqID++
	m := wire.Msg{Type: t, ReqID: c.reqID, TxID: c.txID, Payload: payload}
	_, err := c.f.Write(m.Encode())
	return err
}

// call sends one request and returns the reply's payload, or the wire error
// name of an ERROR reply as errName. Watch events are skipped.
func (c *conn) call(t wire.Type, args ...string) (payload []byte, errName string, err error) {
	return c.callRaw(t, wire.JoinStrings(args...))
}

// callRaw is call with the request's payload as is.
func (c *conn) callRaw(t wire.Type, req []byte) (payload []byte, errName string, err error) {
	if err := c.send(t, req); err != nil {
		return nil, "", err
	}
	for {
		hb := make([]byte, wire.HeaderSize)
		if _, err := io.ReadFull(c.f, hb); err != nil {
			return nil, "", err
		}
		h, err := wire.ParseHeader(hb)
		if err != nil {
			return nil, "", err
		}
		p := make([]byte, h.Len)
		if _, err := io.ReadFull(c.f, p); err != nil {
			return nil, "", err
		}
		if h.Type == wire.WatchEvent || h.ReqID != c.reqID {
			continue
		}
		if h.Type == wire.Error {
			return nil, strings.TrimRight(string(p), "\x00"), nil
		}
		return p, "", nil
	}
}

func (c *conn) must(t wire.Type, args ...string) []byte {
	return c.mustRaw(t, wire.JoinStrings(args...))
}

// mustRaw is must with the request's payload as is.
func (c *conn) mustRaw(t wire.Type, req []byte) []byte {
	p, e, err := c.callRaw(t, req)
	if err != nil {
		fatal(err)
	}
	if e != "" {
		fmt.Println("ERROR", e)
		os.Exit(3)
	}
	return p
}

func atoi(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		fatal(err)
	}
	return n
}

func main() {
	a := os.Args[1:]
	if len(a) == 0 {
		fmt.Fprintln(os.Stderr, "usage: xsprobe read|write|setperms|getperms|dir|wait|mkmany|setquota|getquota|flood|time|watch|perf|poll|liveupdate|introduced|fill ...")
		os.Exit(2)
	}
	c := open()
	switch {
	case a[0] == "read" && len(a) == 2:
		fmt.Println(strings.TrimRight(string(c.must(wire.Read, a[1])), "\x00"))
	case a[0] == "write" && len(a) == 3:
		p := append([]byte(a[1]), 0)
		if err := c.send(wire.Write, append(p, a[2]...)); err != nil {
			fatal(err)
		}
		// The reply (or error) is read by a dummy call-free read.
		hb := make([]byte, wire.HeaderSize)
		if _, err := io.ReadFull(c.f, hb); err != nil {
			fatal(err)
		}
		h, _ := wire.ParseHeader(hb)
		pl := make([]byte, h.Len)
		if _, err := io.ReadFull(c.f, pl); err != nil {
			fatal(err)
		}
		if h.Type == wire.Error {
			fmt.Println("ERROR", strings.TrimRight(string(pl), "\x00"))
			os.Exit(3)
		}
	case a[0] == "setperms" && len(a) >= 3:
		c.must(wire.SetPerms, a[1:]...)
	case a[0] == "getperms" && len(a) == 2:
		ps, _ := wire.SplitStrings(c.must(wire.GetPerms, a[1]))
		fmt.Println(strings.Join(ps, " "))
	case a[0] == "dir" && len(a) == 2:
		p := c.must(wire.Directory, a[1])
		kids, _ := wire.SplitStrings(p)
		fmt.Printf("children=%d bytes=%d\n", len(kids), len(p))
	case a[0] == "wait" && len(a) == 3:
		end := time.Now().Add(time.Duration(atoi(a[2])) * time.Second)
		for {
			p, e, err := c.call(wire.Read, a[1])
			if err != nil {
				fatal(err)
			}
			if e == "" {
				fmt.Println(strings.TrimRight(string(p), "\x00"))
				return
			}
			if time.Now().After(end) {
				fmt.Println("ERROR", e)
				os.Exit(3)
			}
			time.Sleep(200 * time.Millisecond)
		}
	case a[0] == "mkmany" && len(a) == 4:
		from, to := atoi(a[2]), atoi(a[3])
		t0 := time.Now()
		for i := from; i < to; i++ {
			name := fmt.Sprintf("%s/entry-%04d-%s", a[1], i, strings.Repeat("x", 16))
			p := append([]byte(name), 0)
			if err := c.send(wire.Write, append(p, 'v')); err != nil {
				fatal(err)
			}
			hb := make([]byte, wire.HeaderSize)
			if _, err := io.ReadFull(c.f, hb); err != nil {
				fatal(err)
			}
			h, _ := wire.ParseHeader(hb)
			pl := make([]byte, h.Len)
			if _, err := io.ReadFull(c.f, pl); err != nil {
				fatal(err)
			}
			if h.Type == wire.Error {
				fmt.Printf("created=%d first_error=%s at=entry-%04d took=%.1fs\n", i-from, strings.TrimRight(string(pl), "\x00"), i, time.Since(t0).Seconds())
				os.Exit(3)
			}
		}
		fmt.Printf("created=%d took=%.1fs\n", to-from, time.Since(t0).Seconds())
	case a[0] == "setquota" && len(a) == 4:
		c.must(wire.SetQuota, a[1], a[2], a[3])
	case a[0] == "getquota" && len(a) == 3:
		fmt.Println(strings.TrimRight(string(c.must(wire.GetQuota, a[1], a[2])), "\x00"))
	case a[0] == "getfeature" && len(a) <= 2:
		fmt.Println(strings.TrimRight(string(c.must(wire.GetFeature, a[1:]...)), "\x00"))
	case a[0] == "flood" && len(a) == 5:
		secs, max := atoi(a[3]), atoi(a[4])
		end := time.Now().Add(time.Duration(secs) * time.Second)
		n := 0
		for ; n < max && time.Now().Before(end); n++ {
			var err error
			if a[1] == "write" {
				p := append([]byte(fmt.Sprintf("%s/f%d", a[2], n%8)), 0)
				err = c.send(wire.Write, append(p, "flood"...))
			} else {
				err = c.send(wire.Read, wire.JoinStrings(a[2]))
			}
			if err != nil {
				fmt.Printf("sent=%d write error: %v\n", n, err)
				os.Exit(1)
			}
		}
		fmt.Printf("sent=%d %s requests, read no reply\n", n, a[1])
	case a[0] == "time" && len(a) == 3:
		var ms []string
		for i := 0; i < atoi(a[1]); i++ {
			t0 := time.Now()
			c.must(wire.Read, a[2])
			ms = append(ms, fmt.Sprintf("%.1f", float64(time.Since(t0).Microseconds())/1000))
		}
		fmt.Println(strings.Join(ms, " "))
	case a[0] == "watch" && len(a) == 4:
		watch(c, a[1], a[2], atoi(a[3]))
	case a[0] == "perf" && len(a) == 5:
		perf(c, a[1], a[2], a[3], a[4])
	case a[0] == "poll" && len(a) == 4:
		poll(c, os.Stdout, a[1], a[2], atoi(a[3]))
	case a[0] == "liveupdate" && (len(a) == 2 || len(a) == 3 && a[2] == "-F"):
		r, err := liveUpdate(c, a[1], len(a) == 3)
		fmt.Println(r)
		if err != nil || r != "OK" {
			fmt.Fprintln(os.Stderr, "xsprobe: live-update:", err)
			os.Exit(3)
		}
	case a[0] == "introduced" && len(a) == 2:
		fmt.Println(strings.TrimRight(string(c.must(wire.IsDomainIntroduced, a[1])), "\x00"))
	case a[0] == "fill" && len(a) == 4:
		fill(c, a[1], atoi(a[2]), atoi(a[3]))
	default:
		fmt.Fprintln(os.Stderr, "xsprobe: bad command")
		os.Exit(2)
	}
}

// next reads one whole message.
func (c *conn) next() (wire.Header, []byte, error) {
	hb := make([]byte, wire.HeaderSize)
	if _, err := io.ReadFull(c.f, hb); err != nil {
		return wire.Header{}, nil, err
	}
	h, err := wire.ParseHeader(hb)
	if err != nil {
		return h, nil, err
	}
	p := make([]byte, h.Len)
	_, err = io.ReadFull(c.f, p)
	return h, p, err
}

// watch registers a watch and prints each event as it comes (the initial
// event included), for secs seconds; the connection is the caller's (a
// guest's kernel xenbus), so an event after a live update shows that the
// connection and its watch were carried over.
func watch(c *conn, path, token string, secs int) {
	t0 := time.Now()
	time.AfterFunc(time.Duration(secs)*time.Second, func() { os.Exit(0) })
	if err := c.send(wire.Watch, wire.JoinStrings(path, token)); err != nil {
		fatal(err)
	}
	for {
		h, p, err := c.next()
		if err != nil {
			fmt.Printf("WATCH-LOST err=%v t=%.1f\n", err, time.Since(t0).Seconds())
			os.Exit(1)
		}
		switch {
		case h.Type == wire.WatchEvent:
			f, _ := wire.SplitStrings(p)
			for len(f) < 2 {
				f = append(f, "")
			}
			fmt.Printf("WATCH-EVENT path=%s token=%s t=%.1f\n", f[0], f[1], time.Since(t0).Seconds())
		case h.Type == wire.Error:
			fmt.Printf("WATCH-ERROR %s\n", strings.TrimRight(string(p), "\x00"))
			os.Exit(3)
		default:
			fmt.Printf("WATCH-OK t=%.1f\n", time.Since(t0).Seconds())
		}
	}
}

// fill writes size-byte values under path until the store refuses one (or
// max writes), and reports how far it got and the error's name.
func fill(c *conn, path string, size, max int) {
	t0 := time.Now()
	val := []byte(strings.Repeat("m", size))
	var bytes int
	for i := 0; i < max; i++ {
		// 100 values per directory: a directory's record (its
		// children's names) stays far below the node-size quota.
		p := append([]byte(fmt.Sprintf("%s/d%04d/f%06d", path, i/100, i)), 0)
		if err := c.send(wire.Write, append(p, val...)); err != nil {
			fatal(err)
		}
		h, pl, err := c.next()
		if err != nil {
			fatal(err)
		}
		if h.Type == wire.Error {
			fmt.Printf("written=%d bytes=%d first_error=%s at=f%06d took=%.1fs\n", i, bytes, strings.TrimRight(string(pl), "\x00"), i, time.Since(t0).Seconds())
			os.Exit(3)
		}
		bytes += size
		if (i+1)%500 == 0 {
			fmt.Printf("fill-progress written=%d bytes=%d t=%.1fs\n", i+1, bytes, time.Since(t0).Seconds())
		}
	}
	fmt.Printf("written=%d bytes=%d took=%.1fs\n", max, bytes, time.Since(t0).Seconds())
}
