package fake

import (
	"strings"
	"testing"
)

func TestGuestSpec(t *testing.T) {
	for _, s := range []GuestSpec{
		{DomID: 7, Port: 8, PageFD: 3, Offset: 0, NotifyFD: 4, EventFD: 5},
		{DomID: 7, Port: 8, PageFD: 3, Offset: 40960, NotifyFD: 4, EventFD: 5},
		{DomID: 0x7fef, Port: 1000, PageFD: 9, Offset: 1 << 40, NotifyFD: 10, EventFD: 11},
	} {
		got, err := ParseGuestSpec(s.String())
		if err != nil || got != s {
			t.Fatalf("round trip of %q: %+v, %v", s, got, err)
		}
	}
	bad := []struct {
		name, in, want string
	}{
		{"empty", "", "no '='"},
		{"missing field", "dom=1,port=2,page=3,notify=4,event=5", "want fields"},
		{"unknown field", "dom=1,port=2,page=3,offset=0,notify=4,event=5,x=1", "unknown field"},
		{"duplicate", "dom=1,dom=2,page=3,offset=0,notify=4,event=5", "duplicate"},
		{"not a number", "dom=a,port=2,page=3,offset=0,notify=4,event=5", "field dom"},
		{"negative", "dom=1,port=2,page=-3,offset=0,notify=4,event=5", "field page"},
		{"too big", "dom=4294967296,port=2,page=3,offset=0,notify=4,event=5", "field dom"},
		{"offset too big", "dom=1,port=2,page=3,offset=18446744073709551616,notify=4,event=5", "field offset"},
	}
	for _, tt := range bad {
		if _, err := ParseGuestSpec(tt.in); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: err = %v, want mention of %q", tt.name, err, tt.want)
		}
	}
}
