// Package migration reads and writes the xenstore migration stream: the
// image format of Xen's docs/designs/xenstore-migration.md, as of Xen
// RELEASE-4.22.0, that carries a xenstored's state across a live update
// (and, in part, across a guest's migration).
//
// # Scope
//
// This package is the stream format only: typed records, a Writer, a
// Reader and a Stream aggregate with consistency checks. It is pure Go with
// no OS or Xen calls; it neither exports nor imports the engine's state
// (the store package does that on top of it), nor does it keep file
// descriptors open or map rings: a record only names them.
//
// # Format
//
// A stream is a 16-octet header, records, and an END record. The header
// is the ident "xenstore" (no NUL), the version and the flags, both 32-bit
// big endian whatever the endianness flag says. Bit 0 of flags is the
// endianness of everything after the header; the other bits are reserved.
// Each record is type and len (32-bit each), a body, and zero padding to a
// multiple of 8 octets; every field of a body is in the stream's
// endianness. The record types and their layouts, all supported:
//
//	END                  0  no body
//	GLOBAL_DATA          1  Global: rw-socket-fd, evtchn-fd
//	CONNECTION_DATA      2  Connection: shared ring (domid, tdomid, evtchn)
//	                        or socket (socket-fd); unprocessed input, unsent
//	                        output with the partial response's length, and
//	                        unique-id when fields says so
//	WATCH_DATA           3  Watch: connection, path, token
//	TRANSACTION_DATA     4  Transaction: connection, tx-id
//	NODE_DATA            5  Node: committed or pending in a transaction
//	                        (access), permissions, path, value
//	GLOBAL_QUOTA_DATA    6  GlobalQuota: named per-domain and global values
//	DOMAIN_DATA          7  Domain: domain-id, features (version 2), quotas
//	WATCH_DATA_EXTENDED  8  WatchExtended: a watch with a depth (version 2)
//
// The Writer writes version 2 by default and version 1 on request (then it
// refuses WatchExtended and non-zero Features); the Reader reads both.
// The spec has no record for the store's own domid: a receiver learns it
// the way it did at first start (its command line, or nodes such as
// /tool/xenstored/domid, which a NODE_DATA carries), and the domain table
// is the ring connections plus DOMAIN_DATA.
//
// # Choices where the spec is silent or C xenstored differs
//
// Every statement about C is about tools/xenstored at RELEASE-4.22.0
// (lu.c, core.c, domain.c, watch.c, xenstore_state.h).
//
//   - len: the spec's table says len is "the length of body" with the
//     padding after it; C writes len rounded up to 8, padding included,
//     and reads len octets as the next record's start. The Writer writes
//     as C does, so C can read our streams; the Reader accepts both: it
//     reads len octets and then pads to 8, and requires the fields to end
//     in the last 8-octet block.
//   - Padding, pad fields and fields to ignore ("must be written as zero
//     and should be ignored when the stream is read") must be zero by
//     default, so corruption shows; ReaderOptions.IgnoreReserved ignores
//     them, as the spec allows. C needs that: its DOMAIN_DATA and
//     GLOBAL_QUOTA_DATA records are built in talloc'ed, uncleared memory,
//     so their last up to 7 octets are garbage.
//   - Unknown record types (9 and up): an error by default; with
//     ReaderOptions.SkipUnknown they are skipped (whole, padding
//     included) and counted, as C skips them. The spec does not say.
//   - END: its len must be 0 and nothing may follow it. C ignores both.
//   - Big endian: rejected (ErrBigEndian). A live-update stream never
//     leaves its host and xsstub runs on little-endian hosts only; C too
//     accepts only its own host's byte order.
//   - WATCH_DATA_EXTENDED follows the spec: depth (16-bit), a 16-bit pad,
//     then path and token, i.e. these start at offset 12. C's writer
//     writes only the first 8 octets of its fixed part (it passes the
//     size of the plain watch struct), so depth is missing, while its len
//     counts 12; its reader takes the path at offset 10. A C stream with
//     a depth-limited watch is therefore unreadable, by C as by us, and
//     we do not imitate it. C also writes this record into version 1
//     streams; the Reader rejects it there (ErrNotInVersion).
//   - CONNECTION_DATA: unknown fields flags are an error (they announce
//     fields of unknown size); conn-id 0 and conn-types other than 0 and
//     1 are an error. In is the raw bytes read and not yet processed, as
//     C keeps them: whole requests then at most one partial one. Out is
//     the raw bytes not yet written: the first OutResp octets are the
//     unsent tail of a message already partly written (C sets
//     out-resp-len only then), then whole messages; for the connection
//     that asked for the live update C appends the "OK" reply there.
//   - NODE_DATA: a committed node's tx-id and access are ignored by the
//     spec; they must be zero here (and read as zero when ignored). Perm
//     letters other than n, r, w, b and undefined flag bits are errors
//     (C maps unknown letters to n). Values may hold NUL octets.
//   - Quota names are non-empty and NUL-free; the count says how many
//     follow the values; names not known to the receiver are kept.
//   - TRANSACTION_DATA and pending nodes are encoded like any record. C
//     never writes them (it refuses or, with -F, forces an update with
//     open transactions) and ignores TRANSACTION_DATA when reading.
//
// # Invariants
//
//   - The Reader never panics and checks every length against the record
//     and a cap (ReaderOptions.MaxRecordSize, DefaultMaxRecordSize)
//     before using it. It never allocates more than a record's declared
//     (capped) size, and grows its buffer as data arrives, so a short
//     stream that claims a huge record costs little. Errors are wrapped:
//     errors.Is finds the sentinel (ErrMalformed, ErrTruncated, ...) and
//     errors.As a *RecordError with the record's index, offset and type.
//     After an error or END, Next keeps returning the same result.
//   - Records returned share no memory with each other or with the input;
//     empty byte slices and lists read back as nil; byte slices have no
//     spare capacity.
//   - The Writer refuses (ErrInvalid) any record the strict Reader would
//     not read back as the same value, so write-then-read is the identity;
//     the fuzz target checks it for every stream the Reader accepts. Its
//     output is a multiple of 8 octets; each record goes to the
//     io.Writer in one Write.
//   - Stream.Validate checks the rules between records (dependencies
//     earlier, known parents, unique ids; see its documentation). The
//     Reader does not: it checks each record on its own.
package migration
