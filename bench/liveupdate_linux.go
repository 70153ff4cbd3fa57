package bench

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/xsstub/xenstored/store"
	"github.com/xsstub/xenstored/store/handover"
	tconn "github.com/xsstub/xenstored/transport/conn"
	"github.com/xsstub/xenstored/transport/xenring"
	"github.com/xsstub/xenstored/wire"
)

// LiveUpdateRow is the cost of a live update of a store serving N
// fake-ring guests, each with its home populated and a watch.
type LiveUpdateRow struct {
	Domains     int
	Nodes       int
	StreamBytes int           // the migration stream
	HeapBefore  uint64        // heap in use before the update
	OldPeak     uint64        // live heap with the state exported and encoded, plus the stream in its memfd
	NewPeak     uint64        // live heap the new daemon's read and restore take, plus the memfd
	Export      time.Duration // freeze, export and encode (the old daemon's pause)
	Restore     time.Duration // decode and restore (the new daemon's start)
}

// updateCapture is a LiveUpdater that measures instead of executing.
type updateCapture struct {
	srv *xenring.Server
	row *LiveUpdateRow
	buf bytes.Buffer
	err error
}

func (u *updateCapture) CheckBinary(string) error { return nil }

func (u *updateCapture) NewImage(int) (io.WriteCloser, error) {
	return nil, errors.New("no images here")
}

func (u *updateCapture) Exec(st *store.State, _ string, _ string) error {
	t0 := time.Now()
	rings := u.srv.Freeze()
	u.err = handover.Encode(&u.buf, st, ringTransports(rings))
	u.row.Export = time.Since(t0)
	u.row.StreamBytes = u.buf.Len()
	runtime.GC()                // what must stay live: a stub's memory limit makes the collector run
	u.row.OldPeak = heapInUse() // the buffer stands for the memfd
	u.srv.Thaw()
	return errors.New("measured")
}

func heapInUse() uint64 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

// LiveUpdateCost measures one update of a store with n fake-ring guests.
func LiveUpdateCost(n int) (*LiveUpdateRow, error) {
	row := &LiveUpdateRow{Domains: n}
	capture := &updateCapture{row: row}
	r, err := NewRingRig(RingRigConfig{WriteRate: -1, CacheDomains: true, LiveUpdate: capture})
	if err != nil {
		return nil, err
	}
	defer r.Close()
	capture.srv = r.Srv
	for id := 1; id <= n; id++ {
		if err := r.AddGuest(uint32(id), true); err != nil {
			return nil, err
		}
		if err := r.GuestWatch(uint32(id)); err != nil {
			return nil, err
		}
	}
	row.Nodes = r.E.NodeCount()
	runtime.GC()
	row.HeapBefore = heapInUse()
	for _, args := range [][]string{{"live-update", "-f", "/measure"}, {"live-update", "-s"}} {
		if _, err := r.Dom0.Call(wire.Control, 0, wire.JoinStrings(args...)); err != nil && !strings.Contains(err.Error(), "measured") {
			return nil, fmt.Errorf("%s: %w", strings.Join(args, " "), err)
		}
	}
	if capture.err != nil || row.StreamBytes == 0 {
		return nil, fmt.Errorf("no state written: %v", capture.err)
	}
	stream := capture.buf.Bytes()
	runtime.GC()
	before := heapInUse()
	t0 := time.Now()
	st, _, err := handover.Decode(bytes.NewReader(stream), 0)
	if err != nil {
		return nil, err
	}
	e, err := store.Restore(store.Config{Logger: discardLogger()}, st)
	if err != nil {
		return nil, err
	}
	row.Restore = time.Since(t0)
	// The new daemon holds what reading and restoring added (the old
	// store, still in this process, is gone with the exec) and the
	// stream in its memfd.
	runtime.GC()
	row.NewPeak = heapInUse() - before + uint64(len(stream))
	runtime.KeepAlive(e)
	runtime.KeepAlive(st)
	return row, nil
}

// LiveUpdateTable renders rows.
func LiveUpdateTable(rows []*LiveUpdateRow, md bool) string {
	h := []string{"domains", "nodes", "stream", "heap before", "old daemon peak", "new daemon peak", "pause (export)", "restore"}
	var rs [][]string
	for _, r := range rows {
		rs = append(rs, []string{strconv.Itoa(r.Domains), strconv.Itoa(r.Nodes), fmtBytes(float64(r.StreamBytes)),
			fmtBytes(float64(r.HeapBefore)), fmtBytes(float64(r.OldPeak)), fmtBytes(float64(r.NewPeak)),
			r.Export.Round(time.Millisecond).String(), r.Restore.Round(time.Millisecond).String()})
	}
	return table(md, h, rs)
}

// ringTransports is the frozen rings as a stub's live update hands them
// over (no sockets).
func ringTransports(rings []tconn.Handover) *handover.Transports {
	t := handover.NewTransports()
	for _, r := range rings {
		t.Rings[r.Store.ID()] = r.State
	}
	return t
}
