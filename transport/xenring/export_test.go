package xenring

import "sync"

// Hooks for the external tests (package xenring_test, which use
// xenringtest and so cannot be package xenring).

// MaxMessagesPerPass is maxMessagesPerPass.
const MaxMessagesPerPass = maxMessagesPerPass

// Mu is the lock guarding the server's maps.
func (s *Server) Mu() *sync.Mutex { return &s.mu }

// WakeWrites counts the wake pipe's writes so far.
func (s *Server) WakeWrites() uint64 { return s.wakeWrites.Load() }
