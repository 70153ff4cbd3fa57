// Package handover maps a live update's state to and from the xenstore
// migration stream (docs/designs/xenstore-migration.md, package
// store/migration): the engine's State (nodes, domains, connections with
// their watches, aborted transactions and queued output) and what each
// connection's transport held (Conn: its descriptor or event channel port,
// the bytes read but not handled, the bytes taken but not written).
//
// It writes records in C xenstored's order and numbering, so a stream of
// ours is one C xenstored reads, and reads C's streams (DecodeWith, with
// the reader's leniency for C's padding). It does no I/O of its own beyond
// the given reader and writer, and never imports a transport: transports
// and the daemon hand it plain Conn values.
package handover
