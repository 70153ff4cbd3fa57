// Command nullstored is a do-nothing xenstore server for benchmarks: it
// answers every request on a Unix socket with a canned reply (see
// bench.NullServer) and keeps no state, which makes it the ceiling any
// real server on the same socket and machine can reach.
//
//	nullstored --socket DIR/socket
package main

import (
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"syscall"

	"github.com/xsstub/xenstored/bench"
)

func main() {
	sock := flag.String("socket", "", "Unix socket to serve (required)")
	flag.Parse()
	if *sock == "" || flag.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "usage: nullstored --socket PATH")
		os.Exit(2)
	}
	os.Remove(*sock)
	ln, err := net.Listen("unix", *sock)
	if err != nil {
		fmt.Fprintln(os.Stderr, "nullstored:", err)
		os.Exit(1)
	}
	var s bench.NullServer
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		<-sig
		s.Close()
	}()
	if err := s.Serve(ln); err != nil {
		fmt.Fprintln(os.Stderr, "nullstored:", err)
		os.Exit(1)
	}
	os.Remove(*sock)
}
