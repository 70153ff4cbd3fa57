// Package imagecheck reads the stub domain's initramfs (a newc cpio archive,
// gzipped or not) so tests can check what build/image.sh put in it.
package imagecheck

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/u-root/u-root/pkg/cpio"
)

// Entry is one file of the archive.
type Entry struct {
	Name string // without a leading "/"
	Mode uint64 // st_mode: type and permission bits
	Size uint64
}

// Mode bits of st_mode.
const (
	TypeMask = 0o170000
	TypeReg  = 0o100000
	TypeDir  = 0o040000
	TypeChr  = 0o020000
	TypeLink = 0o120000
)

// List returns the entries of the archive at path, in archive order.
func List(path string) ([]Entry, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if bytes.HasPrefix(data, []byte{0x1f, 0x8b}) {
		zr, err := gzip.NewReader(bytes.NewReader(data))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		if data, err = io.ReadAll(zr); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
	}
	recs, err := cpio.ReadAllRecords(cpio.Newc.Reader(bytes.NewReader(data)))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	entries := make([]Entry, 0, len(recs))
	for _, r := range recs {
		entries = append(entries, Entry{
			Name: strings.TrimPrefix(r.Name, "/"),
			Mode: r.Mode,
			Size: r.FileSize,
		})
	}
	return entries, nil
}
