//go:build linux && cgo

package xc

/*
#cgo LDFLAGS: -ldl
#include <stdlib.h>
#include "dl.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"unsafe"
)

// libNames are the libraries' file names for a release: libxentoollog's
// SONAME is stable (.so.1), the others carry the release.
func libNames(v Version) [C.L_N]string {
	var n [C.L_N]string
	n[C.L_LOG] = "libxentoollog.so.1"
	n[C.L_CTRL] = "libxenctrl.so." + v.String()
	n[C.L_GUEST] = "libxenguest.so." + v.String()
	n[C.L_LIGHT] = "libxenlight.so." + v.String()
	return n
}

// soNames is libNames (a variable for tests).
var soNames = libNames

// unversioned are the development symlinks (libxen-dev), tried last.
var unversioned = [C.L_N]string{"libxentoollog.so", "libxenctrl.so", "libxenguest.so", "libxenlight.so"}

// Libs is the host's set of Xen libraries, loaded once per process.
type Libs struct {
	Version Version       // the release of libxenctrl/libxenguest/libxenlight
	Files   [C.L_N]string // file each library was loaded from
	handles [C.L_N]unsafe.Pointer
}

var (
	loadOnce sync.Once
	loaded   *Libs
	loadErr  error
)

// Load finds the host's libraries (once): the release the hypervisor runs
// first when known, then 4.22 down to 4.17, then the unversioned names;
// and resolves every function. The release found selects the layout.
func Load() (*Libs, error) {
	loadOnce.Do(func() { loaded, loadErr = load(hypervisorVersion()) })
	return loaded, loadErr
}

func load(hv Version, hvErr error) (*Libs, error) {
	if hvErr == nil {
		if _, err := LayoutFor(hv); err != nil {
			return nil, fmt.Errorf("%w (the hypervisor, /sys/hypervisor/version)", err)
		}
	}
	var tried []string
	for _, v := range candidates(hv, hvErr == nil) {
		names := soNames(v)
		if _, err := dlopen(names[C.L_CTRL]); err != nil {
			tried = append(tried, names[C.L_CTRL])
			continue
		}
		// libxenctrl of this release is here: the rest of its set must be.
		l, err := openSet(v, names)
		if err != nil {
			return nil, fmt.Errorf("Xen %s: %w", v, err)
		}
		return l.resolved()
	}
	return loadUnversioned(tried)
}

// candidates orders the releases to look for.
func candidates(hv Version, hvKnown bool) []Version {
	vs := knownNewestFirst()
	if hvKnown {
		sort.SliceStable(vs, func(i, j int) bool { return vs[i] == hv && vs[j] != hv })
	}
	return vs
}

// loadUnversioned tries libxenctrl.so etc. and takes the release from the
// file they point to; with nothing at all it names an unknown release found
// in the library directories.
func loadUnversioned(tried []string) (*Libs, error) {
	h, err := dlopen(unversioned[C.L_CTRL])
	if err != nil {
		if v, ok := findOtherRelease(); ok {
			_, lerr := LayoutFor(v)
			return nil, fmt.Errorf("%w (found libxenctrl.so.%s)", lerr, v)
		}
		return nil, fmt.Errorf("no Xen libraries: none of %s or %s loads (%v); install the running Xen's tools (Debian: xen-utils-4.NN)",
			strings.Join(tried, ", "), unversioned[C.L_CTRL], err)
	}
	path := dlpath(h)
	v, ok := versionFromPath(path)
	if !ok {
		return nil, fmt.Errorf("%s (%s): cannot tell its Xen release from the file name", unversioned[C.L_CTRL], path)
	}
	if _, err := LayoutFor(v); err != nil {
		return nil, fmt.Errorf("%w (%s)", err, path)
	}
	l, err := openSet(v, unversioned)
	if err != nil {
		return nil, err
	}
	return l.resolved()
}

// openSet dlopens one set of names; on failure it names the first missing.
func openSet(v Version, names [C.L_N]string) (*Libs, error) {
	l := &Libs{Version: v}
	for i, n := range names {
		h, err := dlopen(n)
		if err != nil {
			return nil, fmt.Errorf("dlopen %s: %w", n, err)
		}
		l.handles[i], l.Files[i] = h, dlpath(h)
	}
	return l, nil
}

// resolved points every trampoline at its function.
func (l *Libs) resolved() (*Libs, error) {
	buf := make([]byte, 512)
	for i := 0; i < C.F_N; i++ {
		lib := C.xs_sym_lib(C.int(i))
		if C.xs_dlsym(C.int(i), l.handles[lib], cbuf0(buf), C.size_t(len(buf))) != 0 {
			return nil, fmt.Errorf("Xen %s: dlsym %s in %s: %s", l.Version, C.GoString(C.xs_sym_name(C.int(i))), l.Files[lib], cstr(buf))
		}
	}
	return l, nil
}

// Symbols lists the functions resolved, for tests and messages.
func Symbols() []string {
	var s []string
	for i := 0; i < C.F_N; i++ {
		s = append(s, C.GoString(C.xs_sym_name(C.int(i))))
	}
	return s
}

func dlopen(name string) (unsafe.Pointer, error) {
	cs := C.CString(name)
	defer C.free(unsafe.Pointer(cs))
	buf := make([]byte, 512)
	h := C.xs_dlopen(cs, cbuf0(buf), C.size_t(len(buf)))
	if h == nil {
		return nil, errors.New(cstr(buf))
	}
	return h, nil
}

func dlpath(h unsafe.Pointer) string {
	p := C.GoString(C.xs_dlpath(h))
	if r, err := filepath.EvalSymlinks(p); err == nil {
		return r
	}
	return p
}

func cbuf0(b []byte) *C.char { return (*C.char)(unsafe.Pointer(&b[0])) }

func cstr(b []byte) string {
	if i := strings.IndexByte(string(b), 0); i >= 0 {
		return string(b[:i])
	}
	return string(b)
}

// libDirs are where findOtherRelease looks.
var libDirs = []string{"/usr/lib/x86_64-linux-gnu", "/usr/lib64", "/usr/lib", "/usr/local/lib"}

// findOtherRelease looks for a libxenctrl.so.4.NN this package does not
// know in the usual library directories.
func findOtherRelease() (Version, bool) {
	for _, dir := range libDirs {
		m, _ := filepath.Glob(filepath.Join(dir, "libxenctrl.so.4.*"))
		for _, p := range m {
			if v, ok := versionFromPath(p); ok {
				return v, true
			}
		}
	}
	return Version{}, false
}

// hypervisorVersion reads /sys/hypervisor/version/{major,minor} (Linux on
// Xen, sysfs hypervisor support).
func hypervisorVersion() (Version, error) {
	major, err1 := os.ReadFile(sysHypervisor + "/major")
	minor, err2 := os.ReadFile(sysHypervisor + "/minor")
	if err := errors.Join(err1, err2); err != nil {
		return Version{}, err
	}
	return ParseVersion(strings.TrimSpace(string(major)) + "." + strings.TrimSpace(string(minor)))
}

var sysHypervisor = "/sys/hypervisor/version"
