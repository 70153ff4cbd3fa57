package launcher

import (
	"bytes"
	"compress/gzip"
	"debug/elf"
	"fmt"
	"io"
	"os"

	"github.com/xsstub/xenstored/kernel"
)

// KernelInfo describes a kernel file.
type KernelInfo struct {
	Format  string // "elf", "bzImage" or "unknown"
	Gzipped bool
	// PVHEntry is the XEN_ELFNOTE_PHYS32_ENTRY address; HasPVH says whether
	// the kernel has one (only an ELF kernel can: Xen's builder loads PVH
	// kernels only from ELF).
	PVHEntry uint32
	HasPVH   bool
}

// maxKernel bounds what InspectKernel reads (uncompressed).
const maxKernel = 512 << 20

// InspectKernel reads path (gunzipping it if needed) and finds its format
// and PVH entry note.
func InspectKernel(path string) (KernelInfo, error) {
	var ki KernelInfo
	f, err := os.Open(path)
	if err != nil {
		return ki, fmt.Errorf("kernel: %w", err)
	}
	defer f.Close()
	var r io.Reader = f
	var magic [2]byte
	if _, err := io.ReadFull(f, magic[:]); err == nil && magic == [2]byte{0x1f, 0x8b} {
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return ki, fmt.Errorf("kernel %s: %w", path, err)
		}
		z, err := gzip.NewReader(f)
		if err != nil {
			return ki, fmt.Errorf("kernel %s: %w", path, err)
		}
		ki.Gzipped = true
		r = z
	} else if _, err := f.Seek(0, io.SeekStart); err != nil {
		return ki, fmt.Errorf("kernel %s: %w", path, err)
	}
	b, err := io.ReadAll(io.LimitReader(r, maxKernel+1))
	if err != nil {
		return ki, fmt.Errorf("kernel %s: %w", path, err)
	}
	if len(b) > maxKernel {
		return ki, fmt.Errorf("kernel %s: larger than %d MiB", path, maxKernel>>20)
	}
	return inspectKernelBytes(b, ki)
}

func inspectKernelBytes(b []byte, ki KernelInfo) (KernelInfo, error) {
	switch {
	case bytes.HasPrefix(b, []byte(elf.ELFMAG)):
		ki.Format = "elf"
		ef, err := elf.NewFile(bytes.NewReader(b))
		if err != nil {
			return ki, fmt.Errorf("kernel: bad ELF: %w", err)
		}
		ki.PVHEntry, ki.HasPVH, err = kernel.PVHEntry(ef)
		if err != nil {
			return ki, fmt.Errorf("kernel: reading ELF notes: %w", err)
		}
	case len(b) > 0x206 && string(b[0x202:0x206]) == "HdrS":
		ki.Format = "bzImage"
	default:
		ki.Format = "unknown"
	}
	return ki, nil
}
