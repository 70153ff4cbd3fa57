package migration

import (
	"errors"
	"fmt"
)

// Sentinel errors; every error the Reader and Writer return wraps one of
// them (test with errors.Is) and, for a record, is a *RecordError.
var (
	// ErrHeader: the stream does not start with a valid xenstore header.
	ErrHeader = errors.New("migration: bad stream header")
	// ErrVersion: a version other than 1 or 2.
	ErrVersion = errors.New("migration: unsupported stream version")
	// ErrBigEndian: the header's endianness flag says big endian.
	ErrBigEndian = errors.New("migration: big-endian stream not supported")
	// ErrTruncated: the stream ends inside the header or a record, or
	// without an END record.
	ErrTruncated = errors.New("migration: truncated stream")
	// ErrTooLarge: a record longer than the reader's or writer's cap.
	ErrTooLarge = errors.New("migration: record too large")
	// ErrUnknownType: a record type the spec does not define.
	ErrUnknownType = errors.New("migration: unknown record type")
	// ErrNotInVersion: a record or field the stream's version lacks.
	ErrNotInVersion = errors.New("migration: not valid in this stream version")
	// ErrMalformed: lengths, counts or strings inconsistent with the record.
	ErrMalformed = errors.New("migration: malformed record")
	// ErrNonZero: padding, a pad field or a field to be ignored is not
	// zero (strict reading; see IgnoreReserved).
	ErrNonZero = errors.New("migration: non-zero padding or reserved field")
	// ErrTrailingData: bytes after the END record.
	ErrTrailingData = errors.New("migration: data after END record")
	// ErrInvalid: a record the Writer refuses to encode (field out of
	// range, string with NUL, ...).
	ErrInvalid = errors.New("migration: invalid record")
	// ErrClosed: use of a Writer after Close or after an error.
	ErrClosed = errors.New("migration: writer closed")
)

// RecordError locates a failure in a stream: the record's index (0 is the
// first record after the header), its offset from the start of the stream
// and its type, when known.
type RecordError struct {
	Index  int
	Offset int64
	Type   RecordType
	Err    error
}

func (e *RecordError) Error() string {
	return fmt.Sprintf("record %d (%v) at offset %d: %v", e.Index, e.Type, e.Offset, e.Err)
}

func (e *RecordError) Unwrap() error { return e.Err }

func malformed(format string, a ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrMalformed}, a...)...)
}

func invalid(format string, a ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, a...)...)
}

func nonZero(format string, a ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrNonZero}, a...)...)
}
