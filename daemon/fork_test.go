package daemon

import (
	"os"
	"testing"
)

func TestIsDevNull(t *testing.T) {
	null, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer null.Close()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	file, err := os.Create(t.TempDir() + "/f")
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	tests := []struct {
		name string
		fd   int
		want bool
	}{
		{"/dev/null", int(null.Fd()), true},
		{"pipe", int(w.Fd()), false},
		{"regular file", int(file.Fd()), false},
		{"closed descriptor", 1 << 20, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := isDevNull(tc.fd); got != tc.want {
				t.Errorf("isDevNull = %v, want %v", got, tc.want)
			}
		})
	}
}
