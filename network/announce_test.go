package network

import (
	"bytes"
	"net"
	"testing"
)

func TestGARP(t *testing.T) {
	mac := net.HardwareAddr{0x02, 1, 2, 3, 4, 5}
	f := garp(mac, []byte{10, 0, 0, 7})
	want := []byte{
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 1, 2, 3, 4, 5, 0x08, 0x06,
		0, 1, 0x08, 0, 6, 4, 0, 1,
		0x02, 1, 2, 3, 4, 5, 10, 0, 0, 7,
		0, 0, 0, 0, 0, 0, 10, 0, 0, 7,
	}
	if !bytes.Equal(f, want) {
		t.Fatalf("garp = % x\nwant  % x", f, want)
	}
}
