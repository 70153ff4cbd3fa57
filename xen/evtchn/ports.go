package evtchn

import "encoding/binary"

// decodePorts decodes the native-endian evtchn_port_t array read from the
// device; a trailing partial word (which the kernel never produces) is
// ignored.
func decodePorts(b []byte) []uint32 {
	ports := make([]uint32, len(b)/4)
	for i := range ports {
		ports[i] = binary.NativeEndian.Uint32(b[4*i:])
	}
	return ports
}
