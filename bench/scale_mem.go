package bench

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"time"

	"github.com/xsstub/xenstored/wire"
)

// MemTarget is a xenstore daemon to start for the process memory
// comparison: Cmd with Env added to this process's environment, serving
// Socket.
type MemTarget struct {
	Name   string
	Cmd    []string
	Env    []string
	Socket string
}

// ProcMemRow is one daemon's resident memory after growing to Nodes.
type ProcMemRow struct {
	Target  string
	Nodes   int     // nodes added over the daemon's start-up set
	RSS     uint64  // VmRSS
	PerNode float64 // (RSS - RSS at start) / Nodes
}

// ProcMemScale starts each target in turn, fills it through its socket
// with the tree TreeScale uses (16-byte leaves, fan-out 32) up to each of
// sizes nodes, and reads its VmRSS from /proc. It measures what a daemon
// really holds per node, allocator and (for Go) garbage-collector headroom
// included.
func ProcMemScale(targets []MemTarget, sizes []int, say func(string)) ([]ProcMemRow, error) {
	if say == nil {
		say = func(string) {}
	}
	var rows []ProcMemRow
	for _, t := range targets {
		r, err := procMemOne(t, sizes, say)
		rows = append(rows, r...)
		if err != nil {
			return rows, fmt.Errorf("%s: %w", t.Name, err)
		}
	}
	return rows, nil
}

func procMemOne(t MemTarget, sizes []int, say func(string)) ([]ProcMemRow, error) {
	os.Remove(t.Socket)
	cmd := exec.Command(t.Cmd[0], t.Cmd[1:]...)
	cmd.Env = append(os.Environ(), t.Env...)
	// The daemon dies with us, even when we are killed (make's timeout).
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	var logBuf limitedBuffer
	cmd.Stdout, cmd.Stderr = &logBuf, &logBuf
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		cmd.Process.Kill()
		<-exited
	}()
	var conn net.Conn
	for deadline := time.Now().Add(10 * time.Second); ; {
		c, err := net.Dial("unix", t.Socket)
		if err == nil {
			conn = c
			break
		}
		select {
		case err := <-exited:
			exited <- err
			return nil, fmt.Errorf("exited at start (%v): %s", err, logBuf.String())
		default:
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("no socket %s after 10s: %s", t.Socket, logBuf.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	defer conn.Close()
	pid := cmd.Process.Pid
	time.Sleep(300 * time.Millisecond)
	st, err := ProcStatus(pid)
	if err != nil {
		return nil, err
	}
	base := st["VmRSS"]
	var rows []ProcMemRow
	leaves, nodes := 0, 0
	for _, size := range sizes {
		var batch [][]byte
		for nodes < size {
			nodes += treeNodesAdded(leaves)
			batch = append(batch, append(wire.JoinStrings(treeLeaf(leaves)), value16...))
			leaves++
		}
		start := time.Now()
		if err := pipelineWrites(conn, batch, 64); err != nil {
			return rows, err
		}
		time.Sleep(300 * time.Millisecond)
		st, err := ProcStatus(pid)
		if err != nil {
			return rows, err
		}
		row := ProcMemRow{Target: t.Name, Nodes: nodes, RSS: st["VmRSS"]}
		row.PerNode = float64(int64(row.RSS)-int64(base)) / float64(nodes)
		say(fmt.Sprintf("memory: %s at %d nodes: RSS %s (%.1fs to fill)", t.Name, nodes, fmtBytes(float64(row.RSS)), time.Since(start).Seconds()))
		rows = append(rows, row)
	}
	return rows, nil
}

// treeNodesAdded is how many nodes writing treeLeaf(i) creates after
// leaves 0..i-1: the leaf, and each interior directory it opens.
func treeNodesAdded(i int) int {
	n := 1
	if i == 0 {
		n++ // /t
	}
	for _, m := range []int{1 << 15, 1 << 10, 1 << 5} {
		if i%m == 0 {
			n++
		}
	}
	return n
}

// pipelineWrites sends every request (WRITE payloads) with up to depth in
// flight and checks that none fails.
func pipelineWrites(conn net.Conn, payloads [][]byte, depth int) error {
	errc := make(chan error, 1)
	window := make(chan struct{}, depth)
	go func() {
		br := bufio.NewReaderSize(conn, 64<<10)
		hdr := make([]byte, wire.HeaderSize)
		for i := range payloads {
			if _, err := io.ReadFull(br, hdr); err != nil {
				errc <- err
				return
			}
			h, err := wire.ParseHeader(hdr)
			if err != nil {
				errc <- err
				return
			}
			body := make([]byte, h.Len)
			if _, err := io.ReadFull(br, body); err != nil {
				errc <- err
				return
			}
			if h.Type == wire.Error {
				errc <- fmt.Errorf("write %d: error %q", i, body)
				return
			}
			<-window
		}
		errc <- nil
	}()
	bw := bufio.NewWriterSize(conn, 64<<10)
	for i, p := range payloads {
		select {
		case window <- struct{}{}:
		case err := <-errc:
			if err == nil {
				err = errors.New("reader stopped early")
			}
			return err
		}
		m := wire.Msg{Type: wire.Write, ReqID: uint32(i), Payload: p}
		bw.Write(m.Encode())
		if len(window) == depth || i == len(payloads)-1 {
			if err := bw.Flush(); err != nil {
				return err
			}
		}
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	select {
	case err := <-errc:
		return err
	case <-time.After(2 * time.Minute):
		return errors.New("timeout waiting for replies")
	}
}

// limitedBuffer keeps the first 8 KiB written to it (a daemon's log).
type limitedBuffer struct{ b []byte }

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if room := 8192 - len(l.b); room > 0 {
		l.b = append(l.b, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

func (l *limitedBuffer) String() string { return string(l.b) }

// ProcMemTable renders ProcMemScale's rows, each against the first
// target's at the same size.
func ProcMemTable(rows []ProcMemRow, md bool) string {
	h := []string{"daemon", "nodes", "RSS", "RSS/node", "vs " + rows[0].Target}
	first := map[int]float64{}
	for _, r := range rows {
		if r.Target == rows[0].Target {
			first[r.Nodes] = r.PerNode
		}
	}
	var out [][]string
	for _, r := range rows {
		ratio := ""
		if f := first[r.Nodes]; f > 0 {
			ratio = fmt.Sprintf("%.2fx", r.PerNode/f)
		}
		out = append(out, []string{r.Target, strconv.Itoa(r.Nodes), fmtBytes(float64(r.RSS)), fmtBytes(r.PerNode), ratio})
	}
	return table(md, h, out)
}
