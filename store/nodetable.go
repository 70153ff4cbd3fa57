package store

import (
	"encoding/binary"
	"hash/maphash"
)

// nodeTable holds the live tree: every node packed as one record into
// large byte chunks, found through an open-addressing index of 8-byte
// slots. It exists for memory: a Go map of path strings to node structs
// costs about three times what C xenstored spends per node, because of the
// separate allocations (key, struct, value, permissions) and the garbage
// collector's headroom over them. Here a node costs its record (a header
// of 13 bytes for most nodes, the path, the value and the child list,
// 4-byte aligned) plus 10-15 bytes of index, and the chunks hold no
// pointers, so the collector never scans them.
//
// Records are immutable once written, except that a record leaving the
// index has its generation zeroed so that compaction skips it without a
// lookup (nodes already read from it copied the generation). get returns a
// node whose value and child list alias the chunk: a replaced or deleted
// record is garbage in its chunk, and a reader holding an old node keeps
// the chunk alive through the Go collector, so it stays valid (the engine
// still copies what it keeps across requests: see node.detached).
//
// Compaction: a chunk whose live records fall under three quarters of its
// bytes has them copied to a chunk of survivors and is dropped, so the
// chunks hold at most 4/3 of the live records however the store is
// churned, at a copying cost of at most three bytes per byte freed. The
// last youngChunks chunks of new records are spared until they age (unless
// nearly empty), so that records which die young (a counter rewritten, a
// parent rewritten as its children arrive) are never copied.
//
// Permission lists are interned (permSets): nodes share identical lists,
// which is the common case (a guest's nodes all say "b<domid>" or
// "n0,r<domid>").
//
// Not safe for concurrent use; the Engine's mutex guards it.
type nodeTable struct {
	seed  maphash.Seed
	slots []uint64 // 0 is empty, else hash tag << 32 | record ref
	count int      // non-empty slots

	// chunks[0] is never used, so no ref is 0. A ref is the chunk index
	// shifted over the record's offset in recAlign units.
	chunks     []chunk
	freeChunks []uint32 // indexes of dropped chunks, for reuse
	// New records and the records compaction moves are appended to
	// different chunks (0 before the first), so that long-lived records
	// settle together instead of being moved again each time the
	// short-lived ones written beside them die.
	cur, survivors uint32
	// young lists the last chunks t.cur filled, oldest first. Their
	// records are compacted only once youngChunks more have filled (or
	// when nearly all are dead): short-lived records get time to die
	// before anything is copied.
	young []uint32

	recordBytes int // bytes of live records
	perms       permSets
}

// chunk is one block of records, appended from offset 0.
type chunk struct {
	buf   []byte // nil once dropped
	used  int    // bytes appended
	live  int    // bytes of records the index still points at
	young bool   // in nodeTable.young
}

const (
	chunkSize   = 64 << 10
	largeRecord = chunkSize / 4 // bigger records get a chunk of their own
	youngChunks = 8
	recAlign    = 4
	offBits     = 14 // chunkSize / recAlign == 1 << offBits
	maxChunks   = 1 << (32 - offBits)
	minSlots    = 64

	// A record is its generation (8 bytes, little-endian), the path's
	// length (2 bytes) and the path, so that probing the index reads a
	// fixed place; then as uvarints the permissions id and the lengths of
	// the value and the child list, then those two. Paths are bounded by
	// the wire's 4096-byte payload.
	genBytes = 8
	pathAt   = genBytes + 2
)

// recHeader is a record's layout past its path.
type recHeader struct {
	permsID               uint32
	pathLen               int
	body                  int // offset of the value
	valueLen, childrenLen int
}

func readHeader(rec []byte) recHeader {
	h := recHeader{pathLen: int(binary.LittleEndian.Uint16(rec[genBytes:]))}
	var v [3]int
	off := pathAt + h.pathLen
	for i := range v {
		// Most fields are under 128: one byte, no call.
		if b := rec[off]; b < 0x80 {
			v[i] = int(b)
			off++
			continue
		}
		x, n := binary.Uvarint(rec[off:])
		v[i] = int(x)
		off += n
	}
	h.permsID = uint32(v[0])
	h.valueLen, h.childrenLen = v[1], v[2]
	h.body = off
	return h
}

// size is the record's length, padding included.
func (h recHeader) size() int { return alignRecord(h.body + h.valueLen + h.childrenLen) }

func newNodeTable() *nodeTable {
	return &nodeTable{
		seed:   maphash.MakeSeed(), // random: guests choose paths (hash flooding)
		slots:  make([]uint64, minSlots),
		chunks: make([]chunk, 1),
		perms:  permSets{byKey: make(map[string]uint32)},
	}
}

