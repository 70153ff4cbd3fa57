package migration

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Stream header constants.
const (
	Ident      = "xenstore" // ident, without a NUL
	Version1   = uint32(1)
	Version2   = uint32(2)
	HeaderSize = 16 // ident, version, flags

	// FlagBigEndian is the header's endianness flag (bit 0 of flags).
	FlagBigEndian = uint32(1)

	recordHeaderSize = 8 // type, len
)

// DefaultMaxRecordSize caps a record's body when the options give no cap.
// The largest records are CONNECTION_DATA with a long output queue; a node
// is at most about 320 KiB (65535 permissions, path and value).
const DefaultMaxRecordSize = 32 << 20

// maxRecordSizeLimit bounds the configurable cap so that sizes fit an int on
// every platform.
const maxRecordSizeLimit = 1 << 30

// ReaderOptions tune a Reader; the zero value (or nil) is strict.
type ReaderOptions struct {
	// MaxRecordSize caps a record's len; 0 means DefaultMaxRecordSize.
	// Values above 1 GiB are treated as 1 GiB.
	MaxRecordSize uint32

	// SkipUnknown skips records of types the spec does not define
	// (0x00000009 and up) instead of failing, as C xenstored does when it
	// reads a live-update stream. Skipped records are counted (Skipped).
	SkipUnknown bool

	// IgnoreReserved ignores padding octets, pad fields and fields the spec
	// says to ignore (a committed node's tx-id and access, a version 1
	// DOMAIN_DATA's features) instead of requiring them to be zero, as the
	// spec's "should be ignored when the stream is read" allows. Needed to
	// read C xenstored's streams: its DOMAIN_DATA and GLOBAL_QUOTA_DATA
	// records end in uninitialised padding. Ignored fields read back as 0.
	IgnoreReserved bool
}

// Reader reads a migration stream: the header on NewReader, then one record
// per Next.
type Reader struct {
	r           io.Reader
	dec         decoder
	max         int
	skipUnknown bool

	off     int64 // offset of the next record
	index   int   // index of the next record
	skipped int
	err     error // sticky; io.EOF after END
}

// NewReader reads and checks the stream header. opts may be nil.
func NewReader(r io.Reader, opts *ReaderOptions) (*Reader, error) {
	if opts == nil {
		opts = &ReaderOptions{}
	}
	rd := &Reader{r: r, max: DefaultMaxRecordSize, skipUnknown: opts.SkipUnknown, off: HeaderSize}
	if opts.MaxRecordSize != 0 {
		rd.max = int(min(opts.MaxRecordSize, maxRecordSizeLimit))
	}
	rd.dec.ignoreReserved = opts.IgnoreReserved
	var h [HeaderSize]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, fmt.Errorf("%w: header: %w (%w)", ErrTruncated, ErrHeader, io.ErrUnexpectedEOF)
		}
		return nil, fmt.Errorf("%w: %w", ErrHeader, err)
	}
	v, err := parseHeader(h[:])
	if err != nil {
		return nil, err
	}
	rd.dec.version = v
	return rd, nil
}

// parseHeader checks the 16-byte header and returns the version. Its
// fields are big endian whatever the endianness flag says.
func parseHeader(h []byte) (uint32, error) {
	if string(h[:8]) != Ident {
		return 0, fmt.Errorf("%w: ident %q, want %q", ErrHeader, h[:8], Ident)
	}
	v := binary.BigEndian.Uint32(h[8:])
	flags := binary.BigEndian.Uint32(h[12:])
	if v != Version1 && v != Version2 {
		return 0, fmt.Errorf("%w %d (this reader knows 1 and 2)", ErrVersion, v)
	}
	if flags&FlagBigEndian != 0 {
		// A live-update stream never leaves its host, and C xenstored
		// itself only accepts its host's byte order.
		return 0, fmt.Errorf("%w: records are big endian; xsstub runs on and reads little-endian hosts' streams only", ErrBigEndian)
	}
	if flags != 0 {
		return 0, fmt.Errorf("%w: reserved flags bits %#x set", ErrHeader, flags)
	}
	return v, nil
}

// Version is the stream's version, 1 or 2.
func (r *Reader) Version() uint32 { return r.dec.version }

