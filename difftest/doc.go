// Package difftest runs the same random request sequences against Debian's
// C xenstored (Xen 4.17, started without Xen through an LD_PRELOAD shim,
// shim/xsshim.c) and against our daemon, and compares every reply and
// every watch event. The tests live in this package's _test.go files; see
// README.md for how to run them and for the documented, deliberate
// differences that the comparison masks.
package difftest
