package ioc

import "testing"

func TestIOC(t *testing.T) {
	// Values worked out by hand from asm-generic/ioctl.h:
	// dir<<30 | size<<16 | type<<8 | nr.
	tests := []struct {
		name               string
		dir, typ, nr, size uintptr
		want               uintptr
	}{
		{"none E 0 4", None, 'E', 0, 4, 0x00044500},
		{"none E 5 0", None, 'E', 5, 0, 0x00004505},
		{"write T 1 8", Write, 'T', 1, 8, 0x40085401},
		{"read T 2 8", Read, 'T', 2, 8, 0x80085402},
		{"rw X 255 max", Read | Write, 'X', 255, 1<<14 - 1, 0xffff58ff},
	}
	for _, tt := range tests {
		if got := IOC(tt.dir, tt.typ, tt.nr, tt.size); got != tt.want {
			t.Errorf("%s: IOC = %#x, want %#x", tt.name, got, tt.want)
		}
	}
	defer func() {
		if recover() == nil {
			t.Error("oversized size did not panic")
		}
	}()
	IOC(None, 'E', 0, 1<<14)
}