// len is the number of nodes.
func (t *nodeTable) len() int { return t.count }

// get returns the node at path, or nil. The node is the caller's; its
// value, child list and permissions are shared and must not be modified.
func (t *nodeTable) get(path string) *node {
	rec := t.lookup(path)
	if rec == nil {
		return nil
	}
	return t.decode(rec)
}

// lookup returns the record of path (see record), or nil.
func (t *nodeTable) lookup(path string) []byte {
	i, _ := t.find(path)
	if t.slots[i] == 0 {
		return nil
	}
	return t.record(uint32(t.slots[i]))
}

// permsOf returns the node's (shared) permission list, or nil if path is
// absent; unlike get it allocates nothing (watch checks run per watcher).
func (t *nodeTable) permsOf(path string) Perms {
	rec := t.lookup(path)
	if rec == nil {
		return nil
	}
	return t.perms.sets[readHeader(rec).permsID]
}

// generation returns the node's generation, or 0 if path is absent.
func (t *nodeTable) generation(path string) uint64 {
	rec := t.lookup(path)
	if rec == nil {
		return 0
	}
	return binary.LittleEndian.Uint64(rec)
}

// put stores n at path and returns the node it replaced, if any. n is
// copied (n.gen included; it must not be 0, which marks dead records);
// the caller may go on using it.
func (t *nodeTable) put(path string, n *node) (node, bool) {
	if n.gen == 0 {
		panic("store: node table: a stored node needs a generation")
	}
	if (t.count+1)*5 > len(t.slots)*4 {
		t.resize(len(t.slots) * 3 / 2)
	}
	i, tag := t.find(path)
	permsID, kept := uint32(0), false
	if s := t.slots[i]; s != 0 {
		// The common write: the node keeps the list it was read with.
		permsID = readHeader(t.record(uint32(s))).permsID
		if kept = sameList(t.perms.sets[permsID], n.perms); kept {
			t.perms.refs[permsID]++
		}
	}
	if !kept {
		permsID = t.perms.acquire(n.perms)
	}
	ref := t.write(path, n, permsID)
	// Read the old entry only now: writing may have compacted the chunk
	// holding the old record, moving it (slots keep their places).
	old := t.slots[i]
	t.slots[i] = uint64(tag)<<32 | uint64(ref)
	if old == 0 {
		t.count++
		return node{}, false
	}
	return t.release(uint32(old)), true
}

// delete removes the node at path and returns it, if there was one.
func (t *nodeTable) delete(path string) (node, bool) {
	i, _ := t.find(path)
	old := t.slots[i]
	if old == 0 {
		return node{}, false
	}
	t.removeSlot(i)
	t.count--
	if t.count*10 < len(t.slots)*3 && len(t.slots) > minSlots {
		t.resize(max(len(t.slots)*2/3, minSlots))
	}
	return t.release(uint32(old)), true
}

// each calls f for every node, in no particular order, until f returns
// false. f must not change the table.
func (t *nodeTable) each(f func(path string, n *node) bool) {
	for _, s := range t.slots {
		if s == 0 {
			continue
		}
		rec := t.record(uint32(s))
		if !f(string(recPath(rec)), t.decode(rec)) {
			return
		}
	}
}

// find returns the slot holding path, or the empty slot where it would
// go, and path's hash tag.
func (t *nodeTable) find(path string) (int, uint32) {
	tag := uint32(maphash.String(t.seed, path))
	for i := t.home(tag); ; i = t.next(i) {
		s := t.slots[i]
		if s == 0 || uint32(s>>32) == tag && string(recPath(t.record(uint32(s)))) == path {
			return i, tag
		}
	}
}

// home is the first slot probed for tag: tag scaled to the index length,
// which need not be a power of two (the index grows by half).
func (t *nodeTable) home(tag uint32) int {
	return int(uint64(tag) * uint64(len(t.slots)) >> 32)
}

// next is the slot probed after i (linear probing, wrapping).
func (t *nodeTable) next(i int) int {
	if i++; i == len(t.slots) {
		return 0
	}
	return i
}

// removeSlot empties slot i, moving later entries of its probe run back so
// that every entry stays reachable from its home slot (no tombstones).
func (t *nodeTable) removeSlot(i int) {
	for j := t.next(i); t.slots[j] != 0; j = t.next(j) {
		home := t.home(uint32(t.slots[j] >> 32))
		// The entry at j may fill the hole at i unless its home lies
		// cyclically in (i, j].
		inRange := i < home && home <= j
		if j < i {
			inRange = i < home || home <= j
		}
		if !inRange {
			t.slots[i] = t.slots[j]
			i = j
		}
	}
	t.slots[i] = 0
}

