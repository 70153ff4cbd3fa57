package bench

import (
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/xsstub/xenstored/wire"
)

// fanout is the watch operation's set of watcher connections: each
// watches the watch root; every writer connection writes its own node
// below it and waits until every watcher has seen the event.
type fanout struct {
	n        int32
	watchers []*conn
	waiters  map[string]*waiter // by event path; read-only once running
	events   atomic.Int64
	errors   atomic.Int64
	firstErr atomic.Pointer[string]
	wg       sync.WaitGroup
}

type waiter struct {
	remaining atomic.Int32
	ch        chan struct{}
}

func newFanout(s *runState, writers int) (*fanout, error) {
	f := &fanout{n: int32(s.cfg.Watchers), waiters: map[string]*waiter{}}
	for i := 0; i < writers; i++ {
		f.waiters[watchPath(s, i)] = &waiter{ch: make(chan struct{}, 1)}
	}
	root := []byte(watchRoot(s))
	for i := 0; i < s.cfg.Watchers; i++ {
		c, err := dial(s.cfg.Socket)
		if err != nil {
			f.close()
			return nil, err
		}
		f.watchers = append(f.watchers, c)
		c.queue(wire.Watch, 1, 0, root, nul, []byte("t"+strconv.Itoa(i)), nul)
		_ = c.nc.SetReadDeadline(time.Now().Add(s.cfg.Timeout))
		err = c.flush()
		var h wire.Header
		var p []byte
		if err == nil {
			h, p, err = c.nextReply()
		}
		if err == nil && h.Type == wire.Error {
			err = fmt.Errorf("WATCH %s: %s", root, cut(p))
		}
		if err != nil {
			f.close()
			return nil, fmt.Errorf("watcher %d: %w", i, err)
		}
		_ = c.nc.SetReadDeadline(time.Time{})
	}
	for _, c := range f.watchers {
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			f.watch(c)
		}()
	}
	return f, nil
}

// watch counts one watcher's events until its connection is closed.
func (f *fanout) watch(c *conn) {
	for {
		h, p, err := c.next()
		if err != nil {
			return
		}
		if h.Type != wire.WatchEvent {
			f.fail(fmt.Sprintf("watcher got %v", h.Type))
			continue
		}
		w := f.waiters[cut(p)]
		if w == nil {
			continue // the initial event of the WATCH
		}
		f.events.Add(1)
		if w.remaining.Add(-1) == 0 {
			w.ch <- struct{}{}
		}
	}
}

func (f *fanout) fail(msg string) {
	if f.errors.Add(1) == 1 {
		f.firstErr.Store(&msg)
	}
}

func (f *fanout) close() {
	for _, c := range f.watchers {
		c.nc.Close()
	}
	f.wg.Wait()
}

// writer runs watch operations on writer connection id until the run stops.
func (f *fanout) writer(s *runState, c *conn, id int, st *connStats) {
	path := watchPath(s, id)
	w := f.waiters[path]
	key := append([]byte(path), 0)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for s.mayStart() {
		w.remaining.Store(f.n)
		start := time.Now()
		c.queue(wire.Write, 0, 0, key, s.value)
		if err := c.flush(); err != nil {
			st.fail("write: %v", err)
			return
		}
		_ = c.nc.SetReadDeadline(start.Add(s.cfg.Timeout))
		h, p, err := c.nextReply()
		if err != nil {
			st.fail("read: %v", err)
			return
		}
		if h.Type != wire.Write {
			st.fail("WRITE %s: %v %s", path, h.Type, cut(p))
			return
		}
		timer.Reset(s.cfg.Timeout)
		select {
		case <-w.ch:
		case <-timer.C:
			st.fail("watch events for %s: only %d of %d after %v", path, f.n-w.remaining.Load(), f.n, s.cfg.Timeout)
			return
		}
		st.done(s, start, time.Now())
	}
}