// Skipped is the number of unknown records skipped so far (SkipUnknown).
func (r *Reader) Skipped() int { return r.skipped }

// Next returns the next record. At the END record it checks that nothing
// follows and returns io.EOF (and io.EOF again on later calls). Any other
// error is final too: it is returned by every later call. Records returned
// do not share memory with each other; their byte slices may share the
// record's own buffer.
func (r *Reader) Next() (Record, error) {
	for r.err == nil {
		rec, err := r.next()
		if err != nil {
			r.err = err
			break
		}
		if rec != nil {
			return rec, nil
		}
	}
	return nil, r.err
}

func (r *Reader) fail(t RecordType, err error) error {
	return &RecordError{Index: r.index, Offset: r.off, Type: t, Err: err}
}

// truncated wraps a short read: ErrTruncated and io.ErrUnexpectedEOF for a
// stream that ends, or the reader's own error.
func truncated(what string, err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: %s (%w)", ErrTruncated, what, io.ErrUnexpectedEOF)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// next reads one record; a nil record with a nil error is a skipped one.
func (r *Reader) next() (Record, error) {
	var h [recordHeaderSize]byte
	if n, err := io.ReadFull(r.r, h[:]); err != nil {
		if n == 0 && errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("record %d at offset %d: %w: stream ends without an END record (%w)",
				r.index, r.off, ErrTruncated, io.ErrUnexpectedEOF)
		}
		return nil, fmt.Errorf("record %d at offset %d: %w", r.index, r.off, truncated("record header", err))
	}
	t := RecordType(le.Uint32(h[0:]))
	n64 := int64(le.Uint32(h[4:]))

	if t == TypeEnd {
		if n64 != 0 {
			return nil, r.fail(t, malformed("END record with len %d, want 0", n64))
		}
		var b [1]byte
		m, err := io.ReadFull(r.r, b[:])
		if m > 0 {
			return nil, r.fail(t, fmt.Errorf("%w at offset %d", ErrTrailingData, r.off+recordHeaderSize))
		}
		if !errors.Is(err, io.EOF) {
			return nil, r.fail(t, fmt.Errorf("after END: %w", err))
		}
		return nil, io.EOF
	}
	if n64 > int64(r.max) {
		return nil, r.fail(t, fmt.Errorf("%w: len %d exceeds the cap of %d", ErrTooLarge, n64, r.max))
	}
	n := int(n64)
	total := pad8(n)

	if !t.known() {
		if !r.skipUnknown {
			return nil, r.fail(t, fmt.Errorf("%w (len %d)", ErrUnknownType, n))
		}
		if m, err := io.CopyN(io.Discard, r.r, int64(total)); err != nil {
			return nil, r.fail(t, truncated(fmt.Sprintf("body of %d octets has %d", total, m), err))
		}
		r.skipped++
		r.advance(total)
		return nil, nil
	}

	buf, err := r.readBody(total)
	if err != nil {
		return nil, r.fail(t, err)
	}
	rec, used, err := r.dec.decode(t, buf[:n])
	if err != nil {
		return nil, r.fail(t, err)
	}
	if pad8(used) != total {
		return nil, r.fail(t, malformed("len %d (%d with padding) but the fields use %d octets", n, total, used))
	}
	if err := r.dec.zeros(buf[used:], "padding"); err != nil {
		return nil, r.fail(t, err)
	}
	r.advance(total)
	return rec, nil
}

func (r *Reader) advance(body int) {
	r.off += recordHeaderSize + int64(body)
	r.index++
}

// readBody reads n octets, growing its buffer as data arrives so that a
// record claiming more than the stream holds costs no more than what is
// there (and never more than n).
func (r *Reader) readBody(n int) ([]byte, error) {
	const chunk = 64 << 10
	buf := make([]byte, 0, min(n, chunk))
	for len(buf) < n {
		if len(buf) == cap(buf) {
			nb := make([]byte, len(buf), min(2*cap(buf), n))
			copy(nb, buf)
			buf = nb
		}
		m, err := io.ReadFull(r.r, buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+m]
		if err != nil {
			return nil, truncated(fmt.Sprintf("body of %d octets has %d", n, len(buf)), err)
		}
	}
	return buf, nil
}