// resize rehashes into n slots; the tags give each entry's home slot, so
// no record is read.
func (t *nodeTable) resize(n int) {
	old := t.slots
	t.slots = make([]uint64, n)
	for _, s := range old {
		if s == 0 {
			continue
		}
		i := t.home(uint32(s >> 32))
		for t.slots[i] != 0 {
			i = t.next(i)
		}
		t.slots[i] = s
	}
}

// record returns the chunk's bytes from the record at ref on (its header
// tells where the record ends).
func (t *nodeTable) record(ref uint32) []byte {
	return t.chunks[ref>>offBits].buf[int(ref&(1<<offBits-1))*recAlign:]
}

func alignRecord(n int) int { return (n + recAlign - 1) &^ (recAlign - 1) }

func recPath(rec []byte) []byte {
	return rec[pathAt : pathAt+int(binary.LittleEndian.Uint16(rec[genBytes:]))]
}

// decode builds a node from rec; value and children alias rec. Empty ones
// are nil, as the engine builds them.
func (t *nodeTable) decode(rec []byte) *node {
	n, _ := t.decodeValue(rec)
	return &n
}

func (t *nodeTable) decodeValue(rec []byte) (node, recHeader) {
	h := readHeader(rec)
	valLen, childLen := h.valueLen, h.childrenLen
	n := node{
		gen:   binary.LittleEndian.Uint64(rec),
		perms: t.perms.sets[h.permsID],
	}
	off := h.body
	if valLen > 0 {
		n.value = rec[off : off+valLen : off+valLen]
	}
	off += valLen
	if childLen > 0 {
		n.children = rec[off : off+childLen : off+childLen]
	}
	return n, h
}

// write appends n's record and returns its ref.
func (t *nodeTable) write(path string, n *node, permsID uint32) uint32 {
	if len(path) > 0xffff {
		panic("store: node table: path too long") // the wire allows 4096 bytes
	}
	var lens [3 * binary.MaxVarintLen32]byte
	l := binary.AppendUvarint(lens[:0], uint64(permsID))
	l = binary.AppendUvarint(l, uint64(len(n.value)))
	l = binary.AppendUvarint(l, uint64(len(n.children)))
	size := alignRecord(pathAt + len(path) + len(l) + len(n.value) + len(n.children))
	ref, rec := t.alloc(size, &t.cur)
	binary.LittleEndian.PutUint64(rec, n.gen)
	binary.LittleEndian.PutUint16(rec[genBytes:], uint16(len(path)))
	off := pathAt + copy(rec[pathAt:], path)
	off += copy(rec[off:], l)
	off += copy(rec[off:], n.value)
	copy(rec[off:], n.children)
	t.recordBytes += size
	return ref
}

// alloc reserves size bytes (a multiple of recAlign) at the end of the
// chunk *cursor (t.cur or t.survivors) and counts them live.
func (t *nodeTable) alloc(size int, cursor *uint32) (uint32, []byte) {
	if size > largeRecord {
		k := t.newChunk(size)
		t.chunks[k].used, t.chunks[k].live = size, size
		return k << offBits, t.chunks[k].buf
	}
	for *cursor == 0 || t.chunks[*cursor].used+size > len(t.chunks[*cursor].buf) {
		full := *cursor
		*cursor = t.newChunk(chunkSize)
		if full == 0 {
			continue
		}
		if cursor == &t.cur {
			t.chunks[full].young = true
			t.young = append(t.young, full)
			if len(t.young) > youngChunks {
				old := t.young[0]
				t.young = append(t.young[:0], t.young[1:]...)
				// The index may have been reused by a chunk
				// that is not young (dropped meanwhile).
				if t.chunks[old].young {
					t.chunks[old].young = false
					t.reclaim(old)
				}
			}
		}
		t.reclaim(full)
	}
	k := *cursor
	c := &t.chunks[k]
	off := c.used
	c.used += size
	c.live += size
	return k<<offBits | uint32(off/recAlign), c.buf[off : off+size]
}

