// Package xenringtest is test support only: it runs the daemon's real ring
// transport (package xenring) and the real store engine over the fake
// hypervisor (xen/fake), in process, as net/http/httptest runs a real HTTP
// server for tests.
//
// A Rig is a fake.Hypervisor playing one Xen release, with domain 0
// created, an xenring.Server bound to VIRQ_DOM_EXC whose event loop runs
// on one goroutine, and a store.Engine (default configuration unless
// Options.Engine changes it) serving every ring. Guests are fake domains
// the rig creates, attaches to in process and introduces, as the
// toolstack's XS_INTRODUCE would; Dom0 is an in-process privileged
// connection to the engine (no ring, no socket) to play the toolstack:
// make a domain's home, set permissions, watch @releaseDomain.
//
// Limits: Linux only (the fake is). The rig does not put a client on a
// guest's page: callers make their own (package ringclient, whose tests
// use this package, so it cannot be imported here), or write the page
// directly to play a hostile guest. Nothing is created in the store
// either: a guest has no home until the test makes one (Dom0.MakeHome),
// and it gets only the access a real domU gets. The engine's log is
// discarded. Everything is torn down by the test's Cleanup: the loop is
// stopped (its error, if any, fails the test), then the hypervisor closed.
package xenringtest
