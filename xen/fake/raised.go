package fake

import "sync"

// raisedSet is what a handle with one descriptor (an EventChannel, a
// GuestEvents) has been notified of and not yet reported: each item at
// most once, in the order raised. It has its own lock, so raising never
// waits for a handle's other work.
type raisedSet[T comparable] struct {
	mu    sync.Mutex
	items []T
	in    map[T]bool
}

// add records x unless it is recorded already, and reports whether the set
// was empty before: the caller then signals the handle's descriptor (after
// add returns, so a reader draining the descriptor then taking the set
// never misses a wake-up).
func (r *raisedSet[T]) add(x T) (first bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.in[x] {
		return false
	}
	if r.in == nil {
		r.in = make(map[T]bool)
	}
	r.in[x] = true
	r.items = append(r.items, x)
	return len(r.items) == 1
}

// take empties the set and returns what it held.
func (r *raisedSet[T]) take() []T {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.items
	r.items = nil
	clear(r.in)
	return out
}

// remove forgets x if it is recorded.
func (r *raisedSet[T]) remove(x T) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.in[x] {
		return
	}
	delete(r.in, x)
	for i, y := range r.items {
		if y == x {
			r.items = append(r.items[:i], r.items[i+1:]...)
			break
		}
	}
}
