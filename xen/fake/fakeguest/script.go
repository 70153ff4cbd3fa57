// Command fakeguest is a test helper: a guest process for the fake
// hypervisor. It attaches to the fake domain described by the XSFAKE_GUEST
// environment variable (set up by fake.Domain.ConfigureCmd), runs a
// xenstore client over the shared ring and executes a script, one command
// per argument, or per line of standard input when there are no arguments:
//
//	write PATH VALUE   -> ok | error NAME
//	read PATH          -> value VALUE | error NAME
//	mkdir PATH, rm PATH -> ok | error NAME
//	dir PATH           -> dir NAME... | error NAME
//	watch PATH TOKEN, unwatch PATH TOKEN -> ok | error NAME
//	event              -> event PATH TOKEN   (waits for the next watch event)
//
// Each command prints exactly one line. Blank lines and lines starting
// with '#' are skipped. The exit status is 0 if the script ran to the end
// (xenstore error replies are results, not failures), 1 on a broken
// connection or bad script, 2 if attaching failed. It is Linux only.
package main

import (
	"fmt"
	"strings"
)

// command is one parsed script line.
type command struct {
	op   string
	args []string
}

var arity = map[string]int{
	"write": 2, "read": 1, "mkdir": 1, "rm": 1, "dir": 1,
	"watch": 2, "unwatch": 2, "event": 0,
}

// parseCommand splits a line; the value of write is everything after the
// path, so it may contain spaces.
func parseCommand(line string) (command, error) {
	f := strings.Fields(line)
	if len(f) == 0 {
		return command{}, fmt.Errorf("empty command")
	}
	op := f[0]
	n, ok := arity[op]
	if !ok {
		return command{}, fmt.Errorf("unknown command %q", op)
	}
	if op == "write" && len(f) >= 2 {
		rest := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(line), "write"))
		path, value, _ := strings.Cut(rest, " ")
		return command{op: op, args: []string{path, strings.TrimLeft(value, " ")}}, nil
	}
	if len(f)-1 != n {
		return command{}, fmt.Errorf("%s takes %d argument(s), got %d", op, n, len(f)-1)
	}
	return command{op: op, args: f[1:]}, nil
}
