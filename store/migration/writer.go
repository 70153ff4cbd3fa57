package migration

import (
	"encoding/binary"
	"fmt"
	"io"
)

// WriterOptions tune a Writer; the zero value (or nil) writes version 2.
type WriterOptions struct {
	// Version of the stream, Version1 or Version2; 0 means Version2.
	// A version 1 stream cannot hold WatchExtended records nor a
	// Domain's Features.
	Version uint32
	// MaxRecordSize caps a record's len; 0 means DefaultMaxRecordSize,
	// so that a default Reader reads what a default Writer writes.
	MaxRecordSize uint32
}

// Writer writes a migration stream: the header on NewWriter, records with
// WriteRecord, END with Close. Each record is handed to the underlying
// io.Writer in one Write call. After an error every call fails.
type Writer struct {
	w       io.Writer
	version uint32
	max     int
	buf     []byte
	off     int64
	index   int
	err     error
}

// NewWriter writes the header. opts may be nil.
func NewWriter(w io.Writer, opts *WriterOptions) (*Writer, error) {
	if opts == nil {
		opts = &WriterOptions{}
	}
	wr := &Writer{w: w, version: opts.Version, max: DefaultMaxRecordSize, off: HeaderSize}
	if wr.version == 0 {
		wr.version = Version2
	}
	if wr.version != Version1 && wr.version != Version2 {
		return nil, fmt.Errorf("%w %d", ErrVersion, wr.version)
	}
	if opts.MaxRecordSize != 0 {
		wr.max = int(min(opts.MaxRecordSize, maxRecordSizeLimit))
	}
	h := make([]byte, HeaderSize)
	copy(h, Ident)
	binary.BigEndian.PutUint32(h[8:], wr.version)
	binary.BigEndian.PutUint32(h[12:], 0) // little endian
	if _, err := w.Write(h); err != nil {
		return nil, fmt.Errorf("migration: writing header: %w", err)
	}
	return wr, nil
}

// Version is the version the Writer writes.
func (w *Writer) Version() uint32 { return w.version }

// WriteRecord encodes and writes one record. It refuses (ErrInvalid) a
// record the Reader would not read back identically.
func (w *Writer) WriteRecord(rec Record) error {
	if w.err != nil {
		return w.err
	}
	if rec == nil {
		return &RecordError{Index: w.index, Offset: w.off, Err: invalid("nil record")}
	}
	t := rec.Type()
	b := append(w.buf[:0], make([]byte, recordHeaderSize)...)
	b, err := rec.appendBody(b, w.version)
	if err != nil {
		// A bad record is the caller's to fix; the stream stays usable.
		return &RecordError{Index: w.index, Offset: w.off, Type: t, Err: err}
	}
	n := len(b) - recordHeaderSize
	if n > w.max {
		return &RecordError{Index: w.index, Offset: w.off, Type: t,
			Err: fmt.Errorf("%w: %d octets exceed the cap of %d", ErrTooLarge, n, w.max)}
	}
	total := pad8(n)
	for len(b) < recordHeaderSize+total {
		b = append(b, 0)
	}
	// len counts the padding, as C xenstored writes it (see the package
	// documentation); the Reader accepts both forms.
	le.PutUint32(b[0:], uint32(t))
	le.PutUint32(b[4:], uint32(total))
	if err := w.write(t, b); err != nil {
		return err
	}
	if cap(b) <= 1<<20 {
		w.buf = b
	}
	return nil
}

func (w *Writer) write(t RecordType, b []byte) error {
	if _, err := w.w.Write(b); err != nil {
		w.err = &RecordError{Index: w.index, Offset: w.off, Type: t, Err: err}
		return w.err
	}
	w.off += int64(len(b))
	w.index++
	return nil
}

// Close writes the END record. It does not close the underlying writer.
func (w *Writer) Close() error {
	if w.err != nil {
		return w.err
	}
	var end [recordHeaderSize]byte // type 0, len 0
	if err := w.write(TypeEnd, end[:]); err != nil {
		return err
	}
	w.err = ErrClosed
	return nil
}