func (t *nodeTable) newChunk(size int) uint32 {
	var k uint32
	if n := len(t.freeChunks); n > 0 {
		k = t.freeChunks[n-1]
		t.freeChunks = t.freeChunks[:n-1]
	} else {
		if len(t.chunks) >= maxChunks {
			// 32 GiB of records: far past any memory quota.
			panic("store: node table exhausted")
		}
		k = uint32(len(t.chunks))
		t.chunks = append(t.chunks, chunk{})
	}
	t.chunks[k] = chunk{buf: make([]byte, size)}
	return k
}

// release accounts for the record at ref no longer being in the index and
// returns its node (which stays valid: it keeps the chunk alive).
func (t *nodeTable) release(ref uint32) node {
	rec := t.record(ref)
	old, h := t.decodeValue(rec)
	size := h.size()
	t.perms.release(h.permsID)
	clear(rec[:genBytes]) // dead: compaction skips it
	t.recordBytes -= size
	k := ref >> offBits
	t.chunks[k].live -= size
	t.reclaim(k)
	return old
}

// reclaim drops chunk k when nothing in it is live, and compacts it when
// less than three quarters is (a quarter while young). The chunks being
// filled are left alone.
func (t *nodeTable) reclaim(k uint32) {
	c := t.chunks[k]
	switch {
	case c.buf == nil:
		// Dropped already: the young list can name a chunk twice
		// (indexes are reused), and reclaiming one twice would free
		// its index twice.
	case k == t.cur || k == t.survivors:
	case c.live == 0:
		t.chunks[k] = chunk{}
		t.freeChunks = append(t.freeChunks, k)
	case c.young && c.live*4 < c.used:
		t.compact(k)
	case !c.young && len(c.buf) == chunkSize && c.live*4 < c.used*3:
		t.compact(k)
	}
}

// compact moves chunk k's live records to the survivors' chunk and drops
// k. Live records are those with a generation; the index slot of each is
// found by its path.
func (t *nodeTable) compact(k uint32) {
	buf := t.chunks[k].buf
	used := t.chunks[k].used
	for off := 0; off < used; {
		rec := buf[off:]
		rec = rec[:readHeader(rec).size()]
		off += len(rec)
		if binary.LittleEndian.Uint64(rec) == 0 {
			continue
		}
		i, _ := t.find(string(recPath(rec)))
		// The tag does not change; k is not a cursor, so this never
		// writes into the chunk being read.
		to, dst := t.alloc(len(rec), &t.survivors)
		copy(dst, rec)
		t.slots[i] = t.slots[i]&^0xffffffff | uint64(to)
	}
	t.chunks[k] = chunk{}
	t.freeChunks = append(t.freeChunks, k)
}

// stats reports the table's memory: live record bytes and bytes held
// (chunks plus index).
func (t *nodeTable) stats() (records, held int) {
	held = 8 * len(t.slots)
	for _, c := range t.chunks {
		held += len(c.buf)
	}
	return t.recordBytes, held
}

// permSets interns permission lists: each distinct list is stored once,
// with a count of the records using it.
type permSets struct {
	byKey map[string]uint32
	sets  []Perms // by id; nil when free
	refs  []int
	free  []uint32
	key   []byte // scratch
}

// acquire returns the id of ps's interned copy, counting one more user.
func (p *permSets) acquire(ps Perms) uint32 {
	p.setKey(ps)
	if id, ok := p.byKey[string(p.key)]; ok {
		p.refs[id]++
		return id
	}
	var id uint32
	if n := len(p.free); n > 0 {
		id = p.free[n-1]
		p.free = p.free[:n-1]
	} else {
		id = uint32(len(p.sets))
		p.sets = append(p.sets, nil)
		p.refs = append(p.refs, 0)
	}
	p.sets[id] = ps.clone()
	p.refs[id] = 1
	p.byKey[string(p.key)] = id
	return id
}

// release drops one user of id, freeing the list with its last user.
func (p *permSets) release(id uint32) {
	p.refs[id]--
	if p.refs[id] > 0 {
		return
	}
	p.setKey(p.sets[id])
	delete(p.byKey, string(p.key))
	p.sets[id] = nil
	p.free = append(p.free, id)
}

// sameList reports whether a and b are the same slice (not merely equal):
// a node read from the table carries its interned list.
func sameList(a, b Perms) bool {
	return len(a) == len(b) && (len(a) == 0 || &a[0] == &b[0])
}

// setKey encodes ps into p.key, the interning map's key.
func (p *permSets) setKey(ps Perms) {
	p.key = p.key[:0]
	for _, pm := range ps {
		ign := byte(0)
		if pm.Ignore {
			ign = 1
		}
		p.key = append(binary.LittleEndian.AppendUint32(p.key, pm.ID), pm.Access, ign)
	}
}
