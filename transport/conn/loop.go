package conn

import "sync"

// Loop is one serving goroutine's side of its connections: those with
// work (dirty, in the order they were marked) and the wake-up of the
// goroutine, which is sent only while it sleeps (between Sleep and Awake)
// and at most once per sleep. Most wake-ups happen while the goroutine is
// awake, often from its own calls into the engine; they cost a lock and
// an append, no system call.
//
// The serving goroutine runs, in a loop: Take the dirty connections and
// Pump each; then Sleep, and if it says so block in its poll (whose set
// includes what kick signals); then Awake.
type Loop struct {
	kick func() // makes the goroutine's blocking poll return; must not block

	mu       sync.Mutex
	dirty    []*Conn
	poked    bool // Poke: work outside the dirty list
	sleeping bool // between Sleep (true) and Awake
	kicked   bool // kick was called in this sleep

	scratch []byte // the goroutine's read buffer (Conn.fill)
}

// readChunk is the room a read is given: two of the largest requests.
const readChunk = 8192

// NewLoop makes a loop whose sleeping goroutine kick wakes.
func NewLoop(kick func()) *Loop {
	return &Loop{kick: kick, scratch: make([]byte, readChunk)}
}

// Mark queues c for the next pass, waking the goroutine if it sleeps. It
// only signals: the engine calls it with its lock held.
func (l *Loop) Mark(c *Conn) {
	l.mu.Lock()
	if !c.dirty {
		c.dirty = true
		l.dirty = append(l.dirty, c)
	}
	l.wakeLocked()
}

// Poke wakes the goroutine for work of its transport's own (a ring to
// release, a stop).
func (l *Loop) Poke() {
	l.mu.Lock()
	l.poked = true
	l.wakeLocked()
}

// wakeLocked kicks a sleeping goroutine once and releases l.mu.
func (l *Loop) wakeLocked() {
	kick := l.sleeping && !l.kicked
	l.kicked = l.kicked || kick
	l.mu.Unlock()
	if kick {
		l.kick()
	}
}

// Take moves the dirty connections to buf, in marking order.
func (l *Loop) Take(buf []*Conn) []*Conn {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, c := range l.dirty {
		c.dirty = false
		buf = append(buf, c)
	}
	clear(l.dirty)
	l.dirty = l.dirty[:0]
	return buf
}

// Sleep is called before the goroutine blocks: false means work came
// meanwhile (dirty connections, a Poke), so it must poll without blocking
// and come back; true means a Mark or Poke from now on kicks it.
func (l *Loop) Sleep() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.dirty) > 0 || l.poked {
		l.poked = false
		return false
	}
	l.sleeping = true
	return true
}

// Awake is called once the goroutine's poll returned, before it does its
// transport's own work (a Poke's) and takes the dirty connections.
func (l *Loop) Awake() {
	l.mu.Lock()
	l.sleeping, l.kicked, l.poked = false, false, false
	l.mu.Unlock()
}
