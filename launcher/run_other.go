//go:build !(linux && cgo)

package launcher

import (
	"errors"
	"fmt"
	"io"
)

var errNoCgo = errors.New("this build has no Xen support: build on Linux with cgo and libxen-dev")

func run(_ Options, _, stderr io.Writer) int {
	fmt.Fprintf(stderr, "xenstore-stubdom-launch: %v\n", errNoCgo)
	return ExitFail
}

func drainMain([]string) error { return errNoCgo }
